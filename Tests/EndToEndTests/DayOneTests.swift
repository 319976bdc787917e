import Foundation
import Testing
import TestSupport

/// What a team meets on its first day: init, the one edit, validate and plan; cron-friendly output;
/// failures and pending plans that say what to do next; previews that never make an approval look forged.
@Suite("day one (the real binary)", .serialized)
struct DayOneTests {
    /// After `init` and the one edit it asks for (uncomment members) plus committing the config,
    /// `validate` passes and `plan` shows the first plan — on a project we did not write.
    @Test func initOnJaffleShopThenTheOneEditThenPlan() throws {
        let dir = TemporaryDirectory("dagctl-init")
        let bundle = packageRoot + "/../shared/corpus/jaffle_shop_duckdb.bundle"
        try #require(FileManager.default.fileExists(atPath: bundle), "the public jaffle_shop_duckdb bundle is expected at \(bundle)")
        run("git", ["clone", "-q", bundle, dir.file("repo")])
        let env = ["DAGCTL_REPO": dir.file("repo"), "DAGCTL_DESIRED": dir.file("desired"), "DAGCTL_STATE": dir.file("state/state.json")]
        let initOut = dagctl(["init"], in: dir.path, environment: env)
        #expect(initOut.status == 0, "\(initOut.stdout)\n\(initOut.stderr)")
        #expect(initOut.stdout.contains("a dbt project in the repository's root"))
        #expect(initOut.stdout.contains("next steps:"))
        for file in ["repo/.dagctl/config.yaml", "desired/members.yaml", "desired/environments/dev.yaml",
                     "desired/environments/prod.yaml", "desired/profiles/profiles.yml"] {
            #expect(FileManager.default.fileExists(atPath: dir.file(file)), "\(file)")
        }
        #expect(dir.read("desired/profiles/profiles.yml")?.contains("jaffle_shop:") == true, "the project's profile name")

        // init never overwrites.
        dir.write("desired/environments/dev.yaml", "ref: duckdb\nrequired_approvals: 0\n# mine\n")
        let again = dagctl(["init"], in: dir.path, environment: env)
        #expect(again.stdout.contains("kept   \(dir.file("desired/environments/dev.yaml")) (it exists)") || again.stdout.contains("kept   desired/environments/dev.yaml"), "\(again.stdout)")
        #expect(dir.read("desired/environments/dev.yaml")?.contains("# mine") == true)

        // The one edit: uncomment the members; then commit the config.
        let members = try #require(dir.read("desired/members.yaml")).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("#  ") ? String($0.dropFirst()) : String($0) }.joined(separator: "\n")
        dir.write("desired/members.yaml", members)
        run("git", ["-C", dir.file("repo"), "add", ".dagctl/config.yaml"])
        run("git", ["-C", dir.file("repo"), "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "dagctl"])
        let validate = dagctl(["validate"], in: dir.path, environment: env)
        #expect(validate.status == 0, "\(validate.stdout)")
        let plan = dagctl(["plan"], in: dir.path, environment: env)
        #expect(plan.status == 0, "\(plan.stdout)\n\(plan.stderr)")
        #expect(plan.stdout.contains("plan       dev-v1-"))
        #expect(plan.stdout.contains("plan       prod-v1-"))
        #expect(plan.stdout.contains("next       dagctl approve dev-v1-") || plan.stdout.contains("add an ssh key"), "a pending plan says what to do: \(plan.stdout)")
    }

    @Test func initFindsTheSQLMeshExample() throws {
        let ws = SQLMeshWorkspace()
        run("git", ["-C", ws.repo.path, "rm", "-q", "-r", ".dagctl"])
        ws.repo.commit("no dagctl yet")
        let out = TestSupport.dagctl(["init", "--desired", ws.dir.file("fresh")], in: ws.dir.path, environment: ws.environment)
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        #expect(out.stdout.contains("a sqlmesh project"))
        #expect(ws.repo.dir.read(".dagctl/config.yaml")?.contains("kind: sqlmesh") == true)
        #expect(ws.dir.read("fresh/environments/prod.yaml")?.contains("sqlmesh_environment: prod") == true)
        #expect(!FileManager.default.fileExists(atPath: ws.dir.file("fresh/profiles")), "no dbt profiles for SQLMesh")
    }

    /// Git does not check emails: one with '#', ',' or ']' must still make valid YAML once uncommented.
    @Test func initQuotesOddEmailsAndValidateCatchesSharedSQLMeshEnvironments() throws {
        let ws = SQLMeshWorkspace()
        run("git", ["-C", ws.repo.path, "rm", "-q", "-r", ".dagctl"])
        ws.repo.write("README.md", "x\n")
        run("git", ["-C", ws.repo.path, "add", "-A"])
        run("git", ["-C", ws.repo.path, "-c", "user.name=Zed", "-c", "user.email=z@x.io # [odd], yes", "commit", "-q", "-m", "odd"])
        #expect(TestSupport.dagctl(["init", "--desired", ws.dir.file("fresh")], in: ws.dir.path, environment: ws.environment).status == 0)
        let members = try #require(ws.dir.read("fresh/members.yaml")).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("#  ") ? String($0.dropFirst()) : String($0) }.joined(separator: "\n")
        ws.dir.write("fresh/members.yaml", members)
        run("git", ["-C", ws.repo.path, "add", ".dagctl/config.yaml"])
        ws.repo.commit("dagctl")
        ws.dir.write("fresh/environments/dev2.yaml", "ref: main\nrequired_approvals: 0\nsqlmesh_environment: dev\n")
        let out = TestSupport.dagctl(["validate", "--desired", ws.dir.file("fresh")], in: ws.dir.path, environment: ws.environment)
        #expect(!out.stdout.contains("members.yaml"), "the quoted emails parse: \(out.stdout)")
        #expect(out.stdout.contains("environments dev and dev2 all plan and apply SQLMesh environment 'dev'"), "\(out.stdout)")
    }

    /// requirements: none takes the tool from PATH even where a requirements.txt exists (here one that
    /// could never install).
    @Test func requirementsNoneUsesTheToolFromPATH() throws {
        let ws = DeployWorkspace()
        ws.repo.write("requirements.txt", "no-such-package-dagctl==9.9.9\n")
        ws.repo.write(".dagctl/config.yaml", "version: 2\nrequirements: none\n")
        ws.repo.commit("dbt from PATH", author: "bob")
        let out = ws.dagctl("reconcile", "--quiet")
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let id = try #require(try ws.devPlans().last?["id"] as? String)
        #expect(ws.dir.read("state/logs/\(id)/attempt-1/build.log")?.contains("requirements: none): using ") == true)
    }

    @Test func quietCronOutputAndTheSummaryLine() throws {
        let ws = DeployWorkspace()
        let first = ws.dagctl("reconcile", "--quiet")
        #expect(first.status == 0)
        let lines = first.stdout.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("dev: ") }, "one line per action: \(first.stdout)")
        #expect(!first.stdout.contains("[dev run]"), "no live logs")
        let idle = ws.dagctl("reconcile", "--quiet")
        #expect(idle.status == 0)
        #expect(idle.stdout.isEmpty && idle.stderr.isEmpty, "nothing happened, nothing printed: \(idle.stdout)\(idle.stderr)")
        let loud = ws.dagctl("reconcile")
        #expect(loud.stdout.hasSuffix("dagctl: 1 environment, 0 plans explained, 0 deployed, 0 failed, 0 waiting for approval\n"), "\(loud.stdout)")
        let json = ws.dagctl("reconcile", "--output", "json")
        #expect(parseJSON(json.stdout) != nil, "the document stays JSON")
        #expect(json.stderr.contains("dagctl: 1 environment"))
    }

