import Foundation
import Testing
import TestSupport

/// The example dbt project in a temporary git repository, with `dev` deploying without approval.
final class DeployWorkspace: @unchecked Sendable {
    let repo = GitFixture()
    let dir = TemporaryDirectory("dagctl-deploy")
    var statePath: String { dir.file("state/state.json") }
    var stateDir: String { dir.file("state") }

    init(devEnv: [String: String] = [:]) {
        run("cp", ["-R", packageRoot + "/examples/project/.", repo.path])
        run("cp", ["-R", packageRoot + "/examples/desired", dir.file("desired")])
        setDevEnv(devEnv)
        try? FileManager.default.removeItem(atPath: dir.file("desired/environments/prod.yaml"))
        repo.commit("shop v1", author: "alice")
    }

    func setDevEnv(_ env: [String: String]) {
        var text = "ref: main\ntarget: dev\nrequired_approvals: 0\n"
        if !env.isEmpty { text += "env:\n" + env.sorted { $0.key < $1.key }.map { "  \($0.key): \"\($0.value)\"\n" }.joined() }
        dir.write("desired/environments/dev.yaml", text)
    }

    var environment: [String: String] {
        ["DAGCTL_REPO": repo.path, "DAGCTL_DESIRED": dir.file("desired"), "DAGCTL_STATE": statePath,
         "SHOP_WAREHOUSE_DIR": dir.path, "PATH": pathWithVenv]
    }

    func dagctl(_ args: String...) -> ProcessOutput {
        TestSupport.dagctl(Array(args), in: dir.path, environment: environment)
    }

    /// A workspace whose project has a Python model that sleeps `SHOP_SLOW_SECONDS` (60 in `dev`), so a
    /// test can act while dbt is in the run phase.
    static func withSlowModel() -> DeployWorkspace {
        let ws = DeployWorkspace(devEnv: ["SHOP_SLOW_SECONDS": "60"])
        ws.bump(1) {
            $0.write("models/marts/slow.py", """
                import os
                import time

                def model(dbt, session):
                    time.sleep(float(os.environ.get("SHOP_SLOW_SECONDS", "0")))
                    return session.sql("select 1 as id")
                """)
        }
        return ws
    }

    /// Commits a change with a version bump.
    func bump(_ version: Int, _ change: (GitFixture) -> Void) {
        change(repo)
        repo.setVersion(String(version))
        repo.commit("version \(version)", author: "bob")
    }

    func state() throws -> [String: Any] {
        let text = try #require(dir.read("state/state.json"))
        return try #require(parseJSON(text))
    }

    /// The newest dev plan, or nil while there is none (for polling: records no test issue).
    func peekNewestPlan() -> [String: Any]? {
        guard let text = dir.read("state/state.json"), let doc = parseJSON(text) else { return nil }
        return (((doc["environments"] as? [String: Any])?["dev"] as? [String: Any])?["plans"] as? [[String: Any]])?.last
    }

    func devPlans() throws -> [[String: Any]] {
        try #require(((try state()["environments"] as? [String: Any])?["dev"] as? [String: Any])?["plans"] as? [[String: Any]])
    }

    func deployedVersion() throws -> String? {
        (((try state()["environments"] as? [String: Any])?["dev"] as? [String: Any])?["deployed"] as? [String: Any])?["version"] as? String
    }

    /// The resources dbt ran for a plan's attempt, from the kept run_results.json.
    func ranNodes(_ plan: String, attempt: Int = 1) throws -> [String] {
        let text = try #require(dir.read("state/logs/\(plan)/attempt-\(attempt)/run_results.json"))
        let results = try #require(parseJSON(text)?["results"] as? [[String: Any]])
        return results.compactMap { $0["unique_id"] as? String }.sorted()
    }
}

