import Foundation
import Testing
import TestSupport

/// The SQLMesh example project in a temporary git repository, deployed by the real binary with real
/// sqlmesh on DuckDB (from the project's virtualenv on PATH: the example has no requirements file).
final class SQLMeshWorkspace: @unchecked Sendable {
    let repo = GitFixture()
    let dir = TemporaryDirectory("dagctl-sqlmesh")
    var statePath: String { dir.file("state/state.json") }
    var warehouse: String { dir.file("shop.duckdb") }

    init() {
        run("cp", ["-R", packageRoot + "/examples/sqlmesh/project/.", repo.path])
        run("cp", ["-R", packageRoot + "/examples/sqlmesh/desired", dir.file("desired")])
        repo.commit("shop v1", author: "alice")
    }

    var environment: [String: String] {
        ["DAGCTL_REPO": repo.path, "DAGCTL_DESIRED": dir.file("desired"), "DAGCTL_STATE": statePath,
         "SHOP_SQLMESH_DB": warehouse, "PATH": pathWithVenv]
    }

    func dagctl(_ args: String...) -> ProcessOutput {
        TestSupport.dagctl(Array(args), in: dir.path, environment: environment)
    }

    func edit(_ path: String, _ change: (String) -> String, author: String = "bob") {
        repo.write(path, change(repo.dir.read(path) ?? ""))
        repo.commit("edit \(path)", author: author)
    }

    func plans(_ env: String = "dev") throws -> [[String: Any]] {
        let text = try #require(dir.read("state/state.json"))
        let doc = try #require(parseJSON(text))
        return ((doc["environments"] as? [String: Any])?[env] as? [String: Any])?["plans"] as? [[String: Any]] ?? []
    }

    func newest(_ env: String = "dev") throws -> [String: Any] { try #require(try plans(env).last) }

    /// The newest plan of `env`, or nil while there is none (for polling: records no test issue).
    func peek(_ env: String = "dev") -> [String: Any]? {
        guard let text = dir.read("state/state.json"), let doc = parseJSON(text) else { return nil }
        return (((doc["environments"] as? [String: Any])?[env] as? [String: Any])?["plans"] as? [[String: Any]])?.last
    }

    func changes(_ plan: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for m in (plan["models"] as? [[String: Any]]) ?? [] { out[m["model"] as! String] = "\(m["change"]!)/\(m["category"] ?? "-")" }
        return out
    }

    /// Statements run on the warehouse, as something outside SQLMesh would.
    func execute(_ sql: String) {
        let script = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute(sys.argv[2]); c.close()"
        let out = run(packageRoot + "/.venv/bin/python", ["-c", script, warehouse, sql])
        precondition(out.status == 0, out.stderr)
    }

    /// A query against a SQLMesh environment's views in the warehouse (read-only).
    func query(_ sql: String) -> String {
        let script = "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True).execute(sys.argv[2]).fetchall())"
        let out = run(packageRoot + "/.venv/bin/python", ["-c", script, warehouse, sql])
        return out.status == 0 ? out.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : "error: \(out.stderr)"
    }
}

@Suite("SQLMesh plans with real sqlmesh on DuckDB", .serialized)
struct SQLMeshTests {
    @Test func firstDeployThenChangesThenNothing() throws {
        let ws = SQLMeshWorkspace()
        let first = ws.dagctl("reconcile", "--env", "dev")
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        var plan = try ws.newest()
        #expect(plan["status"] as? String == "succeeded")
        #expect(plan["scope"] as? String == "sqlmesh")
        #expect(ws.changes(plan) == ["shop.raw_orders": "added/breaking", "shop.stg_orders": "added/breaking",
                                     "shop.orders_daily": "added/breaking", "shop.customers": "added/breaking"])
        #expect(ws.query("select count(*) from shop__dev.customers") == "[(3,)]")
        #expect(stateSchemaProblems(ws.statePath) == "")
        #expect(!FileManager.default.fileExists(atPath: ws.dir.file("logs")), "sqlmesh's log files stay in the build folder, not dagctl's working directory")

        // Nothing new: no plan, and no Python (the head has not moved).
        let idle = ws.dagctl("reconcile", "--env", "dev")
        #expect(idle.stdout.contains("nothing to do"))
        #expect(!idle.stdout.contains("[dev explain]"), "no helper ran")