    @Test func aFailureSaysWhatToDoNext() throws {
        let ws = DeployWorkspace()
        #expect(ws.dagctl("reconcile").status == 0)
        ws.bump(2) { $0.write("models/marts/broken.sql", "select from where\n") }
        let failed = ws.dagctl("reconcile")
        #expect(failed.status == 1)
        let id = try #require(try ws.devPlans().last?["id"] as? String)
        #expect(failed.stdout.contains("next       dagctl logs \(id)"), "\(failed.stdout)")
        #expect(failed.stdout.contains("dagctl retry \(id) --as alice"))
        let reason = try #require(try ws.devPlans().last?["status_reason"] as? String)
        let shown = failed.stdout.components(separatedBy: reason.replacingOccurrences(of: "attempt 1 failed in run: ", with: "")).count - 1
        #expect(shown <= 2, "the reason is printed at most twice (attempt, error), not \(shown) times")
        #expect(failed.stdout.contains(ws.stateDir), "the logs' folder is named in full")
    }

    @Test func validateJudgesTheDecisionFilesOfCurrentPlans() throws {
        let ws = Workspace()
        // alice bumped the version (she is the author) and approves prod herself; bob's file is forged.
        ws.dir.write("desired/environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [alice, bob]\nrequire_signature: false\n")
        let doc = try #require(parseJSON(ws.dagctl("plan", "--env", "prod", "--output", "json").stdout))
        let plan = try #require((doc["environments"] as? [[String: Any]])?.first?["plan"] as? [String: Any])
        let id = try #require(plan["id"] as? String), commit = try #require(plan["commit"] as? String)
        ws.dir.write("desired/approvals/\(id)/alice.yaml", "plan: \(id)\ncommit: \(commit)\ndecision: approve\nby: alice\n")
        ws.dir.write("desired/approvals/\(id)/bob.yaml", "plan: \(id)\ncommit: \(commit)\ndecision: approve\nby: bob\nsignature: nonsense\n")
        let judged = ws.dagctl("validate")
        #expect(judged.status == 1)
        #expect(judged.stdout.contains("alice.yaml: does not count for the plan: 'alice' authored the version bump"), "\(judged.stdout)")
        #expect(judged.stdout.contains("bob.yaml: does not count for the plan: 'bob' has no keys in members.yaml to verify the signature with"), "\(judged.stdout)")

        // A requirements file named in the config must exist at the ref.
        ws.repo.write(".dagctl/config.yaml", "version: 2\nrequirements: deps/requirements.txt\n")
        ws.repo.commit("requirements moved", author: "alice")
        let out = ws.dagctl("validate")
        #expect(out.stdout.contains("'requirements': deps/requirements.txt does not exist at main"), "\(out.stdout)")
    }

