import Testing
@testable import DagctlSpec

/// A duplicate key is one problem among others: it is reported at the line of each later occurrence,
/// the first occurrence's value is used, and every other problem of the file is still listed.
@Suite("duplicate keys")
struct DuplicateKeyTests {
    func environment(_ text: String) -> [SpecIssue] {
        issues { try EnvironmentSpec.parse(text, name: "dev", file: "dev.yaml", members: ["alice", "bob"]) }
    }

    func members(_ text: String) -> [SpecIssue] {
        issues { try Members.parse(text, file: "members.yaml") }
    }

    /// Every issue starts with one of `expected` (file:line: 'key': message…), one issue each.
    func expectIssues(_ found: [SpecIssue], _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let descriptions = found.map(\.description)
        #expect(descriptions.count == expected.count, "\(descriptions)", sourceLocation: sourceLocation)
        for prefix in expected {
            #expect(descriptions.contains { $0.hasPrefix(prefix) }, "no issue starts with \(prefix) in \(descriptions)",
                    sourceLocation: sourceLocation)
        }
    }

    static let duplicate = "duplicate key; each key may appear only once"

    @Test func environmentFileListsTheDuplicateAndTheRest() {
        expectIssues(environment("ref: main\nref: dev\nretires: 3\n"), [
            "dev.yaml:2: 'ref': \(Self.duplicate)",
            "dev.yaml:3: 'retires': unknown key",
        ])
    }

    @Test func aDuplicateAloneIsOneIssue() {
        let found = environment("ref: main\nprotected: false\nref: dev\n")
        expectIssues(found, ["dev.yaml:3: 'ref': \(Self.duplicate)"])
        #expect(found.first == SpecIssue(file: "dev.yaml", line: 3, key: "ref", message: Self.duplicate))
    }

    @Test func theFirstOccurrenceIsTheOneRead() {
        // The second value is not a ref, and is not reported: only the duplicate is.
        expectIssues(environment("ref: main\nref: \"main~1\"\n"), ["dev.yaml:2: 'ref': \(Self.duplicate)"])
        // The first value is checked.
        expectIssues(environment("ref: \"main~1\"\nref: main\n"), [
            "dev.yaml:1: 'ref': 'main~1' is not a branch",
            "dev.yaml:2: 'ref': \(Self.duplicate)",
        ])
    }

    @Test func everyLaterOccurrenceIsReported() {
        expectIssues(environment("ref: a\nref: b\nprotected: maybe\nref: c\n"), [
            "dev.yaml:2: 'ref': \(Self.duplicate)",
            "dev.yaml:3: 'protected': expected true or false",
            "dev.yaml:4: 'ref': \(Self.duplicate)",
        ])
    }

    @Test func insideAMemberEntry() {
        let text = "members:\n  - name: alice\n    name: again\n    emails: [nope]\n  - name: bob\n    colour: red\n    roles: [a]\n    roles: [b]\n"
        expectIssues(members(text), [
            "members.yaml:3: 'name': \(Self.duplicate)",
            "members.yaml:4: 'members[0].emails': 'nope' is not an email address",
            "members.yaml:6: 'members[1].colour': unknown key",
            "members.yaml:8: 'roles': \(Self.duplicate)",
        ])
    }

    @Test func sameKeyInDifferentEntriesIsNoDuplicate() throws {
        let m = try Members.parse("members:\n  - name: alice\n    roles: [a]\n  - name: bob\n    roles: [b]\n", file: "members.yaml")
        #expect(m.all.map(\.name) == ["alice", "bob"])
    }

    @Test func nestedBackendMapping() {
        let text = "ref: main\nprotected: maybe\nbackend:\n  kind: local\n  kind: kubernetes\n  timeout_seconds: 0\n  colour: red\n"
        expectIssues(environment(text), [
            "dev.yaml:2: 'protected': expected true or false",
            "dev.yaml:5: 'kind': \(Self.duplicate)",
            "dev.yaml:6: 'backend.timeout_seconds': 0 is out of range",
            "dev.yaml:7: 'backend.colour': unknown key",
        ])
    }

    @Test func flowMappings() {
        expectIssues(environment("ref: main\nenv: {A: x, A: y, bad-name: z}\nretires: 1\n"), [
            "dev.yaml:2: 'A': \(Self.duplicate)",
            "dev.yaml:2: 'env': 'bad-name' is not a valid environment variable name",
            "dev.yaml:3: 'retires': unknown key",
        ])
        // JSON-like: quoted keys directly followed by ':'.
        expectIssues(environment("{\"ref\":\"main\",\"env\":{\"A\":\"x\",\"A\":\"y\"},\"ref\":\"dev\",\"protected\":\"no\"}\n"), [
            "dev.yaml:1: 'A': \(Self.duplicate)",
            "dev.yaml:1: 'ref': \(Self.duplicate)",
            "dev.yaml:1: 'protected': expected true or false",
        ])
        // The first value of a duplicated variable is the one used.
        expectIssues(environment("ref: main\nenv: {A: x, A: [y]}\n"), ["dev.yaml:2: 'A': \(Self.duplicate)"])
    }

    @Test func quotedKeysAreTheSameKey() {
        expectIssues(environment("ref: main\n\"ref\": dev\n'ref': v2\nprotected: maybe\n"), [
            "dev.yaml:2: 'ref': \(Self.duplicate)",
            "dev.yaml:3: 'ref': \(Self.duplicate)",
            "dev.yaml:4: 'protected': expected true or false",
        ])
        // Compared as written after unquoting: escapes are decoded.
        expectIssues(environment("ref: main\n\"r\\x65f\": dev\n"), ["dev.yaml:2: 'ref': \(Self.duplicate)"])
    }

    @Test func linesAndColumnsAfterAReplacedKeyStay() {
        // Multi-byte characters before the key and CRLF line ends: libyaml's marks count characters,
        // not bytes, and the lines below keep their numbers.
        expectIssues(environment("ref: main\r\nenv: {\"Ä\": x, \"Ä\": y}\r\nref: dev\r\nretires: 1\r\n"), [
            "dev.yaml:2: 'Ä': \(Self.duplicate)",
            "dev.yaml:2: 'env': 'Ä' is not a valid environment variable name",
            "dev.yaml:3: 'ref': \(Self.duplicate)",
            "dev.yaml:4: 'retires': unknown key",
        ])
        // An explicit key written over two lines.
        expectIssues(environment("ref: main\n? re\n  f\n: x\n? re\n  f\n: y\nretires: 1\n"), [
            "dev.yaml:2: 're f': unknown key",
            "dev.yaml:5: 're f': \(Self.duplicate)",
            "dev.yaml:8: 'retires': unknown key",
        ])
    }

    @Test func malformedYAMLAfterADuplicateKeepsItsPlace() {
        let alone = environment("ref: main\nxyz: a: b\n")
        #expect(alone.count == 1)
        let malformed = try! #require(alone.first { $0.message.hasPrefix("malformed YAML") })
        // Same error, same line and column, even though the key before it on that line is replaced.
        expectIssues(environment("ref: main\nref: a: b\n"), ["dev.yaml:2: 'ref': \(Self.duplicate)", malformed.description])
        // A mapping with a duplicate closes before the error.
        let found = environment("env: {A: x, A: y}\nref: [main\n")
        #expect(found.contains { $0.description.hasPrefix("dev.yaml:1: 'A': \(Self.duplicate)") }, "\(found)")
        #expect(found.contains { $0.message.hasPrefix("malformed YAML") }, "\(found)")
    }

    @Test func anchoredMappingWithADuplicate() {
        // The alias's value is the anchored mapping, which Yams marks at its anchor (line 2).
        let text = "ref: main\nenv: &e {A: x, A: y}\nbackend: {kind: local, kind: local, timeout_seconds: *e}\n"
        expectIssues(environment(text), [
            "dev.yaml:2: 'A': \(Self.duplicate)",
            "dev.yaml:3: 'kind': \(Self.duplicate)",
            "dev.yaml:2: 'backend.timeout_seconds': expected a whole number, found a mapping",
        ])
    }

    @Test func dbtProjectDuplicateDeepInConfig() {
        let text = "name: shop\nmodels:\n  shop:\n    +materialized: view\n    +materialized: table\nmodel-paths: [\"../x\"]\n"
        let found = issues { try DbtPaths.parse(text, file: "dbt_project.yml") }
        expectIssues(found, [
            "dbt_project.yml:5: '+materialized': \(Self.duplicate)",
            "dbt_project.yml:6: 'model-paths': '../x'",
        ])
    }

    @Test func emptyAndBlockScalarKeys() {
        expectIssues(environment("ref: main\n? \n: 1\n? \n: 2\nretires: 1\n"), [
            "dev.yaml:2: '': unknown key",
            "dev.yaml:4: '': \(Self.duplicate)",
            "dev.yaml:6: 'retires': unknown key",
        ])
        expectIssues(environment("ref: main\n? |\n  x\n: 1\n? |\n  x\n: 2\nretires: 1\n"), [
            "dev.yaml:2: 'x\\n': unknown key",
            "dev.yaml:5: 'x\\n': \(Self.duplicate)",
            "dev.yaml:8: 'retires': unknown key",
        ])
    }

    @Test func aKeyThatLooksLikeAPlaceholderIsStillReported() {
        expectIssues(environment("ref: main\nref: dev\ndagctl-duplicate-key-1: x\n"), [
            "dev.yaml:2: 'ref': \(Self.duplicate)",
            "dev.yaml:3: 'dagctl-duplicate-key-1': unknown key",
        ])
    }

    @Test func validFilesAreUnchanged() throws {
        let env = try EnvironmentSpec.parse("ref: main\nprotected: true\nallowlist: [alice]\nenv: {A: x, B: y}\nbackend:\n  kind: local\n",
                                            name: "prod", file: "prod.yaml", members: ["alice"])
        #expect(env.ref == "main")
        #expect(env.env == ["A": "x", "B": "y"])
        #expect(env.allowlist == ["alice"])
        let m = try Members.parse("members:\n  - name: alice\n    emails: [a@x.y]\n", file: "members.yaml")
        #expect(m.all == [Member(name: "alice", emails: ["a@x.y"])])
    }
}