        // A commit that changes no model: SQLMesh reports dev in sync.
        ws.edit("README.md") { $0 + "\nMore words.\n" }
        let readme = ws.dagctl("reconcile", "--env", "dev", "--output", "json")
        let doc = try #require(parseJSON(readme.stdout))
        let env = try #require((doc["environments"] as? [[String: Any]])?.first)
        #expect(env["in_sync"] as? String == ws.repo.git("rev-parse", "HEAD"), "\(readme.stdout)")
        #expect(try ws.plans().count == 1)

        // A non-breaking change (a new column) is directly modified and applies without rebuilding the rest.
        ws.edit("models/orders_daily.sql") { $0.replacingOccurrences(of: "SUM(amount_cents) AS amount_cents\n", with: "SUM(amount_cents) AS amount_cents,\n  MAX(amount_cents) AS largest_cents\n") }
        let nonBreaking = ws.dagctl("reconcile", "--env", "dev")
        #expect(nonBreaking.status == 0, "\(nonBreaking.stdout)")
        plan = try ws.newest()
        #expect(ws.changes(plan) == ["shop.orders_daily": "directly_modified/non_breaking"])
        #expect(plan["select"] as? [String] == ["directly_modified:shop.orders_daily"])
        #expect(plan["status"] as? String == "succeeded")
        #expect(ws.query("select max(largest_cents) from shop__dev.orders_daily") == "[(4200,)]")
        let log = try #require(ws.dir.read("state/logs/\(plan["id"] as! String)/attempt-1/run.log"))
        #expect(!log.contains("shop__dev.raw_orders"), "the rest was not rebuilt:\n\(log)")

