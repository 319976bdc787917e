import Foundation
import Testing
import TestSupport

/// `kill -9` at random moments of many reconciles — during explain, state writes, exports, history
/// appends — and after each: the state file is valid, the history readable, the deployed record names
/// the newest succeeded plan, and the next run repairs what the kill left.
@Suite("SIGKILL at random moments", .serialized)
struct KillLoopTests {
    /// Plans whose only change is the README are build_only: a reconcile takes tens of milliseconds, so
    /// kills spread over every step of it, state and history writes included.
    @Test func theRecordSurvivesKillsAnywhere() throws {
        let ws = DeployWorkspace()
        #expect(ws.dagctl("reconcile").status == 0)
        var generator = SystemRandomNumberGenerator()
        let out = TemporaryDirectory("dagctl-out")
        var killedMidRun = 0
        for round in 2...31 {
            ws.bump(round) { $0.write("README.md", "# shop\n\nround \(round)\n") }
            let child = startDagctl(["reconcile"], environment: ws.environment, outputDir: out.path)
            usleep(UInt32.random(in: 0...50_000, using: &generator))
            var status: Int32 = 0
            if waitpid(child.pid, &status, WNOHANG) == 0 {  // still running (a finished child would be a zombie)
                kill(child.pid, SIGKILL)
                killedMidRun += 1
                child.wait()
            }
            try checkInvariants(ws, after: "kill in round \(round)")
        }
        // A run without a kill deploys a new version, whatever the kills left behind. (Not version 31:
        // when the last kill landed during its attempt, that plan failed and waits for a retry.)
        ws.bump(32) { $0.write("README.md", "# shop\n\nround 32\n") }
        let final = ws.dagctl("reconcile")
        #expect(final.stdout.contains("deployed"), "\(final.stdout)\n\(final.stderr)")
        #expect(try ws.deployedVersion() == "32", "\(final.stdout)\n\(final.stderr)")
        try checkInvariants(ws, after: "the final run")
        #expect(stateSchemaProblems(ws.statePath) == "")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: ws.stateDir).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "temporary files of killed writes are cleaned up: \(leftovers)")
        print("SIGKILL loop: 30 reconciles, \(killedMidRun) killed before they ended")
    }

    /// The same, with each kill placed exactly inside a write: between a state file's temporary copy and
    /// its rename, right after a rename (between two status changes), half-way through a history
    /// append, and between an append and the state write that drops the appended plans.
    @Test func theRecordSurvivesKillsInsideEveryWrite() throws {
        let ws = DeployWorkspace()
        #expect(ws.dagctl("reconcile").status == 0)
        let points = ["state-temp-written", "state-renamed", "history-half-written", "history-appended"]
        var killed: [String: Int] = [:]
        var round = 1
        for point in points {
            for n in 1...6 {
                round += 1
                ws.bump(round) { $0.write("README.md", "# shop\n\nround \(round)\n") }
                var environment = ws.environment
                environment["DAGCTL_FAILPOINT"] = "\(point):\(n)"
                let result = TestSupport.dagctl(["reconcile"], in: ws.dir.path, environment: environment)
                if result.status == SIGKILL { killed[point, default: 0] += 1 }
                try checkInvariants(ws, after: "a kill at \(point) #\(n) (round \(round))")
            }
        }
        let final = ws.dagctl("reconcile")
        #expect(final.status == 0, "\(final.stdout)\n\(final.stderr)")
        #expect(try ws.deployedVersion() == String(round))
        try checkInvariants(ws, after: "the final run")
        #expect(stateSchemaProblems(ws.statePath) == "")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: ws.stateDir).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "temporary files of killed writes are cleaned up: \(leftovers)")
        for point in points { #expect(killed[point, default: 0] > 0, "some run was killed at \(point)") }
        print("SIGKILL inside writes: \(killed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) of 6 runs each")
    }

    func checkInvariants(_ ws: DeployWorkspace, after moment: String) throws {
        let status = ws.dagctl("status", "--history", "--output", "json")
        #expect(status.status == 0, "\(moment): status reads the state and history: \(status.stderr)")
        guard let doc = parseJSON(status.stdout),
              let env = (doc["environments"] as? [[String: Any]])?.first(where: { $0["name"] as? String == "dev" }) else {
            Issue.record("\(moment): no dev environment in \(status.stdout)")
            return
        }
        let history = ((doc["history"] as? [String: Any])?["dev"] as? [[String: Any]]) ?? []
        // A kill between a history append and the state write leaves a plan in both: the state's copy wins.
        let current = try ws.devPlans()
        let currentIDs = Set(current.compactMap { $0["id"] as? String })
        let plans = history.filter { !currentIDs.contains($0["id"] as? String ?? "") } + current
        let succeeded = plans.filter { $0["status"] as? String == "succeeded" }.compactMap { $0["id"] as? String }
        // Read from the file as written (a reader's load would repair a split record and hide it).
        let raw = (try ws.state()["environments"] as? [String: Any])?["dev"] as? [String: Any]
        let deployed = (raw?["deployed"] as? [String: Any])?["plan"] as? String
        #expect(deployed == (env["deployed"] as? [String: Any])?["plan"] as? String)
        #expect(deployed == succeeded.last, "\(moment): deployed \(deployed ?? "nothing") but the newest succeeded plan is \(succeeded.last ?? "none")")
    }
}
