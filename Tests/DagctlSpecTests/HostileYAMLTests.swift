import Foundation
import Testing
@testable import DagctlSpec

/// Every file kind read through MappingReader, as a parser from text to its problems.
let fileKinds: [(name: String, parse: @Sendable (String) -> [SpecIssue])] = [
    ("environment", { text in issues { try EnvironmentSpec.parse(text, name: "dev", file: "f", members: nil) } }),
    ("members.yaml", { text in issues { try Members.parse(text, file: "f") } }),
    ("approval", { text in issues { try ApprovalFile.parse(text, file: "f") } }),
    ("retry", { text in issues { try RetryFile.parse(text, file: "f") } }),
    (".dagctl/config.yaml", { text in issues { try ProjectConfig.parse(text, file: "f") } }),
    ("dbt_project.yml", { text in issues { try DbtPaths.parse(text, file: "f") } }),
]

/// `a0` holds ten scalars, each `aN` ten aliases of `aN-1`: `a8` stands for 10^9 scalars in ~500 bytes.
func laughs(_ levels: Int = 8) -> String {
    var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in 1...levels {
        lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]")
    }
    return lines.joined(separator: "\n") + "\n"
}

struct Bomb: Sendable, CustomStringConvertible {
    var description: String
    var text: String
    var message: String
    var line: Int?
}

/// Inputs that would make the parser (or whoever walks its tree) do unbounded work.
let bombs: [Bomb] = [
    // The composer's duplicate-key check hashes each key: a key standing for 10^9 nodes never finishes.
    // Its anchors are refused first, at a4, the first to stand for more than 100,000 values.
    Bomb(description: "alias of 10^9 values as key", text: laughs() + "? *a8\n: boom\n", message: "aliases expand to more than 100000 values", line: 5),
    Bomb(description: "alias as key", text: laughs(3) + "? *a3\n: boom\n", message: "aliases may not be used as keys", line: 5),
    Bomb(description: "scalar alias as key", text: "ref: &k main\n*k : x\n", message: "aliases may not be used as keys", line: 2),
    Bomb(description: "alias as key, nested", text: "x: &k a\nenv: {*k : b}\n", message: "aliases may not be used as keys", line: 2),
    Bomb(description: "list as key", text: "ref: main\n? [a, b]\n: c\n", message: "a key must be plain text", line: 2),
    Bomb(description: "mapping as key", text: "ref: main\n? {a: b}\n: c\n", message: "a key must be plain text", line: 2),
    Bomb(description: "billion laughs as values", text: laughs() + "boom: *a8\n", message: "aliases expand to more than", line: nil),
    Bomb(description: "deep nesting", text: "ref: " + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "\n",
         message: "nested more than", line: 1),
    Bomb(description: "very deep nesting", text: "ref: " + String(repeating: "[", count: 50_000) + "\n",
         message: "nested more than", line: 1),
    Bomb(description: "deep block nesting", text: (0..<100).map { String(repeating: " ", count: $0) + "k\($0):\n" }.joined(),
         message: "nested more than", line: 65),
    Bomb(description: "2 MiB file", text: "ref: main\n" + String(repeating: "# padding\n", count: 210_000),
         message: "the file is too large", line: nil),
    Bomb(description: "many values", text: "x: [" + Array(repeating: "1", count: 200_000).joined(separator: ",") + "]\n",
         message: "more than 100000 values", line: nil),
]

@Suite("hostile YAML")
struct HostileYAMLTests {
    @Test(arguments: bombs)
    func everyFileKindRefusesQuickly(_ bomb: Bomb) {
        for kind in fileKinds {
            let start = ContinuousClock.now
            let found = kind.parse(bomb.text)
            let elapsed = ContinuousClock.now - start
            // A guard against spinning, not a benchmark: the fix answers in milliseconds.
            #expect(elapsed < .seconds(2), "\(kind.name): \(bomb) took \(elapsed)")
            #expect(found.count == 1, "\(kind.name): \(bomb): \(found)")
            let issue = found.first
            #expect(issue?.file == "f")
            #expect(issue?.message.contains(bomb.message) == true, "\(kind.name): \(bomb): \(found)")
            if let line = bomb.line { #expect(issue?.line == line, "\(kind.name): \(bomb): \(found)") }
            // Messages are one line: the offending text never reaches a terminal raw.
            #expect(issue?.description.contains("\n") == false)
        }
    }

    @Test func refusalsSayWhatToDo() {
        let key = issues { try ProjectConfig.parse(laughs(3) + "? *a3\n: boom\n", file: "main:.dagctl/config.yaml") }
        #expect(key.map(\.description) == ["main:.dagctl/config.yaml:5: aliases may not be used as keys; write the key out"])
        let bomb = issues { try ProjectConfig.parse(laughs() + "? *a8\n: boom\n", file: "main:.dagctl/config.yaml") }
        #expect(bomb.map(\.description) == ["main:.dagctl/config.yaml:5: aliases expand to more than 100000 values; write the values out instead of nesting aliases"])
    }

    @Test func manyLongUnknownKeysAreReportedQuickly() {
        // Looking for a "did you mean" among long keys used to cost length × length per key: 20 s here.
        let keys = (0..<1_000).map { i in String(repeating: "k", count: 990) + String(i, radix: 10) + ": 1\n" }
        let text = "ref: main\n" + keys.joined()
        #expect(text.utf8.count < YAMLLimits.maxBytes)
        let start = ContinuousClock.now
        let found = issues { try EnvironmentSpec.parse(text, name: "dev", file: "f", members: nil) }
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(found.count == 1_000)
        #expect(found.first?.key == String(repeating: "k", count: 64) + "…")
        #expect(found.first?.message.hasPrefix("unknown key; known keys: ") == true)
    }

    @Test func aFileJustUnderTheLimitsIsRead() throws {
        // 60 levels of block nesting and a 1 MiB-minus-a-bit comment are fine.
        let nested = (0..<60).map { String(repeating: " ", count: $0) + "k\($0):\n" }.joined()
        var text = "name: shop\nmodel-paths: [src]\nvars:\n" + nested.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
        text += String(repeating: "#", count: YAMLLimits.maxBytes - text.utf8.count - 1) + "\n"
        #expect(text.utf8.count == 1 << 20)
        let paths = try DbtPaths.parse(text, file: "dbt_project.yml")
        #expect(paths.modelPaths == ["src"])
    }

    @Test func anchorsAndAliasesAsValuesStillWork() throws {
        let env = try EnvironmentSpec.parse("ref: &branch release\ntarget: *branch\nenv: &vars {DBT_THREADS: \"4\"}\n",
                                            name: "dev", file: "f", members: nil)
        #expect(env.target == "release")
        #expect(env.env == ["DBT_THREADS": "4"])

        let members = try Members.parse("""
            members:
              - name: bob
                emails: [bob@example.com]
                roles: &deployers [deployer, admin]
              - name: carol
                emails: [carol@example.com]
                roles: *deployers
            """, file: "members.yaml")
        #expect(members["carol"]?.roles == ["deployer", "admin"])

        let paths = try DbtPaths.parse("""
            name: shop
            model-paths: &src ["src"]
            source-paths: *src
            models:
              shop:
                +meta: &owner {team: data, slack: "#data"}
                marts: {+meta: *owner}
            seeds:
              shop: {+meta: *owner}
            """, file: "dbt_project.yml")
        #expect(paths.modelPaths == ["src"])

        // A modest billion-laughs shape (10^3 values) is within bounds.
        let small = try DbtPaths.parse(laughs(2) + "boom: *a2\n", file: "dbt_project.yml")
        #expect(small == DbtPaths.defaults)
    }
}