    /// A preview against another base shows the plan as a preview and never judges a valid approval
    /// against details it was not signed for.
    @Test func aPreviewAgainstAnotherBaseNeverMakesAnApprovalLookForged() throws {
        let ws = Workspace()
        let base = ws.repo.git("rev-parse", "HEAD")
        ws.repo.write("models/a.sql", "select 1\n")
        ws.repo.write("macros/m.sql", "{% macro m() %}1{% endmacro %}\n")
        ws.repo.setVersion("2")
        ws.repo.commit("v2", author: "alice")
        let doc = try #require(parseJSON(ws.dagctl("plan", "--env", "prod", "--output", "json").stdout))
        let plan = try #require((doc["environments"] as? [[String: Any]])?.first?["plan"] as? [String: Any])
        let id = try #require(plan["id"] as? String), commit = try #require(plan["commit"] as? String)
        ws.dir.write("desired/approvals/\(id)/bob.yaml", "plan: \(id)\ncommit: \(commit)\ndecision: approve\nby: bob\n")
        #expect(ws.dagctl("plan", "--env", "prod").stdout.contains("✓ bob approve"))
        let preview = ws.dagctl("plan", "--env", "prod", "--base", base)
        #expect(preview.stdout.contains("preview    a preview of main @"), "\(preview.stdout)")
        #expect(!preview.stdout.contains("✗ bob"), "a valid approval never looks forged: \(preview.stdout)")
        #expect(preview.stdout.contains("approvals are not judged in a preview against another base"))
    }

