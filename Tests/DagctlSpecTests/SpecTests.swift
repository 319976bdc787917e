import Testing
@testable import DagctlSpec

@Suite("Version")
struct VersionTests {
    @Test func comparesNumerically() {
        #expect(Version("10")! > Version("9")!)
        #expect(Version("1.10")! > Version("1.9")!)
        #expect(Version("1.4")! == Version("1.4.0")!)
        #expect(Version("2")! > Version("1.99.99")!)
    }

    @Test func rejectsNonNumeric() {
        for bad in ["", "0", "v1", "1..2", "1.a", "-1", "1.", " 1"] { #expect(Version(bad) == nil, "\(bad)") }
    }
}

@Suite("config.yaml")
struct ProjectConfigTests {
    @Test func readsAllKeys() throws {
        let c = try ProjectConfig.parse("version: 8\nproject_dir: ./transform/\nrequirements: transform/req.txt\ndockerfile: build/Dockerfile\n", file: "c")
        #expect(c.version?.text == "8")
        #expect(c.projectDir == "transform")
        #expect(c.requirements == "transform/req.txt")
        #expect(c.dockerfile == "build/Dockerfile")
    }

    @Test func acceptsDottedVersionsEvenWhenYAMLSeesAFloat() throws {
        #expect(try ProjectConfig.parse("version: 1.4\n", file: "c").version == Version("1.4.0")!)
        #expect(try ProjectConfig.parse("version: \"1.4.2\"\n", file: "c").version?.text == "1.4.2")
        #expect(try ProjectConfig.parse("version: 1.4.2\n", file: "c").version?.text == "1.4.2")
    }

    @Test func missingVersion() {
        let issues = issues { try ProjectConfig.parse("project_dir: .\n", file: "main:.dagctl/config.yaml") }
        #expect(issues.count == 1)
        #expect(issues[0].key == "version")
        #expect(issues[0].description.hasPrefix("main:.dagctl/config.yaml"))
    }

    @Test func wrongTypeNamesKeyAndLine() {
        let issues = issues { try ProjectConfig.parse("# c\nversion: [1]\n", file: "c") }
        #expect(issues.map(\.line) == [2])
        #expect(issues[0].key == "version")
    }

    @Test func unknownKeyWithSuggestion() {
        let issues = issues { try ProjectConfig.parse("version: 1\nproject_dri: x\n", file: "c") }
        #expect(issues.count == 1)
        #expect(issues[0].line == 2)
        #expect(issues[0].key == "project_dri")
        #expect(issues[0].message.contains("did you mean 'project_dir'"))
    }

    @Test func duplicateKeyPointsAtSecondOccurrence() {
        let issues = issues { try ProjectConfig.parse("version: 1\ndockerfile: a\nversion: 2\n", file: "c") }
        #expect(issues.count == 1)
        #expect(issues[0].line == 3)
        #expect(issues[0].key == "version")
        #expect(issues[0].message.contains("duplicate"))
    }

    @Test func malformedYAMLHasLine() {
        let issues = issues { try ProjectConfig.parse("version: 1\nproject_dir: [a\n", file: "c") }
        #expect(issues.count == 1)
        #expect(issues[0].line != nil)
        #expect(issues[0].message.contains("malformed YAML"))
    }

    @Test func pathsMayNotEscape() {
        let issues = issues { try ProjectConfig.parse("version: 1\nproject_dir: ../elsewhere\nrequirements: /etc/passwd\n", file: "c") }
        #expect(Set(issues.compactMap(\.key)) == ["project_dir", "requirements"])
    }
}

@Suite("environment files")
struct EnvironmentSpecTests {
    let members: Set<String> = ["alice", "bob", "carol"]

    @Test func defaultsFollowProtection() throws {
        let dev = try EnvironmentSpec.parse("ref: main\n", name: "dev", file: "dev.yaml", members: members)
        #expect(dev.target == "dev")
        #expect(dev.requireSignature == false)
        #expect(dev.requiredApprovals == 1)
        #expect(dev.backend == .local)
        let prod = try EnvironmentSpec.parse("ref: origin/main\nprotected: true\nallowlist: [bob, carol]\nrequired_role: deployer\ntarget: production\n",
                                             name: "prod", file: "prod.yaml", members: members)
        #expect(prod.requireSignature)
        #expect(prod.allowlist == ["bob", "carol"])
        #expect(prod.target == "production")
    }

    @Test func badNamesAreErrorsNeverPaths() {
        for name in ["../x", "Prod", "-a", "a_b", "", String(repeating: "a", count: 33)] {
            let issues = issues { try EnvironmentSpec.parse("ref: main\n", name: name, file: "f", members: members) }
            #expect(issues.count == 1, "\(name)")
            #expect(issues.first?.message.contains("not a valid environment name") == true)
        }
    }

    @Test func allowlistMustNameMembers() {
        let issues = issues {
            try EnvironmentSpec.parse("ref: main\nprotected: true\nallowlist: [bob, mallory]\n", name: "prod", file: "prod.yaml", members: members)
        }
        #expect(issues.count == 1)
        #expect(issues[0].key == "allowlist")
        #expect(issues[0].line == 3)
        #expect(issues[0].message.contains("'mallory' is not a member"))
    }