@Suite("dagctl reconcile with real dbt on DuckDB", .serialized)
struct ReconcileTests {
    @Test func deploysOnlyWhatChanged() throws {
        let ws = DeployWorkspace()

        // First deploy builds everything.
        let first = ws.dagctl("reconcile")
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        var plans = try ws.devPlans()
        let v1 = try #require(plans.last?["id"] as? String)
        #expect(plans.last?["status"] as? String == "succeeded")
        #expect(try ws.ranNodes(v1).filter { $0.hasPrefix("model.") } ==
                ["model.shop.customers", "model.shop.orders_daily", "model.shop.stg_customers", "model.shop.stg_orders"])
        #expect(first.stdout.contains("[dev run] "), "logs stream live with a prefix")
        #expect(try ws.deployedVersion() == "1")

        // Nothing new: nothing happens, the state file is not rewritten.
        let before = ws.dir.read("state/state.json")
        let again = ws.dagctl("reconcile")
        #expect(again.status == 0)
        #expect(again.stdout.contains("did        nothing to do"))
        #expect(ws.dir.read("state/state.json") == before)

        // One model changed: only that model runs.
        ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        #expect(ws.dagctl("reconcile").status == 0)
        plans = try ws.devPlans()
        let v2 = try #require(plans.last?["id"] as? String)
        #expect(plans.last?["scope"] as? String == "selective")
        #expect(try ws.ranNodes(v2) == ["model.shop.customers"])
        let summary = try #require(((plans.last?["attempts"] as? [[String: Any]])?.first?["summary"] as? [String: Any])?["models"] as? [String: Any])
        #expect(summary["success"] as? Int == 1)

        // A macro change runs everything.
        ws.bump(3) { $0.write("macros/cents_to_dollars.sql", $0.dir.read("macros/cents_to_dollars.sql")! + "\n{# v3 #}\n") }
        #expect(ws.dagctl("reconcile").status == 0)
        let v3 = try #require(try ws.devPlans().last?["id"] as? String)
        #expect(try ws.ranNodes(v3).filter { $0.hasPrefix("model.") }.count == 4)
        #expect(try ws.ranNodes(v3).contains { $0.hasPrefix("test.") })

        // A README-only change is build_only: no dbt run at all.
        ws.bump(4) { $0.write("README.md", "# shop\n\nNow with docs.\n") }
        let readme = ws.dagctl("reconcile")
        #expect(readme.status == 0)
        plans = try ws.devPlans()
        let v4 = try #require(plans.last?["id"] as? String)
        #expect(plans.last?["scope"] as? String == "build_only")
        #expect(plans.last?["status"] as? String == "succeeded")
        #expect(ws.dir.read("state/logs/\(v4)/attempt-1/build.log") != nil)
        #expect(ws.dir.read("state/logs/\(v4)/attempt-1/run.log") == nil)
        #expect(!readme.stdout.contains("[dev run]"))
        #expect(try ws.deployedVersion() == "4")

        // Finished plans leave the state file for the history file.
        #expect(try ws.devPlans().map { $0["id"] as? String } == [v4])
        let history = ws.dagctl("status", "--history")
        #expect(history.stdout.contains("history of dev (3 finished plans)"))
        #expect(history.stdout.contains("\(v2)  succeeded  selective"))
        let historyJSON = try #require(parseJSON(ws.dagctl("status", "--history", "--output", "json").stdout))
        #expect(((historyJSON["history"] as? [String: Any])?["dev"] as? [[String: Any]])?.map { $0["id"] as? String } == [v1, v2, v3])

        // What dagctl wrote matches the committed JSON Schema.
        #expect(stateSchemaProblems(ws.statePath) == "")

