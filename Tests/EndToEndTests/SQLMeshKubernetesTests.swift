import Foundation
import Testing
import TestSupport

/// SQLMesh plans on the Kubernetes backend, against the stand-in API server with real kubectl. Its
/// kubelet runs each Job's init containers (a real `git clone` of the test repository into the pod's
/// emptyDir) and main container (real sqlmesh from the project's virtualenv) on this machine.
@Suite("SQLMesh plans on Kubernetes (stand-in API server, real kubectl, real sqlmesh)", .serialized)
struct SQLMeshKubernetesTests {
    func workspace() -> (SQLMeshWorkspace, FakeCluster) {
        let ws = SQLMeshWorkspace()
        let cluster = FakeCluster()
        ws.dir.write("desired/environments/dev.yaml", """
            ref: main
            required_approvals: 0
            sqlmesh_environment: dev
            env: {SHOP_SQLMESH_DB: "\(ws.warehouse)"}
            backend:
              kind: kubernetes
              namespace: analytics
              image: registry.example.com/analytics/sqlmesh:0.236.4
              context: file://\(ws.repo.path)
              kubectl_context: fake
              timeout_seconds: 300
            """)
        let rules: [[String: Any]] = [["match": ["label": ["app.kubernetes.io/managed-by": "dagctl"]], "action": "exec"]]
        FileManager.default.createFile(atPath: cluster.dir.file("script.json"),
                                       contents: try! JSONSerialization.data(withJSONObject: ["rules": rules]))
        return (ws, cluster)
    }

    func dagctl(_ ws: SQLMeshWorkspace, _ cluster: FakeCluster, _ args: String...) -> ProcessOutput {
        TestSupport.dagctl(args, in: ws.dir.path,
                           environment: ws.environment.merging(["KUBECONFIG": cluster.kubeconfig, "HOME": cluster.dir.path]) { $1 })
    }

    @Test func explainRunAndConfirmAreJobsInACloneOfThePlansCommit() throws {
        let (ws, cluster) = workspace()
        let first = dagctl(ws, cluster, "reconcile", "--env", "dev")
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        let plan = try ws.newest()
        #expect(plan["status"] as? String == "succeeded")
        #expect(ws.changes(plan).count == 4)
        #expect(ws.query("select count(*) from shop__dev.customers") == "[(3,)]")

        // explain, check before applying, run, confirm: no Kaniko build.
        let jobs = cluster.createdJobs()
        let phases = jobs.compactMap { (($0["metadata"] as? [String: Any])?["labels"] as? [String: String])?["dagctl.dev/phase"] }
        #expect(phases == ["explain", "explain", "run", "explain"], "\(phases)")
        let runJob = try #require(jobs.first { (($0["metadata"] as? [String: Any])?["labels"] as? [String: String])?["dagctl.dev/phase"] == "run" })
        let pod = try #require(((runJob["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let clone = try #require(pod["initContainers"] as? [[String: Any]])
        #expect(clone.map { $0["command"] as? [String] ?? [] } == [
            ["git", "clone", "--no-checkout", "--", "file://\(ws.repo.path)", "/workspace/repo"],
            ["git", "-C", "/workspace/repo", "checkout", "--detach", plan["commit"] as! String],
        ])
        let main = try #require((pod["containers"] as? [[String: Any]])?.first)
        #expect(main["image"] as? String == "registry.example.com/analytics/sqlmesh:0.236.4")
        #expect(main["command"] as? [String] == ["sqlmesh", "--paths", "/workspace/repo", "plan", "dev", "--auto-apply", "--no-prompts"])

        // Every Job made passes the official schemas.
        var files: [String] = []
        for (i, job) in jobs.enumerated() {
            let file = ws.dir.file("job-\(i).json")
            FileManager.default.createFile(atPath: file, contents: try JSONSerialization.data(withJSONObject: job))
            files.append(file)
        }
        let validate = run(packageRoot + "/.venv/bin/kubernetes-validate", ["--strict", "-k", "1.30"] + files)
        #expect(validate.status == 0, "\(validate.stdout)\n\(validate.stderr)")

        // Nothing moved: no Job at all.
        #expect(dagctl(ws, cluster, "reconcile", "--env", "dev").stdout.contains("nothing to do"))
        #expect(cluster.createdJobs().count == jobs.count)
    }

    @Test func noWaitSubmitsTheRunAndALaterRunObservesIt() throws {
        let (ws, cluster) = workspace()
        let submitted = dagctl(ws, cluster, "reconcile", "--env", "dev", "--no-wait")
        #expect(submitted.status == 0, "\(submitted.stdout)\n\(submitted.stderr)")
        #expect(try ws.newest()["status"] as? String == "running")
        #expect(eventually(within: 120) {
            _ = dagctl(ws, cluster, "reconcile", "--env", "dev", "--no-wait")
            return ws.peek()?["status"] as? String == "succeeded"
        })
        #expect(cluster.createdJobs().filter { (($0["metadata"] as? [String: Any])?["labels"] as? [String: String])?["dagctl.dev/phase"] == "run" }.count == 1,
                "one run Job, observed across runs")
    }

    @Test func aTagLessImageIsAnErrorForASQLMeshProject() throws {
        let (ws, cluster) = workspace()
        ws.dir.write("desired/environments/dev.yaml", try #require(ws.dir.read("desired/environments/dev.yaml"))
            .replacingOccurrences(of: "sqlmesh:0.236.4", with: "sqlmesh"))
        let out = dagctl(ws, cluster, "validate")
        #expect(out.status == 1)
        #expect(out.stdout.contains("dev.yaml:8: 'backend.image': a SQLMesh project runs on an existing image: give it with its tag"), "\(out.stdout)")
    }
}