    @Test func protectedNeedsAllowlist() {
        let issues = issues { try EnvironmentSpec.parse("ref: main\nprotected: true\n", name: "prod", file: "f", members: members) }
        #expect(issues.map(\.key) == ["allowlist"])
    }

    @Test func collectsEveryProblem() {
        let text = "ref: 5\nprotected: yes-please\nrequired_approvals: two\nretires: 3\nenv: {GOOD: \"1\", BAD: 2}\n"
        let issues = issues { try EnvironmentSpec.parse(text, name: "dev", file: "dev.yaml", members: members) }
        #expect(Set(issues.compactMap(\.key)) == ["ref", "protected", "required_approvals", "retires", "env.BAD"])
        #expect(issues.first { $0.key == "retires" }?.line == 4)
    }

    @Test func kubernetesBackend() throws {
        let text = """
        ref: main
        backend:
          kind: kubernetes
          namespace: analytics
          image: registry.example.com/analytics/dbt
          context: git://github.com/acme/analytics.git
          secret_env: [dbt-prod-credentials]
        """
        let env = try EnvironmentSpec.parse(text, name: "prod", file: "f", members: members)
        guard case .kubernetes(let k) = env.backend else { Issue.record("not kubernetes"); return }
        #expect(k.namespace == "analytics")
        #expect(k.timeoutSeconds == 3600)
        #expect(k.kanikoImage == EnvironmentSpec.KubernetesBackend.defaultKanikoImage)
        #expect(k.secretEnv == ["dbt-prod-credentials"])
    }

    @Test func kubernetesKeysOnLocalBackendAreErrors() {
        let issues = issues { try EnvironmentSpec.parse("ref: main\nbackend:\n  kind: local\n  namespace: x\n", name: "dev", file: "f", members: members) }
        #expect(issues.map(\.key) == ["backend.namespace"])
        #expect(issues.first?.line == 4)
    }

    /// A dbt project's image is built by Kaniko (no tag given); a SQLMesh project's is an existing one
    /// (its tag given). Which applies is known once the project's kind is: the kind reports it, with the line.
    @Test func imageTagRulesFollowTheProjectKind() throws {
        let tagged = "ref: main\nbackend:\n  kind: kubernetes\n  namespace: a\n  image: r/dbt:latest\n  context: git://h/r.git\n"
        let env = try EnvironmentSpec.parse(tagged, name: "dev", file: "f", members: members)
        #expect(env.keysNotFor(.dbt).map(\.description) == ["f:5: 'backend.image': give the image repository without a tag; the tag is derived from the plan id"])
        #expect(env.keysNotFor(.sqlmesh).isEmpty)
        let bare = try EnvironmentSpec.parse(tagged.replacingOccurrences(of: ":latest", with: "").replacingOccurrences(of: "git://h/r.git", with: "s3://b/c.tgz"),
                                             name: "dev", file: "f", members: members)
        #expect(bare.keysNotFor(.dbt).isEmpty)
        #expect(bare.keysNotFor(.sqlmesh).map(\.key) == ["backend.image", "backend.context"])
    }
}

@Suite("members, approvals and retries")
struct MemberAndDecisionTests {
    @Test func members() throws {
        let m = try Members.parse("members:\n  - name: alice\n    emails: [Alice@Example.com]\n    roles: [admin]\n    keys: [\"\(RealKeys.bob)\"]\n", file: "m")
        #expect(m.member(withEmail: "alice@example.com")?.name == "alice")
        #expect(m["alice"]?.roles == ["admin"])
    }

    @Test func badMembers() {
        let text = "members:\n  - name: Alice\n  - name: bob\n    emails: [x@y.z]\n  - name: bob\n  - name: carol\n    emails: [x@y.z]\n    keys: [nonsense]\n    role: [a]\n"
        let issues = issues { try Members.parse(text, file: "members.yaml") }
        let messages = issues.map(\.description).joined(separator: "\n")
        #expect(messages.contains("'Alice' is not a valid member name"))
        #expect(messages.contains("listed twice"))
        #expect(messages.contains("also belongs to 'bob'"))
        #expect(messages.contains("members.yaml:8: 'members[3].keys': 'nonsense' is not 'TYPE BASE64 [comment]'"))
        #expect(messages.contains("members[3].role"))
        #expect(issues.count == 5)
    }

    @Test func approvalFile() throws {
        let sha = String(repeating: "ab", count: 20)
        let a = try ApprovalFile.parse("plan: prod-v8-abababab\ncommit: \(sha)\ndecision: reject\nby: bob\ncomment: no\n", file: "a")
        #expect(a.decision == .reject)
        let issues = issues { try ApprovalFile.parse("plan: p\ncommit: abc\ndecision: maybe\n", file: "a") }
        #expect(Set(issues.compactMap(\.key)) == ["commit", "decision", "by"])
    }

    @Test func retriesAreLimitedToThree() {
        let issues = issues { try RetryFile.parse("plan: p\nretries: 4\nby: bob\n", file: "r") }
        #expect(issues.map(\.key) == ["retries"])
        #expect(issues[0].message.contains("1..3"))
    }
}

func issues<T>(_ body: () throws -> T) -> [SpecIssue] {
    do {
        _ = try body()
        return []
    } catch let error as SpecIssues {
        return error.issues
    } catch {
        return [SpecIssue(file: "?", message: "unexpected error \(error)")]
    }
}