    @Test func approveRefusesToReplaceADecisionWithoutForce() throws {
        let ws = Workspace()
        let doc = try #require(parseJSON(ws.dagctl("plan", "--env", "dev", "--output", "json").stdout))
        let id = try #require(((doc["environments"] as? [[String: Any]])?.first?["plan"] as? [String: Any])?["id"] as? String)
        #expect(ws.dagctl("approve", id, "--as", "bob", "--comment", "ok").status == 0)
        let again = ws.dagctl("approve", id, "--as", "bob", "--reject")
        #expect(again.status == 1)
        #expect(again.stderr.contains("exists (approve by bob, comment \"ok\", unsigned); pass --force to replace it"), "\(again.stderr)")
        #expect(ws.dagctl("approve", id, "--as", "bob", "--reject", "--force").status == 0)
        #expect(ws.dir.read("desired/approvals/\(id)/bob.yaml")?.contains("decision: reject") == true)
    }

    @Test func versionCompletionsHelpAndOneAliasForAllCommands() throws {
        let ws = Workspace()
        #expect(ws.dagctl("--version").stdout.trimmingCharacters(in: .whitespacesAndNewlines).range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression) != nil)
        for shell in ["bash", "zsh", "fish"] {
            let script = ws.dagctl("completions", shell)
            #expect(script.status == 0 && script.stdout.contains("reconcile"), "\(shell)")
        }
        // The parser wraps help to the terminal: compare with the line breaks folded into spaces.
        #expect(ws.dagctl("--help").stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains("75 another run holds the lock"))
        #expect(ws.dagctl("validate", "--help").stdout.contains("dbt_project.yml"))
        let inputs = ["--repo", ws.repo.path, "--desired", ws.desired, "--state", ws.statePath]
        for command in [["status"], ["plan"], ["validate"], ["logs", "dev-v1-0123456789"]] {
            #expect(TestSupport.dagctl(command + inputs, in: ws.dir.path).status != 2, "\(command[0]) takes --repo, --desired and --state")
        }
        let wrongRepo = ws.dagctl("validate", "--repo", ws.dir.file("nope"))
        #expect(wrongRepo.stdout.contains("is not a git repository") && wrongRepo.stdout.contains("problem"), "problems and their count on one stream")
    }

    /// The pull-request comment: the approve line per member who may, and files in the text output's order.
    @Test func theMarkdownCommentSaysHowToApprove() throws {
        let ws = Workspace()
        ws.dir.write("desired/members.yaml", try #require(ws.dir.read("desired/members.yaml")) + "\n  - name: carol\n    emails: [carol@example.com]\n    roles: [deployer]\n")
        ws.dir.write("desired/environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [bob, carol]\nrequire_signature: false\n")
        for i in 0..<25 { ws.repo.write("models/m\(i).sql", "select \(i)\n") }
        ws.repo.write("README.md", "docs\n")
        ws.repo.setVersion("2")
        ws.repo.commit("many models", author: "alice")
        let out = ws.dagctl("plan", "--env", "prod", "--output", "markdown")
        let md = out.stdout
        #expect(md.contains("dagctl approve prod-v2-"), "\(md)\n\(out.stderr)")
        #expect(md.contains("--as bob") && md.contains("--as carol") && !md.contains("--as alice"))
        #expect(md.contains("<details><summary>all "), "a long list is collapsed")
        let model = try #require(md.range(of: "| model |")), other = try #require(md.range(of: "| other |"))
        #expect(model.lowerBound < other.lowerBound, "models first, as in the text output")
    }
}
