import Foundation
import Testing
import TestSupport

/// A commit on the deployed branch tries to reach outside its build folder through symbolic links:
/// dbt's outputs pointed at the history and state files, a seed pointed at a file elsewhere. The
/// export leaves those links out and dbt writes where dagctl decides.
@Suite("a hostile repository, deployed with real dbt", .serialized)
struct HostileRepositoryDeployTests {
    @Test func linksOutOfTheExportReachNothing() throws {
        let ws = DeployWorkspace()
        #expect(ws.dagctl("reconcile").status == 0)
        let outside = TemporaryDirectory("dagctl-outside")
        outside.write("secret.csv", "id,secret\n1,hunter2\n")
        ws.bump(2) { repo in
            func link(_ path: String, _ target: String) {
                try? FileManager.default.createDirectory(atPath: (repo.dir.file(path) as NSString).deletingLastPathComponent,
                                                         withIntermediateDirectories: true)
                precondition(symlink(target, repo.dir.file(path)) == 0)
            }
            // From <state>/builds/<plan>/attempt-1/project/target, five levels up is the state folder.
            link("target/manifest.json", "../../../../../history/dev.jsonl")
            link("target/run_results.json", "../../../../../state.json")
            link("logs", "../../../..")
            link("seeds/secret.csv", outside.file("secret.csv"))
            repo.write("models/marts/customers.sql", (repo.dir.read("models/marts/customers.sql") ?? "") + "-- v2\n")
        }
        let deploy = ws.dagctl("reconcile")
        #expect(deploy.status == 0, "\(deploy.stdout)\n\(deploy.stderr)")
        let v2 = try #require(try ws.devPlans().last?["id"] as? String)
        #expect(try ws.devPlans().last?["status"] as? String == "succeeded")

        let buildLog = try #require(ws.dir.read("state/logs/\(v2)/attempt-1/build.log"))
        for path in ["target/manifest.json", "target/run_results.json", "logs", "seeds/secret.csv"] {
            #expect(buildLog.contains("left out the symbolic link \(path) -> "), "\(path): \(buildLog)")
        }
        #expect(stateSchemaProblems(ws.statePath) == "", "the state file is dagctl's, not dbt's")
        let history = try #require(ws.dir.read("state/history/dev.jsonl"))
        #expect(history.split(separator: "\n").allSatisfy { parseJSON(String($0))?["id"] != nil }, "history holds plans only")
        #expect(!FileManager.default.fileExists(atPath: ws.dir.file("state/dbt.log")), "dbt's log stayed in the build folder")
        #expect(try !ws.ranNodes(v2).contains { $0.contains("secret") }, "the linked seed was never loaded")
        #expect(outside.read("secret.csv") == "id,secret\n1,hunter2\n")
    }
}

/// A full disk under the state folder: dagctl reports and exits 1, never crashes, and a later run with
/// room again finishes the job from a state that is whole.
@Suite("a full disk", .serialized)
struct FullDiskTests {
    static let canMount: Bool = {
        let probe = TemporaryDirectory("dagctl-mount-probe")
        guard run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.path]).status == 0 else { return false }
        run("umount", [probe.path])
        return true
    }()

    @Test(.enabled(if: canMount, "needs root and mount -t tmpfs"))
    func reconcileOnAFullStateFolderExitsOneAndRecovers() throws {
        let ws = DeployWorkspace()
        try FileManager.default.createDirectory(atPath: ws.stateDir, withIntermediateDirectories: true)
        #expect(run("mount", ["-t", "tmpfs", "-o", "size=200k", "tmpfs", ws.stateDir]).status == 0)
        defer { run("umount", ["-l", ws.stateDir]) }
        let full = ws.dagctl("reconcile")
        #expect(full.status == 1, "a reported failure, not a crash: \(full.status)\n\(full.stderr.suffix(600))")
        #expect(!full.stderr.contains("Fatal error"))
        // Room again (the same files, on the real disk): the next runs recover and deploy.
        let saved = TemporaryDirectory("dagctl-saved")
        run("cp", ["-a", ws.stateDir + "/.", saved.path])
        run("umount", ["-l", ws.stateDir])
        run("cp", ["-a", saved.path + "/.", ws.stateDir])
        var last = ws.dagctl("reconcile")
        if try ws.devPlans().last?["status"] as? String == "failed", let id = try ws.devPlans().last?["id"] as? String {
            #expect(ws.dagctl("retry", id, "--as", "alice").status == 0)
            last = ws.dagctl("reconcile")
        }
        #expect(last.status == 0, "\(last.stdout)\n\(last.stderr)")
        #expect(try ws.deployedVersion() == "1")
        #expect(stateSchemaProblems(ws.statePath) == "")
    }
}