        // logs prints what was kept.
        let logs = ws.dagctl("logs", v2, "--phase", "run")
        #expect(logs.status == 0)
        #expect(logs.stdout.contains("dbt build --select customers --target dev"))
        #expect(logs.stdout.contains("Done. PASS=1"))
        #expect(ws.dagctl("logs", v2, "--attempt", "2").status == 1)
    }

    @Test func failureRetryAndRetryLimit() throws {
        let ws = DeployWorkspace()
        #expect(ws.dagctl("reconcile").status == 0)

        // A model that needs an environment variable the environment does not set yet.
        ws.bump(2) { $0.write("models/marts/fx.sql", "select {{ env_var('SHOP_FX_RATE') }} as rate\n") }
        let failed = ws.dagctl("reconcile")
        #expect(failed.status == 1)
        var plans = try ws.devPlans()
        let v2 = try #require(plans.last?["id"] as? String)
        #expect(plans.last?["status"] as? String == "failed")
        #expect((plans.last?["status_reason"] as? String)?.contains("attempt 1 failed in run") == true)
        #expect(try ws.deployedVersion() == "1", "a failed plan leaves the deployed commit where it was")

        // Nothing retries without a request.
        #expect(ws.dagctl("reconcile").stdout.contains("nothing to do"))

        // Fix the environment (not the commit) and ask for a retry.
        ws.setDevEnv(["SHOP_FX_RATE": "1.25"])
        let ask = ws.dagctl("retry", v2, "--as", "carol")
        #expect(ask.status == 0, "\(ask.stderr)")
        let retried = ws.dagctl("reconcile")
        #expect(retried.status == 0, "\(retried.stdout)")
        plans = try ws.devPlans()
        #expect(plans.last?["id"] as? String == v2, "a retry reuses the plan, its commit and selection")
        #expect(plans.last?["status"] as? String == "succeeded")
        #expect((plans.last?["attempts"] as? [[String: Any]])?.map { $0["outcome"] as? String } == ["failed", "succeeded"])
        #expect(try ws.ranNodes(v2, attempt: 2) == ["model.shop.fx"])
        #expect(try ws.deployedVersion() == "2")

        // A plan that keeps failing gets at most three retries.
        ws.bump(3) { $0.write("models/marts/broken.sql", "select from where\n") }
        #expect(ws.dagctl("reconcile").status == 1)
        let v3 = try #require(try ws.devPlans().last?["id"] as? String)
        for retry in 1...3 {
            #expect(ws.dagctl("retry", v3, "--as", "carol").status == 0)
            #expect(ws.dir.read("desired/retries/\(v3).yaml")?.contains("retries: \(retry)\n") == true)
            #expect(ws.dagctl("reconcile").status == 1)
        }
        #expect((try ws.devPlans().last?["attempts"] as? [[String: Any]])?.count == 4)
        let fourth = ws.dagctl("retry", v3, "--as", "carol")
        #expect(fourth.status == 1)
        #expect(fourth.stderr.contains("at most 3 retries"))
        ws.dir.write("desired/retries/\(v3).yaml", "plan: \(v3)\nretries: 4\nby: carol\n")
        let refused = ws.dagctl("reconcile")
        #expect(refused.stdout.contains("ignored"))
        #expect(refused.stdout.contains("out of range; expected 1..3"))
        #expect((try ws.devPlans().last?["attempts"] as? [[String: Any]])?.count == 4)
        #expect(try ws.deployedVersion() == "2")
    }

    @Test func survivesSIGKILLDuringTheRunPhase() throws {
        let ws = DeployWorkspace.withSlowModel()
        let out = TemporaryDirectory("dagctl-out")
        var environment = ws.environment
        environment["DAGCTL_HEARTBEAT_SECONDS"] = "1"
        let first = startDagctl(["reconcile"], environment: environment, outputDir: out.path)
        var childPID: Int32 = 0
        let running = eventually(within: 60) {
            guard let plan = ws.peekNewestPlan(), plan["status"] as? String == "running",
                  let pid = (plan["attempts"] as? [[String: Any]])?.last?["pid"] as? Int else { return false }
            childPID = Int32(pid)
            return (out.read("stdout") ?? "").contains("START python table model")
        }
        #expect(running, "the run phase started: \(out.read("stdout") ?? "")")
        #expect(eventually(within: 10) { (out.read("stdout") ?? "").contains("[dev run] … still running") },
                "a quiet phase shows it is alive")

        // A second reconcile while the first holds the lock.
        let second = ws.dagctl("reconcile")
        #expect(second.status == 75)
        #expect(second.stderr.contains("pid \(first.pid)"))
        #expect(second.stderr.contains("dagctl reconcile"))

        kill(first.pid, SIGKILL)
        first.wait()
        #expect(try ws.state()["schema_version"] as? Int == 1, "the state file is valid JSON")
        #expect(stateSchemaProblems(ws.statePath) == "", "and a valid state, with the attempt's pid recorded")
        #expect(kill(childPID, 0) == 0, "dbt outlived the killed dagctl")

        // The next run stops the orphan, marks the attempt interrupted and the plan failed.
        ws.setDevEnv(["SHOP_SLOW_SECONDS": "0"])
        let recovered = ws.dagctl("reconcile")
        #expect(recovered.status == 1, "the run that records the failure exits 1")
        #expect(recovered.stdout.contains("attempt 1 was interrupted"), "\(recovered.stdout)")
        #expect(recovered.stdout.contains("stopped process group \(childPID)"))
        #expect(eventually(within: 10) { kill(childPID, 0) != 0 })
        var plan = try #require(try ws.devPlans().last)
        #expect(plan["status"] as? String == "failed")
        #expect((plan["attempts"] as? [[String: Any]])?.first?["outcome"] as? String == "interrupted")

        // And a retry deploys.
        let id = try #require(plan["id"] as? String)
        #expect(ws.dagctl("retry", id, "--as", "alice").status == 0)
        let retried = ws.dagctl("reconcile")
        #expect(retried.status == 0, "\(retried.stdout)")
        plan = try #require(try ws.devPlans().last)
        #expect(plan["status"] as? String == "succeeded")
        #expect(try ws.deployedVersion() == "1")
    }
}

