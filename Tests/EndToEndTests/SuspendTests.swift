import Foundation
import Testing
import TestSupport

@Suite("suspend: true", .serialized)
struct SuspendTests {
    /// A suspended environment explains and judges its plans but builds and runs nothing; removing
    /// the key resumes, and the waiting plan deploys.
    @Test func suspendStopsBuildsButNotExplains() throws {
        let ws = DeployWorkspace()
        ws.dir.write("desired/environments/dev.yaml", "ref: main\ntarget: dev\nrequired_approvals: 0\nsuspend: true\n")
        let preview = ws.dagctl("plan")
        #expect(preview.stdout.contains("suspended (suspend: true in"), "\(preview.stdout)")
        let run = ws.dagctl("reconcile")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("suspended: dev-v1-"), "\(run.stdout)")
        var plan = try #require(try ws.devPlans().last)
        #expect(plan["status"] as? String == "approved", "explained and judged")
        #expect((plan["attempts"] as? [Any])?.isEmpty == true, "nothing built")
        #expect(try ws.deployedVersion() == nil)
        #expect(!FileManager.default.fileExists(atPath: ws.dir.file("state/builds")))

        ws.dir.write("desired/environments/dev.yaml", "ref: main\ntarget: dev\nrequired_approvals: 0\n")
        let resumed = ws.dagctl("reconcile")
        #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
        plan = try #require(try ws.devPlans().last)
        #expect(plan["status"] as? String == "succeeded")
        #expect(try ws.deployedVersion() == "1")
    }
}