        // A breaking change upstream shows its downstream models as indirectly modified.
        ws.edit("models/stg_orders.sql") { $0.replacingOccurrences(of: "  amount_cents\nFROM", with: "  amount_cents\nFROM") .replacingOccurrences(of: "FROM shop.raw_orders", with: "FROM shop.raw_orders\nWHERE order_id > 1") }
        let breaking = ws.dagctl("plan", "--env", "dev", "--output", "json")
        let preview = try #require(((parseJSON(breaking.stdout)?["environments"] as? [[String: Any]])?.first?["plan"]) as? [String: Any])
        let changes = (preview["changes"] as? [[String: Any]]) ?? []
        #expect(changes.first { $0["model"] as? String == "shop.stg_orders" }?["change"] as? String == "directly_modified", "\(breaking.stdout)")
        #expect(changes.first { $0["model"] as? String == "shop.stg_orders" }?["category"] as? String == "breaking")
        #expect(Set(changes.filter { $0["change"] as? String == "indirectly_modified" }.compactMap { $0["model"] as? String })
                == ["shop.customers", "shop.orders_daily"])
    }

    /// A model that reads a table SQLMesh does not manage; its audit fails until that table is fixed.
    @Test func aFailingAuditFailsTheAttemptAndARetryAfterFixingTheEnvironmentDeploys() throws {
        let ws = SQLMeshWorkspace()
        let receiver = WebhookReceiver()
        #expect(ws.dagctl("reconcile", "--env", "dev").status == 0)
        ws.dir.write("desired/notifications.yaml", "webhooks:\n  - name: hook\n    url: \(receiver.url)\n    environments: [dev]\n")
        ws.execute("create schema raw; create table raw.fx_rates(currency varchar, rate double); insert into raw.fx_rates values ('USD', 1.0)")
        ws.repo.write("models/orders_eur.sql", """
            MODEL (
              name shop.orders_eur,
              kind FULL,
              grain order_id,
              audits (not_null(columns := (eur_rate)))
            );

            SELECT o.order_id, r.rate AS eur_rate
            FROM shop.stg_orders AS o
            LEFT JOIN raw.fx_rates AS r ON r.currency = 'EUR'
            """)
        ws.repo.commit("orders in EUR", author: "bob")
        let failed = ws.dagctl("reconcile", "--env", "dev")
        #expect(failed.status == 1)
        var plan = try ws.newest()
        #expect(plan["status"] as? String == "failed")
        let reason = plan["status_reason"] as? String ?? ""
        #expect(reason.contains("sqlmesh plan: exit status 1") && reason.contains("'not_null' audit error") && reason.contains("Plan application failed"), "\(reason)")
        #expect(ws.query("select count(*) from information_schema.tables where table_schema = 'shop__dev' and table_name = 'orders_eur'") == "[(0,)]",
                "dev is as it was")

        // The environment is fixed (the missing rate arrives), and a retry deploys the same plan.
        ws.execute("insert into raw.fx_rates values ('EUR', 0.9)")
        let id = try #require(plan["id"] as? String)
        #expect(ws.dagctl("retry", id, "--as", "alice").status == 0)
        let retried = ws.dagctl("reconcile", "--env", "dev")
        #expect(retried.status == 0, "\(retried.stdout)")
        plan = try ws.newest()
        #expect(plan["status"] as? String == "succeeded")
        #expect((plan["attempts"] as? [[String: Any]])?.map { $0["outcome"] as? String } == ["failed", "succeeded"])
        #expect(ws.query("select min(eur_rate) from shop__dev.orders_eur") == "[(0.9,)]")
        // SQLMesh plans notify like dbt plans.
        let events = receiver.events.map { "\($0["event"]!) \($0["plan"]!)" + (($0["attempt"] as? Int).map { " #\($0)" } ?? "") }
        #expect(events == ["plan_approved \(id)", "attempt_started \(id) #1", "plan_failed \(id) #1",
                           "plan_approved \(id)", "attempt_started \(id) #2", "plan_succeeded \(id) #2"], "\(events)")
        let failure = try #require(receiver.events.first { $0["event"] as? String == "plan_failed" })
        #expect((failure["reason"] as? String)?.contains("'not_null' audit error") == true)
        #expect(failure["scope"] as? String == "sqlmesh")
        #expect((failure["retry_command"] as? String)?.hasPrefix("dagctl retry \(id) --as ") == true)
        #expect(receiver.events.first { $0["event"] as? String == "plan_approved" && $0["reason"] as? String == "retry 1 of 1 requested by alice" } != nil)
    }

    /// `kill -9` of reconcile while sqlmesh applies: the next run stops the orphan, records the
    /// attempt interrupted (exiting 1), and a retry deploys — as for a dbt run.
    @Test func aKillDuringTheApplyIsRecovered() throws {
        let ws = SQLMeshWorkspace()
        ws.repo.write("models/slow.py", """
            import os
            import time

            import pandas as pd
            from sqlmesh import ExecutionContext, model


            @model("shop.slow", columns={"id": "int"}, kind="FULL")
            def execute(context: ExecutionContext, **kwargs):
                time.sleep(float(os.environ.get("SHOP_SLOW_SECONDS", "0")))
                return pd.DataFrame([{"id": 1}])
            """)
        ws.repo.commit("a slow model", author: "bob")
        ws.dir.write("desired/environments/dev.yaml", "ref: main\nrequired_approvals: 0\nsqlmesh_environment: dev\nenv: {SHOP_SLOW_SECONDS: \"120\"}\n")
        let out = TemporaryDirectory("dagctl-out")
        let first = startDagctl(["reconcile", "--env", "dev"], environment: ws.environment, outputDir: out.path)
        var childPID: Int32 = 0
        #expect(eventually(within: 90) {
            guard let plan = ws.peek(), plan["status"] as? String == "running",
                  let pid = (plan["attempts"] as? [[String: Any]])?.last?["pid"] as? Int else { return false }
            childPID = Int32(pid)
            return (out.read("stdout") ?? "").contains("shop__dev.stg_orders")
        }, "\(out.read("stdout") ?? "")\n\(out.read("stderr") ?? "")")
        kill(first.pid, SIGKILL)
        first.wait()
        #expect(stateSchemaProblems(ws.statePath) == "")
        #expect(kill(childPID, 0) == 0, "sqlmesh outlived the killed dagctl")

        ws.dir.write("desired/environments/dev.yaml", "ref: main\nrequired_approvals: 0\nsqlmesh_environment: dev\n")
        let recovered = ws.dagctl("reconcile", "--env", "dev")
        #expect(recovered.status == 1)
        #expect(recovered.stdout.contains("stopped process group \(childPID)"), "\(recovered.stdout)")
        #expect(eventually(within: 10) { kill(childPID, 0) != 0 })
        let plan = try ws.newest()
        #expect((plan["attempts"] as? [[String: Any]])?.first?["outcome"] as? String == "interrupted")
        #expect(ws.dagctl("retry", plan["id"] as! String, "--as", "alice").status == 0)
        let retried = ws.dagctl("reconcile", "--env", "dev")
        #expect(retried.status == 0, "\(retried.stdout)")
        #expect(ws.query("select count(*) from shop__dev.slow") == "[(1,)]")
    }

    @Test func aStaleApprovedPlanIsNeverApplied() throws {
        let ws = SQLMeshWorkspace()
        let keys = TemporaryDirectory("dagctl-keys")
        for name in ["bob"] { run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keys.file(name)]) }
        let members = try #require(ws.dir.read("desired/members.yaml")).replacingOccurrences(
            of: "    roles: [deployer]\n  - name: carol",
            with: "    roles: [deployer]\n    keys: [\"\(try #require(keys.read("bob.pub")).trimmingCharacters(in: .whitespacesAndNewlines))\"]\n  - name: carol")
        ws.dir.write("desired/members.yaml", members)
        #expect(ws.dagctl("reconcile", "--env", "prod").status == 0)
        let plan = try ws.newest("prod")
        let id = try #require(plan["id"] as? String)
        #expect(plan["status"] as? String == "pending")
        #expect(ws.dagctl("approve", id, "--as", "alice", "--key", keys.file("bob")).status == 1, "alice is not on prod's allowlist")
        let approve = ws.dagctl("approve", id, "--as", "bob", "--key", keys.file("bob"))
        #expect(approve.status == 0, "\(approve.stderr)")
        #expect(ws.dir.read("desired/approvals/\(id)/bob.yaml")?.contains("BEGIN SSH SIGNATURE") == true)

        // Out of band, someone applies to SQLMesh's prod with the sqlmesh CLI.
        let cli = run(packageRoot + "/.venv/bin/sqlmesh", ["--paths", ws.repo.path, "plan", "prod", "--auto-apply", "--no-prompts"],
                      in: ws.dir.path, environment: ["SHOP_SQLMESH_DB": ws.warehouse])
        #expect(cli.status == 0, "\(cli.stdout)\n\(cli.stderr)")
        let stale = ws.dagctl("reconcile", "--env", "prod")
        let plans = try ws.plans("prod")
        let history = ws.dir.read("state/history/prod.jsonl") ?? ""
        #expect(history.contains("\"status\":\"superseded\"") || plans.contains { $0["id"] as? String == id && $0["status"] as? String == "superseded" },
                "\(stale.stdout)")
        #expect(stale.stdout.contains("moved since this plan was explained"), "\(stale.stdout)")
        #expect(!stale.stdout.contains("[prod run]"), "the stale plan was not applied")
    }

    /// A rollback of a SQLMesh environment is a SQLMesh plan to the target commit: applied, it takes
    /// the model back; while pinned, the head's plan is explained but not applied; unpinned, it applies.
    @Test func rollbackAppliesThePlanOfTheTargetCommit() throws {
        let ws = SQLMeshWorkspace()
        #expect(ws.dagctl("reconcile", "--env", "dev").status == 0)
        let first = try #require(try ws.newest()["id"] as? String)
        let firstCommit = try #require(try ws.newest()["commit"] as? String)
        ws.edit("models/orders_daily.sql") { $0.replacingOccurrences(of: "SUM(amount_cents) AS amount_cents\n", with: "SUM(amount_cents) AS amount_cents,\n  MAX(amount_cents) AS largest_cents\n") }
        #expect(ws.dagctl("reconcile", "--env", "dev").status == 0)
        #expect(ws.query("select max(largest_cents) from shop__dev.orders_daily") == "[(4200,)]")

        #expect(ws.dagctl("rollback", "dev", "--to", first, "--as", "alice").status == 0)
        var run = ws.dagctl("reconcile", "--env", "dev")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let rollback = try ws.newest()
        let rollbackID = try #require(rollback["id"] as? String)
        #expect(rollbackID == "dev-rollback-\(firstCommit.prefix(10))")
        #expect(rollback["status"] as? String == "succeeded", "\(run.stdout)")
        #expect(ws.changes(rollback)["shop.orders_daily"]?.hasPrefix("directly_modified") == true, "\(rollback)")
        #expect(ws.query("select max(largest_cents) from shop__dev.orders_daily").hasPrefix("error:"), "the column is gone again")

        // Pinned: SQLMesh's plan of the head is explained (approved: dev needs none) but not applied.
        run = ws.dagctl("reconcile", "--env", "dev")
        #expect(run.stdout.contains("pinned by rollbacks/dev.yaml"), "\(run.stdout)")
        #expect(try ws.newest()["status"] as? String == "approved")
        #expect(ws.query("select max(largest_cents) from shop__dev.orders_daily").hasPrefix("error:"))

        try FileManager.default.removeItem(atPath: ws.dir.file("desired/rollbacks/dev.yaml"))
        run = ws.dagctl("reconcile", "--env", "dev")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(ws.query("select max(largest_cents) from shop__dev.orders_daily") == "[(4200,)]", "\(run.stdout)")
        #expect(stateSchemaProblems(ws.statePath) == "")
    }
}