@Suite("stopping a reconcile", .serialized)
struct InterruptTests {
    @Test func sigtermStopsDbtAndRecordsTheAttempt() throws {
        let ws = DeployWorkspace.withSlowModel()
        let out = TemporaryDirectory("dagctl-out")
        let first = startDagctl(["reconcile"], environment: ws.environment, outputDir: out.path)
        var childPID: Int32 = 0
        #expect(eventually(within: 60) {
            guard let plan = ws.peekNewestPlan(), let pid = (plan["attempts"] as? [[String: Any]])?.last?["pid"] as? Int else { return false }
            childPID = Int32(pid)
            return (out.read("stdout") ?? "").contains("START python table model")
        })
        kill(first.pid, SIGTERM)
        let status = first.wait()
        #expect((status >> 8) & 0xff == 1, "exits 1 after recording")
        #expect(eventually(within: 5) { kill(childPID, 0) != 0 }, "dbt's process group was stopped with it")
        let plan = try #require(try ws.devPlans().last)
        #expect(plan["status"] as? String == "failed")
        let attempt = (plan["attempts"] as? [[String: Any]])?.last
        #expect(attempt?["outcome"] as? String == "interrupted")
        let reason = attempt?["reason"] as? String
        #expect(reason == "dagctl received SIGTERM and stopped dbt", "\(String(describing: reason))")
        #expect(try ws.deployedVersion() == nil)
    }

    /// A local phase that passes `backend.timeout_seconds` is stopped, its whole process group with it,
    /// and the attempt fails with the reason; the lock is released for the next run.
    @Test func aLocalPhaseThatHangsIsStoppedAtItsTimeout() throws {
        let ws = DeployWorkspace.withSlowModel()
        ws.dir.write("desired/environments/dev.yaml", """
            ref: main
            target: dev
            required_approvals: 0
            env: {SHOP_SLOW_SECONDS: "600"}
            backend: {kind: local, timeout_seconds: 15}
            """)
        let out = TemporaryDirectory("dagctl-out")
        let started = Date()
        let reconcile = startDagctl(["reconcile"], environment: ws.environment, outputDir: out.path)
        var childPID: Int32 = 0
        #expect(eventually(within: 60) {
            guard let pid = (ws.peekNewestPlan()?["attempts"] as? [[String: Any]])?.last?["pid"] as? Int else { return false }
            childPID = Int32(pid)
            return true
        })
        #expect((reconcile.wait() >> 8) & 0xff == 1)
        #expect(Date().timeIntervalSince(started) < 90, "stopped at its timeout, not after dbt's 600 s")
        #expect(kill(childPID, 0) != 0, "dbt's process group was stopped")
        let plan = try #require(try ws.devPlans().last)
        #expect(plan["status"] as? String == "failed")
        let reason = (plan["attempts"] as? [[String: Any]])?.last?["reason"] as? String
        #expect(reason?.contains("timed out after 15s (backend.timeout_seconds); its processes were stopped") == true,
                "\(String(describing: reason))")
        #expect((out.read("stdout") ?? "").contains("timed out after 15s; stopping it"))
    }

    /// After a signal nothing new starts: the next environment is not explained, built or run, and the
    /// state says exactly that.
    @Test func afterASignalTheNextEnvironmentDoesNotStart() throws {
        let ws = DeployWorkspace.withSlowModel()
        ws.dir.write("desired/environments/dev2.yaml", "ref: main\ntarget: prod\nrequired_approvals: 0\n")
        let out = TemporaryDirectory("dagctl-out")
        let first = startDagctl(["reconcile"], environment: ws.environment, outputDir: out.path)
        #expect(eventually(within: 60) { (out.read("stdout") ?? "").contains("START python table model") })
        kill(first.pid, SIGTERM)
        #expect((first.wait() >> 8) & 0xff == 1)
        let stdout = out.read("stdout") ?? ""
        #expect(!stdout.contains("[dev2 "), "dev2 never started a phase: \(stdout)")
        #expect(stdout.contains("dagctl received SIGTERM and stopped before reconciling environment 'dev2'"), "\(stdout)")
        let environments = try #require(try ws.state()["environments"] as? [String: Any])
        #expect(environments["dev2"] == nil, "nothing was recorded for dev2")
        #expect(((environments["dev"] as? [String: Any])?["plans"] as? [[String: Any]])?.last?["status"] as? String == "failed")
        #expect(!FileManager.default.fileExists(atPath: ws.dir.file("prod.duckdb")), "dev2's warehouse was never touched")
    }
}

