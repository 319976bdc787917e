import Foundation
import Testing
import TestSupport

/// Our stand-in Kubernetes API server (Tests/Fixtures/kube-apiserver), answering real kubectl.
final class FakeCluster: @unchecked Sendable {
    let dir = TemporaryDirectory("dagctl-kube")
    let server: BackgroundProcess
    var kubeconfig: String { dir.file("kubeconfig") }

    init() {
        let script = packageRoot + "/Tests/Fixtures/kube-apiserver/fake_apiserver.py"
        server = spawn(["/usr/bin/env", "python3", script, "--port", "0", "--port-file", dir.file("port"),
                        "--script", dir.file("script.json"), "--record", dir.file("record.jsonl"),
                        "--kubeconfig", dir.file("kubeconfig"), "--max-seconds", "600", "--namespace", "analytics"],
                       environment: ["PATH": pathWithVenv], stdout: dir.file("server.out"), stderr: dir.file("server.err"))
        precondition(eventually(within: 20) { FileManager.default.fileExists(atPath: self.dir.file("port")) }, "fake apiserver did not start")
    }

    deinit {
        kill(server.pid, SIGTERM)
        server.wait()
    }

    /// The script: what build and run Jobs do (see the fixture's README).
    func script(build: [String: Any], run: [String: Any]) {
        let rules: [[String: Any]] = [
            ["match": ["label": ["dagctl.dev/phase": "build"]]].merging(build) { $1 },
            ["match": ["label": ["dagctl.dev/phase": "run"]]].merging(run) { $1 },
        ]
        let data = try! JSONSerialization.data(withJSONObject: ["rules": rules], options: [.sortedKeys])
        FileManager.default.createFile(atPath: dir.file("script.json"), contents: data)
    }

    /// Every request kubectl made.
    func requests() -> [[String: Any]] {
        (dir.read("record.jsonl") ?? "").split(separator: "\n").compactMap { parseJSON(String($0)) }
    }

    /// The Job bodies POSTed, in order.
    func createdJobs() -> [[String: Any]] {
        requests().filter { $0["method"] as? String == "POST" && ($0["path"] as? String)?.hasSuffix("/jobs") == true }
            .compactMap { $0["body"] as? [String: Any] }
    }

    func jobNames() -> [String] {
        createdJobs().compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
    }
}

var succeedBuild: [String: Any] { ["action": "succeed", "logs": ["INFO Retrieving image manifest", "INFO Pushing image"], "delay_seconds": 0.1] }

/// A DeployWorkspace whose `dev` runs on the Kubernetes backend through the fake cluster.
final class KubeWorkspace: @unchecked Sendable {
    let ws = DeployWorkspace()
    let cluster = FakeCluster()

    init(timeout: Int = 120) {
        ws.dir.write("desired/environments/dev.yaml", """
            ref: main
            target: dev
            required_approvals: 0
            env: {SHOP_REGION: "eu"}
            backend:
              kind: kubernetes
              namespace: analytics
              image: registry.example.com/analytics/dbt
              context: git://git.example.com/acme/shop.git
              kubectl_context: fake
              service_account: dagctl-runner
              secret_env: [dbt-dev-credentials]
              timeout_seconds: \(timeout)
            """)
    }

    var environment: [String: String] {
        ws.environment.merging(["KUBECONFIG": cluster.kubeconfig, "HOME": cluster.dir.path, "DAGCTL_HEARTBEAT_SECONDS": "5"]) { $1 }
    }

    func dagctl(_ args: String...) -> ProcessOutput {
        TestSupport.dagctl(Array(args), in: ws.dir.path, environment: environment)
    }

