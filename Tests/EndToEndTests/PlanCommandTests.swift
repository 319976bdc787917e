import Foundation
import Testing
import TestSupport

/// A repository and desired-state directory for running the real binary.
final class Workspace: @unchecked Sendable {
    let repo = GitFixture()
    let dir = TemporaryDirectory("dagctl-ws")
    var desired: String { dir.file("desired") }
    var statePath: String { dir.file("state/state.json") }

    init() {
        dir.write("desired/members.yaml", """
            members:
              - name: alice
                emails: [alice@example.com]
                roles: [admin]
              - name: bob
                emails: [bob@example.com]
                roles: [deployer]
            """)
        dir.write("desired/environments/dev.yaml", "ref: main\n")
        dir.write("desired/environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [bob]\nrequire_signature: false\n")
        repo.setVersion("1")
        repo.writeDbtProject()
        repo.commit("initial", author: "alice")
    }

    func dagctl(_ args: String...) -> ProcessOutput {
        TestSupport.dagctl(Array(args), in: dir.path,
                           environment: ["DAGCTL_REPO": repo.path, "DAGCTL_DESIRED": desired, "DAGCTL_STATE": statePath])
    }
}

@Suite("dagctl plan, validate and status (the real binary)", .serialized)
struct PlanCommandTests {
    @Test func jsonHasTheContractFields() throws {
        let ws = Workspace()
        let out = ws.dagctl("plan", "--output", "json")
        #expect(out.status == 0, "\(out.stderr)")
        let doc = try #require(parseJSON(out.stdout))
        let envs = try #require(doc["environments"] as? [[String: Any]])
        #expect(envs.map { $0["name"] as? String } == ["dev", "prod"])
        let prod = envs[1]
        for key in ["name", "ref", "head", "deployed", "errors", "plan"] { #expect(prod.keys.contains(key), "\(key)") }
        #expect(prod["deployed"] is NSNull)
        #expect((prod["head"] as? String)?.count == 40)
        let plan = try #require(prod["plan"] as? [String: Any])
        for key in ["id", "status", "version", "base", "commit", "author", "commits_behind", "changes", "scope", "select",
                    "command", "required_approvals", "approvals", "attempts", "warnings"] {
            #expect(plan.keys.contains(key), "plan.\(key)")
        }
        #expect(plan["status"] as? String == "pending")
        #expect(plan["version"] as? String == "1")
        #expect(plan["base"] is NSNull)
        #expect(plan["author"] as? String == "alice")
        #expect(plan["commits_behind"] as? Int == 0)
        #expect(plan["scope"] as? String == "all")
        #expect(plan["command"] as? [String] == ["dbt", "build", "--target", "prod"])
        #expect(plan["required_approvals"] as? Int == 1)
        let change = try #require((plan["changes"] as? [[String: Any]])?.first { $0["path"] as? String == "models/marts/orders.sql" })
        #expect(change["old_path"] is NSNull)
        #expect(change["change"] as? String == "added")
        #expect(change["category"] as? String == "model")
        #expect(!FileManager.default.fileExists(atPath: ws.statePath), "plan writes nothing")
        #expect(ws.dagctl("plan", "--output", "json").stdout == out.stdout, "stable output")
    }

    @Test func selectivePlanInTextAndMarkdown() throws {
        let ws = Workspace()
        let base = ws.repo.git("rev-parse", "HEAD")
        ws.repo.write("models/marts/orders.sql", "select 2\n")
        ws.repo.setVersion("2")
        ws.repo.commit("bump", author: "bob")
        let text = ws.dagctl("plan", "--env", "prod", "--base", base)
        #expect(text.status == 0)
        #expect(text.stdout.contains("scope      selective: orders"))
        #expect(text.stdout.contains("command    dbt build --select orders --target prod"))
        #expect(text.stdout.contains("author bob"))
        #expect(text.stdout.contains("preview    a preview of main @"))
        #expect(text.stdout.contains("approvals are not judged in a preview against another base"), "approvals belong to the plan reconcile explains")
        let md = ws.dagctl("plan", "--env", "prod", "--base", base, "--output", "markdown")
        #expect(md.stdout.contains("### `prod` (protected)"))
        #expect(md.stdout.contains("| scope | selective: `orders` |"))
        #expect(md.stdout.contains("| model | modified | `models/marts/orders.sql` |"))
    }

    @Test func statusReadsTheStateFile() throws {
        let ws = Workspace()
        let head = ws.repo.git("rev-parse", "HEAD")
        ws.dir.write("state/state.json", """
            {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "\(head)",
              "deployed": {"commit": "\(head)", "version": "1", "plan": "dev-v1-\(head.prefix(10))"},
              "plans": [{"id": "dev-v1-\(head.prefix(10))", "environment": "dev", "version": "1", "commit": "\(head)",
                         "changes": [], "scope": "all", "select": [], "warnings": [], "status": "succeeded",
                         "attempts": [{"n": 1, "outcome": "succeeded", "phase": "run", "summary": {"models": {"success": 2, "error": 0, "skipped": 0, "warned": 0}}}]}]}}}
            """)
        let out = ws.dagctl("status", "--output", "json")
        #expect(out.status == 0, "\(out.stderr)")
        let env = try #require((parseJSON(out.stdout)?["environments"] as? [[String: Any]])?.first)
        #expect(env["name"] as? String == "dev")
        #expect((env["deployed"] as? [String: Any])?["version"] as? String == "1")
        let plan = try #require(env["plan"] as? [String: Any])
        #expect(plan["status"] as? String == "succeeded")
        let attempt = try #require((plan["attempts"] as? [[String: Any]])?.first)
        #expect(((attempt["summary"] as? [String: Any])?["models"] as? [String: Any])?["success"] as? Int == 2)
        let text = ws.dagctl("status")
        #expect(text.stdout.contains("#1 succeeded in run: models 2 ok"))
        // With the same version at head, plan shows the existing plan, not a new one.
        let plan2 = ws.dagctl("plan", "--env", "dev")
        #expect(plan2.stdout.contains("dev-v1-\(head.prefix(10))  succeeded"))
        #expect(!plan2.stdout.contains("(new)"))
    }

    @Test func validateListsEveryProblemWithFileAndLine() throws {
        let ws = Workspace()
        ws.dir.write("desired/environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [bob, mallory]\nretires: 2\n")
        ws.dir.write("desired/environments/Bad.yaml", "ref: main\n")
        ws.dir.write("desired/approvals/prod-v1-0123456789/bob.yaml", "plan: prod-v1-0123456789\ncommit: nope\ndecision: approve\nby: bob\n")
        let out = ws.dagctl("validate")
        #expect(out.status == 1)
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasSuffix("environments/prod.yaml:3: 'allowlist': 'mallory' is not a member in members.yaml") })
        #expect(lines.contains { $0.contains("environments/prod.yaml:4: 'retires': unknown key") })
        #expect(lines.contains { $0.contains("environments/Bad.yaml: 'Bad' is not a valid environment name") })
        #expect(lines.contains { $0.contains("bob.yaml:2: 'commit': expected the full 40-hex commit id") })
        #expect(out.stdout.contains("4 problems found"), "problems and their count on stdout, together")