@Suite("local builds with a requirements file", .serialized)
struct VirtualenvCacheTests {
    @Test func secondPlanReusesTheCachedVirtualenv() throws {
        let ws = DeployWorkspace()
        ws.bump(1) { $0.write("requirements.txt", "dbt-core<1.12\ndbt-duckdb<1.12\n") }
        let start1 = Date()
        let first = ws.dagctl("reconcile")
        let firstSeconds = Date().timeIntervalSince(start1)
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        let v1 = try #require(try ws.devPlans().last?["id"] as? String)
        let log1 = try #require(ws.dir.read("state/logs/\(v1)/attempt-1/build.log"))
        #expect(log1.contains("creating a virtualenv"))
        #expect(ws.dir.read("state/logs/\(v1)/attempt-1/run.log")?.contains("/cache/venvs/") == true, "dbt came from the virtualenv")

        ws.bump(2) { $0.write("README.md", "# shop\n\nv2\n") }
        let start2 = Date()
        #expect(ws.dagctl("reconcile").status == 0)
        let secondSeconds = Date().timeIntervalSince(start2)
        let v2 = try #require(try ws.devPlans().last?["id"] as? String)
        let log2 = try #require(ws.dir.read("state/logs/\(v2)/attempt-1/build.log"))
        #expect(log2.contains("reusing the cached virtualenv"))
        let venvs = try FileManager.default.contentsOfDirectory(atPath: ws.dir.file("state/cache/venvs"))
        #expect(venvs.count == 1)
        print("virtualenv build: first reconcile \(String(format: "%.1f", firstSeconds))s (creates it and runs dbt), second \(String(format: "%.1f", secondSeconds))s (reuses it, build_only)")

        // Other requirements make another virtualenv.
        ws.bump(3) { $0.write("requirements.txt", "dbt-core<1.12\ndbt-duckdb<1.12\n# changed\n") }
        #expect(ws.dagctl("reconcile").status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws.dir.file("state/cache/venvs")).count == 2)
    }
}
