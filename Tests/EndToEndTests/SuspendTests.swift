import Foundation
import Testing
import TestSupport

@Suite("Operations: suspend and deploy windows", .serialized)
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

    /// An approved plan outside its windows waits and says until when (`plan` too); inside, it runs.
    /// The clock is injected (DAGCTL_TEST_NOW), not slept on.
    @Test func anApprovedPlanWaitsForItsWindow() throws {
        let ws = DeployWorkspace()
        ws.dir.write("desired/environments/dev.yaml", """
            ref: main
            target: dev
            required_approvals: 0
            windows:
              - {kind: allow, schedule: "0 3 * * *", duration: 1h, timezone: Europe/Berlin}
              - {kind: deny, schedule: "0 3 * * sat,sun", duration: 24h, timezone: Europe/Berlin}
            """)
        func dagctl(_ args: String..., now: String) -> ProcessOutput {
            TestSupport.dagctl(Array(args), in: ws.dir.path, environment: ws.environment.merging(["DAGCTL_TEST_NOW": now]) { $1 })
        }
        // Monday 2026-11-30 12:00 UTC: the next window is Tuesday 03:00 in Berlin (02:00 UTC).
        let preview = dagctl("plan", now: "2026-11-30T12:00:00Z")
        #expect(preview.stdout.contains("would wait until 2026-12-01T02:00:00Z"), "\(preview.stdout)")
        var run = dagctl("reconcile", now: "2026-11-30T12:00:00Z")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("outside its deploy windows: dev-v1-") && run.stdout.contains("waits until 2026-12-01T02:00:00Z"), "\(run.stdout)")
        #expect((try ws.devPlans().last?["attempts"] as? [Any])?.isEmpty == true)
        // Saturday inside the allow window's hours, but a deny window covers the weekend.
        run = dagctl("reconcile", now: "2026-12-05T02:30:00Z")
        #expect(run.stdout.contains("waits until 2026-12-07T02:00:00Z"), "\(run.stdout)")
        // Tuesday 03:30 in Berlin: inside the window, it deploys.
        run = dagctl("reconcile", now: "2026-12-01T02:30:00Z")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(try ws.deployedVersion() == "1")
    }

    /// Bad windows are file:line errors.
    @Test func badWindowsAreErrorsAtTheirLine() throws {
        let ws = DeployWorkspace()
        ws.dir.write("desired/environments/dev.yaml", """
            ref: main
            windows:
              - kind: allow
                schedule: "0 25 * * *"
                duration: 2x
                timezone: Mars/Olympus
              - kind: sometimes
                schedule: "* * * * *"
                duration: 1h
            """)
        let out = ws.dagctl("validate")
        #expect(out.status == 1)
        let file = ws.dir.file("desired/environments/dev.yaml")
        for expected in ["\(file):4: 'windows[0].schedule': '25' is not a valid hour", "\(file):5: 'windows[0].duration': '2x' is not a duration",
                         "\(file):6: 'windows[0].timezone': 'Mars/Olympus' is not an IANA time zone", "\(file):7: 'windows[1].kind': 'sometimes' is not a window kind"] {
            #expect(out.stdout.contains(expected), "missing \(expected) in \(out.stdout)")
        }
    }
}