    /// Runs the run Job's dbt command for real, in a checkout of the plan's commit.
    func execRun(commit: String) -> [String: Any] {
        let checkout = ws.dir.file("pod-\(commit.prefix(7))")
        if !FileManager.default.fileExists(atPath: checkout) {
            run("git", ["-C", ws.repo.path, "worktree", "add", "-q", "--detach", checkout, commit])
        }
        return ["action": "exec", "exec": ["cwd": checkout, "env": [
            "DBT_PROFILES_DIR": ws.dir.file("desired/profiles"), "SHOP_WAREHOUSE_DIR": ws.dir.path,
            "PATH": pathWithVenv, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"]]]
    }

    /// Records `commit` as deployed, so the next plan is explained against it.
    func seedDeployed(_ commit: String) {
        ws.dir.write("state/state.json", """
            {"schema_version": 1, "environments": {"dev": {"deployed": {"commit": "\(commit)", "version": "1", "plan": "dev-v1-\(commit.prefix(10))"},
             "plans": [{"id": "dev-v1-\(commit.prefix(10))", "environment": "dev", "version": "1", "commit": "\(commit)",
                        "changes": [], "scope": "all", "select": [], "warnings": [], "status": "succeeded", "attempts": []}]}}}
            """)
    }

    func newest() throws -> [String: Any] { try #require(try ws.devPlans().last) }
}

@Suite("Kubernetes backend against a stand-in API server (real kubectl)", .serialized)
struct KubernetesTests {
    @Test func deploysWithWaitRunningRealDbtInTheRunJob() throws {
        let k = KubeWorkspace()
        let v1 = k.ws.repo.git("rev-parse", "HEAD")
        k.cluster.script(build: succeedBuild, run: k.execRun(commit: v1))
        let first = k.dagctl("reconcile")
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        #expect(try k.newest()["status"] as? String == "succeeded")

        k.ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        let v2 = k.ws.repo.git("rev-parse", "HEAD")
        k.cluster.script(build: succeedBuild, run: k.execRun(commit: v2))
        let out = k.dagctl("reconcile", "--wait")
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let plan = try k.newest()
        let id = try #require(plan["id"] as? String)
        #expect(plan["scope"] as? String == "selective")
        #expect(plan["status"] as? String == "succeeded")
        #expect(out.stdout.contains("[dev build] INFO Pushing image"), "build logs stream")
        #expect(out.stdout.contains("[dev run] ") && out.stdout.contains("1 of 1 OK created sql table model main.customers"))
        #expect(k.ws.dir.read("state/logs/\(id)/attempt-1/run.log")?.contains("Done. PASS=1") == true)

        let jobs = k.cluster.createdJobs().suffix(2)
        let build = try #require(jobs.first)
        let run = try #require(jobs.last)
        let buildArgs = try #require(((((build["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first?["args"] as? [String])
        #expect(buildArgs.contains("--context=git://git.example.com/acme/shop.git#refs/heads/main#\(v2)"))
        #expect(buildArgs.contains("--destination=registry.example.com/analytics/dbt:\(id)"))
        #expect(buildArgs.contains("--dockerfile=Dockerfile"))
        #expect(buildArgs.contains("--cache=true"))
        let runContainer = try #require(((((run["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first)
        #expect(runContainer["command"] as? [String] == ["dbt", "build", "--select", "customers", "--target", "dev", "--project-dir", "."])
        #expect(runContainer["image"] as? String == "registry.example.com/analytics/dbt:\(id)")
        #expect((runContainer["envFrom"] as? [[String: Any]])?.first?["secretRef"] as? [String: String] == ["name": "dbt-dev-credentials"])
        #expect(k.cluster.requests().allSatisfy { $0["context"] as? String == "fake" }, "kubectl always got --context")
    }

    /// A rollback on Kubernetes is a plan like any other: Kaniko builds the target's commit into an
    /// image tagged with the rollback plan's id, and the run Job runs dbt on it.
    @Test func rollbackBuildsAndRunsTheTargetCommit() throws {
        let k = KubeWorkspace()
        let v1 = k.ws.repo.git("rev-parse", "HEAD")
        k.cluster.script(build: succeedBuild, run: k.execRun(commit: v1))
        #expect(k.dagctl("reconcile").status == 0)
        k.ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        k.cluster.script(build: succeedBuild, run: k.execRun(commit: k.ws.repo.git("rev-parse", "HEAD")))
        #expect(k.dagctl("reconcile").status == 0)
        #expect(try k.ws.deployedVersion() == "2")

        #expect(k.dagctl("rollback", "dev", "--to", "dev-v1-\(v1.prefix(10))", "--as", "alice").status == 0)
        k.cluster.script(build: succeedBuild, run: k.execRun(commit: v1))
        let out = k.dagctl("reconcile")
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let plan = try k.newest()
        let id = "dev-rollback-\(v1.prefix(10))"
        #expect(plan["id"] as? String == id && plan["status"] as? String == "succeeded", "\(out.stdout)")
        #expect(try k.ws.deployedVersion() == "1")
        let jobs = k.cluster.createdJobs().suffix(2)
        let buildArgs = try #require(((((jobs.first?["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first?["args"] as? [String])
        #expect(buildArgs.contains("--context=git://git.example.com/acme/shop.git#refs/heads/main#\(v1)"), "\(buildArgs)")
        #expect(buildArgs.contains("--destination=registry.example.com/analytics/dbt:\(id)"))
        let run = try #require(((((jobs.last?["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first)
        #expect(run["command"] as? [String] == ["dbt", "build", "--select", "customers", "--target", "dev", "--project-dir", "."])
        #expect(k.cluster.jobNames().suffix(2) == ["\(id)-build-1", "\(id)-run-1"])
        #expect(k.ws.dir.read("state/logs/\(id)/attempt-1/run.log")?.contains("1 of 1 OK created sql table model main.customers") == true)
    }

    @Test func noWaitAdvancesAcrossThreeReconciles() throws {
        let k = KubeWorkspace()
        k.seedDeployed(k.ws.repo.git("rev-parse", "HEAD"))
        k.ws.bump(2) { $0.write("models/marts/orders_daily.sql", $0.dir.read("models/marts/orders_daily.sql")! + "-- v2\n") }
        k.cluster.script(build: ["action": "succeed", "logs": ["built"], "delay_seconds": 0.5],
                         run: ["action": "succeed", "logs": ["Done. PASS=1 WARN=0 ERROR=0 SKIP=0 TOTAL=1"], "delay_seconds": 0.5])
        func jobDone(_ name: String) -> Bool {
            let r = run("kubectl", ["--context", "fake", "-n", "analytics", "get", "job", name, "-o", "jsonpath={.status.conditions[*].type}"],
                        environment: ["KUBECONFIG": k.cluster.kubeconfig, "HOME": k.cluster.dir.path])
            return r.stdout.contains("Complete")
        }

        let first = k.dagctl("reconcile", "--no-wait")
        #expect(first.status == 0, "\(first.stdout)")
        var plan = try k.newest()
        let id = try #require(plan["id"] as? String)
        #expect(plan["status"] as? String == "building")
        #expect(k.cluster.jobNames() == ["\(id)-build-1"])
        #expect(eventually(within: 20) { jobDone("\(id)-build-1") })

        let second = k.dagctl("reconcile", "--no-wait")
        #expect(second.status == 0)
        plan = try k.newest()
        #expect(plan["status"] as? String == "running")
        #expect(k.cluster.jobNames() == ["\(id)-build-1", "\(id)-run-1"])
        #expect(k.ws.dir.read("state/logs/\(id)/attempt-1/build.log")?.contains("built") == true, "logs of a job nobody followed are saved")
        #expect(eventually(within: 20) { jobDone("\(id)-run-1") })

        let third = k.dagctl("reconcile", "--no-wait")
        #expect(third.status == 0)
        plan = try k.newest()
        #expect(plan["status"] as? String == "succeeded")
        #expect(try k.ws.deployedVersion() == "2")
        #expect(k.cluster.jobNames().count == 2, "no Job was created twice")
        #expect(stateSchemaProblems(k.ws.statePath) == "")
        let jobs = (plan["attempts"] as? [[String: Any]])?.first?["jobs"] as? [String: String]
        #expect(jobs == ["build": "\(id)-build-1", "run": "\(id)-run-1"])
        #expect(k.dagctl("reconcile", "--no-wait").stdout.contains("nothing to do"))
    }

    @Test func failedRunJobFailsThePlanAndARetryMakesAttemptTwoJobs() throws {
        let k = KubeWorkspace()
        let receiver = WebhookReceiver()
        k.ws.dir.write("desired/notifications.yaml", "webhooks:\n  - name: hook\n    url: \(receiver.url)\n")
        k.seedDeployed(k.ws.repo.git("rev-parse", "HEAD"))
        k.ws.bump(2) { $0.write("models/marts/customers.sql", "select broken\n") }
        k.cluster.script(build: succeedBuild,
                         run: ["action": "fail", "logs": ["Database Error in model customers"], "exit_code": 2])
        let out = k.dagctl("reconcile")
        #expect(out.status == 1)
        var plan = try k.newest()
        let id = try #require(plan["id"] as? String)
        #expect(plan["status"] as? String == "failed")
        let reason = try #require(plan["status_reason"] as? String)
        #expect(reason.contains("job \(id)-run-1 failed: BackoffLimitExceeded"))
        #expect(reason.contains("exit code 2"))
        #expect(try k.ws.deployedVersion() == "1")
        #expect(k.ws.dir.read("state/logs/\(id)/attempt-1/run.log")?.contains("Database Error in model customers") == true)

        k.cluster.script(build: succeedBuild, run: ["action": "succeed", "logs": ["Done."]])
        #expect(k.dagctl("retry", id, "--as", "bob").status == 0)
        let retried = k.dagctl("reconcile")
        #expect(retried.status == 0, "\(retried.stdout)")
        plan = try k.newest()
        #expect(plan["status"] as? String == "succeeded")
        #expect(k.cluster.jobNames() == ["\(id)-build-1", "\(id)-run-1", "\(id)-build-2", "\(id)-run-2"])
        // The Kubernetes backend notifies like the local one.
        let events = receiver.events.map { "\($0["event"]!)" + (($0["attempt"] as? Int).map { " #\($0)" } ?? "") }
        #expect(events == ["plan_approved", "attempt_started #1", "plan_failed #1", "plan_approved", "attempt_started #2", "plan_succeeded #2"], "\(events)")
        #expect((receiver.events.first { $0["event"] as? String == "plan_failed" }?["reason"] as? String)?.contains("BackoffLimitExceeded") == true)
    }

    @Test func deadlineExceededFailsWithTheReason() throws {
        let k = KubeWorkspace(timeout: 2)
        k.seedDeployed(k.ws.repo.git("rev-parse", "HEAD"))
        k.ws.bump(2) { $0.write("README.md", "docs\n") }
        k.cluster.script(build: ["action": "succeed", "logs": ["a", "b", "c", "d", "e", "f", "g", "h"], "delay_seconds": 1],
                         run: ["action": "succeed"])
        let out = k.dagctl("reconcile")
        #expect(out.status == 1)
        let reason = try #require(try k.newest()["status_reason"] as? String)
        #expect(reason.contains("DeadlineExceeded"), "\(reason)")
    }

    @Test func aReconcileKilledAfterSubmittingIsAdoptedNextRun() throws {
        let k = KubeWorkspace()
        k.seedDeployed(k.ws.repo.git("rev-parse", "HEAD"))
        k.ws.bump(2) { $0.write("README.md", "docs\n") }
        k.cluster.script(build: ["action": "succeed", "logs": (1...8).map { "step \($0)" }, "delay_seconds": 0.5],
                         run: ["action": "succeed"])
        let out = TemporaryDirectory("dagctl-out")
        let first = startDagctl(["reconcile", "--wait"], environment: k.environment, outputDir: out.path)
        #expect(eventually(within: 30) { (out.read("stdout") ?? "").contains("step 2") }, "\(out.read("stdout") ?? "")")
        kill(first.pid, SIGKILL)
        first.wait()
        let id = try #require(try k.newest()["id"] as? String)
        #expect(try k.newest()["status"] as? String == "building")

        let second = k.dagctl("reconcile", "--wait")
        #expect(second.status == 0, "\(second.stdout)\n\(second.stderr)")
        #expect(try k.newest()["status"] as? String == "succeeded")
        #expect(k.cluster.jobNames() == ["\(id)-build-1"], "the Job was adopted, not created again")
        #expect(second.stdout.contains("step 8"))
    }

    @Test func planShowsManifestsThatPassKubernetesValidation() throws {
        let k = KubeWorkspace()
        k.ws.dir.write("desired/environments/a-rather-long-environment-name-3.yaml",
                       k.ws.dir.read("desired/environments/dev.yaml")!.replacingOccurrences(of: "target: dev", with: "target: dev\nselect_downstream: true")
                        + "\n  registry_secret: registry-push\n")
        k.ws.bump(1234567) { $0.write("models/marts/customers.sql", "select 1 as id\n") }
        k.ws.repo.write(".dagctl/config.yaml", "version: 12.345.6789\n")
        k.ws.repo.commit("long version")
        let out = k.dagctl("plan", "--output", "json")
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let envs = try #require(parseJSON(out.stdout)?["environments"] as? [[String: Any]])
        var files: [String] = []
        for env in envs {
            let manifests = try #require((env["plan"] as? [String: Any])?["manifests"] as? [[String: Any]])
            #expect(manifests.count == 2)
            for (i, m) in manifests.enumerated() {
                let name = try #require((m["metadata"] as? [String: Any])?["name"] as? String)
                #expect(name.count <= 63 && name.range(of: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", options: .regularExpression) != nil, "\(name)")
                let labels = try #require((m["metadata"] as? [String: Any])?["labels"] as? [String: String])
                #expect(labels["app.kubernetes.io/managed-by"] == "dagctl")
                #expect(labels.values.allSatisfy { $0.count <= 63 })
                let spec = try #require(m["spec"] as? [String: Any])
                #expect(spec["backoffLimit"] as? Int == 0)
                #expect(spec["activeDeadlineSeconds"] as? Int == 120)
                #expect(((spec["template"] as? [String: Any])?["spec"] as? [String: Any])?["restartPolicy"] as? String == "Never")
                let file = k.ws.dir.file("manifest-\(env["name"]!)-\(i).json")
                FileManager.default.createFile(atPath: file, contents: try JSONSerialization.data(withJSONObject: m))
                files.append(file)
            }
        }
        let validate = run(packageRoot + "/.venv/bin/kubernetes-validate", ["--strict", "-k", "1.30"] + files)
        #expect(validate.status == 0, "\(validate.stdout)\n\(validate.stderr)")
        #expect(!validate.stdout.contains("INVALID"))
    }
}