        let good = Workspace()
        let ok = good.dagctl("validate")
        #expect(ok.status == 0, "\(ok.stdout)")
        #expect(ok.stdout.hasPrefix("ok: 2 environments (dev, prod), 2 members"))
    }

    @Test func badEnvironmentIsSkippedOthersStillPlan() throws {
        let ws = Workspace()
        ws.dir.write("desired/environments/prod.yaml", "ref: main\nprotected: maybe\n")
        let out = ws.dagctl("plan", "--output", "json")
        #expect(out.status == 1)
        let envs = try #require(parseJSON(out.stdout)?["environments"] as? [[String: Any]])
        #expect(envs[0]["plan"] is [String: Any])
        #expect((envs[1]["errors"] as? [String])?.first?.contains("prod.yaml:2: 'protected': expected true or false") == true)
    }

    @Test func badMembersStopsTheRun() {
        let ws = Workspace()
        ws.dir.write("desired/members.yaml", "members:\n  - name: alice\n    name: again\n")
        let out = ws.dagctl("plan")
        #expect(out.status == 1)
        #expect(out.stderr.contains("members.yaml:3: 'name': duplicate key"))
    }

    @Test func notARepositoryAndMissingRef() {
        let ws = Workspace()
        let notRepo = TestSupport.dagctl(["plan", "--repo", ws.dir.path, "--desired", ws.desired, "--state", ws.statePath])
        #expect(notRepo.status == 1)
        #expect(notRepo.stderr.contains("is not a git repository"))
        ws.dir.write("desired/environments/dev.yaml", "ref: release\n")
        let noRef = ws.dagctl("plan", "--env", "dev")
        #expect(noRef.status == 1)
        #expect(noRef.stdout.contains("ref 'release' was not found"))
    }

    @Test func corruptStateIsLeftUntouched() throws {
        let ws = Workspace()
        ws.dir.write("state/state.json", "{\"schema_version\": 1, \"environments\": ")
        let before = try Data(contentsOf: URL(fileURLWithPath: ws.statePath))
        for args in [["plan"], ["status"]] {
            let out = TestSupport.dagctl(args, in: ws.dir.path, environment: ["DAGCTL_REPO": ws.repo.path, "DAGCTL_DESIRED": ws.desired, "DAGCTL_STATE": ws.statePath])
            #expect(out.status == 1)
            #expect(out.stderr.contains("cannot be read"))
            #expect(out.stderr.contains("left untouched"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: ws.statePath)) == before)
    }

    @Test func usageErrorsExitTwo() {
        let ws = Workspace()
        #expect(ws.dagctl("plan", "--output", "yaml").status == 2)
        #expect(ws.dagctl("no-such-command").status == 2)
        #expect(ws.dagctl("status", "--output", "markdown").status == 2)
        #expect(!ws.dagctl("status", "--help").stdout.contains("markdown"), "help lists only what status accepts")
        #expect(ws.dagctl("--help").status == 0)
    }
}
