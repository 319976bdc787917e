import Foundation
import Testing
import TestSupport

/// The example project with `notifications.yaml` pointing at a real receiver on 127.0.0.1.
final class NotifyWorkspace: @unchecked Sendable {
    let ws = DeployWorkspace()
    let receiver: WebhookReceiver
    var extraEnvironment: [String: String] = [:]

    init(approvals: Int = 0, secret: String? = "s3cret", dashboard: Bool = true) {
        receiver = WebhookReceiver(secret: secret)
        ws.dir.write("desired/environments/dev.yaml", "ref: main\ntarget: dev\nrequired_approvals: \(approvals)\n")
        writeNotifications(dashboard: dashboard, secret: secret != nil)
        extraEnvironment = ["HOOK_URL": receiver.url + "/slack", "HOOK_SECRET": secret ?? ""]
    }

    func writeNotifications(dashboard: Bool = true, secret: Bool = true, extra: String = "") {
        ws.dir.write("desired/notifications.yaml", """
            \(dashboard ? "dashboard_url: https://dagctl.example.com\n" : "")webhooks:
              - name: machines
                url: \(receiver.url)
                format: json
            \(secret ? "    secret_env: HOOK_SECRET\n" : "")  - name: team-slack
                url_env: HOOK_URL
                format: slack
                events: [plan_pending, plan_failed, plan_succeeded]
            \(secret ? "    secret_env: HOOK_SECRET\n" : "")\(extra)
            """)
    }

    var environment: [String: String] { ws.environment.merging(extraEnvironment) { $1 } }

    func dagctl(_ args: String..., now: Date? = nil) -> ProcessOutput {
        var env = environment
        if let now { env["DAGCTL_TEST_NOW"] = ISO8601DateFormatter().string(from: now) }
        return TestSupport.dagctl(Array(args), in: ws.dir.path, environment: env)
    }

    /// The json webhook's events (what a receiver that drops duplicates keeps).
    var jsonEvents: [[String: Any]] { receiver.events.filter { $0["event"] != nil } }
    var slackMessages: [[String: Any]] { receiver.events.filter { $0["text"] != nil } }

    func newestPlanID() throws -> String { try #require(ws.devPlans().last?["id"] as? String) }

    func outbox() throws -> [[String: Any]] { try ws.state()["outbox"] as? [[String: Any]] ?? [] }
}

@Suite("Notifications: webhooks delivered from a durable outbox", .serialized)
struct NotificationTests {
    static let documentedKeys: Set<String> = ["id", "event", "environment", "plan", "status", "reason", "scope", "select", "commit",
                                              "author", "approvers_needed", "url", "at"]

    /// Every event type, from one plan's life to the next, reaches the receiver with the documented
    /// body, signed; Slack gets one line per event it asked for.
    @Test func everyEventTypeArrivesWithItsDocumentedBody() throws {
        let n = NotifyWorkspace(approvals: 1)
        // v1 is explained and waits; alice rejects it.
        var r = n.dagctl("reconcile")
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let v1 = try n.newestPlanID()
        #expect(n.dagctl("approve", v1, "--as", "alice", "--reject", "--comment", "not yet").status == 0)
        #expect(n.dagctl("reconcile").status == 0)
        // v2 waits, and v3 supersedes it; v3 breaks a model.
        n.ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        #expect(n.dagctl("reconcile").status == 0)
        let v2 = try n.newestPlanID()
        let original = try #require(n.ws.repo.dir.read("models/marts/customers.sql"))
        n.ws.bump(3) { $0.write("models/marts/customers.sql", "select * from no_such_table\n") }
        #expect(n.dagctl("reconcile").status == 0)
        let v3 = try n.newestPlanID()
        #expect(n.dagctl("approve", v3, "--as", "bob").status == 0)
        r = n.dagctl("reconcile")
        #expect(r.status == 1, "v3 fails: \(r.stdout)")
        // v4 fixes it and deploys.
        n.ws.bump(4) { $0.write("models/marts/customers.sql", original + "-- v4\n") }
        #expect(n.dagctl("reconcile").status == 0)
        let v4 = try n.newestPlanID()
        #expect(n.dagctl("approve", v4, "--as", "bob").status == 0)
        r = n.dagctl("reconcile")
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("notified machines"), "\(r.stdout)")

        let events = n.jsonEvents
        let got = events.map { "\($0["event"]!) \($0["plan"]!)" }
        #expect(got == ["plan_pending \(v1)", "plan_rejected \(v1)", "plan_pending \(v2)", "plan_superseded \(v2)", "plan_pending \(v3)",
                        "plan_approved \(v3)", "attempt_started \(v3)", "plan_failed \(v3)", "plan_pending \(v4)",
                        "plan_approved \(v4)", "attempt_started \(v4)", "plan_succeeded \(v4)"], "\(got)")
        for event in events {
            #expect(Self.documentedKeys.isSubset(of: Set(event.keys)), "\(event)")
            #expect(event["environment"] as? String == "dev")
            #expect(event["url"] as? String == "https://dagctl.example.com/plans/\(event["plan"]!)")
            #expect((event["commit"] as? String)?.count == 40)
            #expect((event["id"] as? String)?.hasPrefix("evt-") == true)
        }
        for request in n.receiver.requests {
            #expect(request["signature_ok"] as? Bool == true, "the HMAC verifies: \(request)")
            #expect(request["content_type"] as? String == "application/json")
            if let body = request["body"] as? [String: Any], let id = body["id"] as? String { #expect(request["id"] as? String == id) }
        }
        let pending = try #require(events.first { $0["event"] as? String == "plan_pending" && $0["plan"] as? String == v3 })
        #expect(pending["approvers_needed"] as? Int == 1)
        #expect(pending["status"] as? String == "pending")
        #expect((pending["may_approve"] as? [String])?.contains("bob") == true)
        #expect((pending["approve_command"] as? String)?.hasPrefix("dagctl approve \(v3) --as ") == true, "\(pending)")
        let rejected = try #require(events.first { $0["event"] as? String == "plan_rejected" })
        #expect(rejected["reason"] as? String == "rejected by alice")
        let failed = try #require(events.first { $0["event"] as? String == "plan_failed" })
        #expect(failed["failed_nodes"] as? [String] == ["model.shop.customers"], "\(failed)")
        #expect((failed["retry_command"] as? String)?.hasPrefix("dagctl retry \(v3) --as ") == true, "\(failed)")
        #expect(failed["attempt"] as? Int == 1)
        let started = try #require(events.first { $0["event"] as? String == "attempt_started" && $0["plan"] as? String == v4 })
        #expect(started["attempt"] as? Int == 1)
        #expect(started["scope"] as? String == "all", "nothing was deployed yet: a first deploy builds all")
        #expect(started["select"] as? [String] == [])
        let succeeded = try #require(events.last)
        #expect(succeeded["status"] as? String == "succeeded")
        #expect(succeeded["author"] as? String == "bob")

        // Slack: only the events it asked for, one line each, the plan linked to its dashboard page.
        let slack = n.slackMessages
        #expect(slack.count == 6, "\(slack)")
        for message in slack {
            let text = try #require(message["text"] as? String)
            #expect(!text.contains("\n"))
            let block = try #require((message["blocks"] as? [[String: Any]])?.first?["text"] as? [String: Any])
            #expect(block["type"] as? String == "mrkdwn")
            #expect((block["text"] as? String)?.contains("<https://dagctl.example.com/plans/") == true)
        }
        let failedLine = try #require(slack.compactMap { $0["text"] as? String }.first { $0.contains("failed") })
        #expect(failedLine.contains("dagctl retry \(v3) --as "), "\(failedLine)")
        #expect(try n.outbox().isEmpty)
        #expect(stateSchemaProblems(n.ws.statePath) == "")
        let status = n.dagctl("status")
        #expect(status.stdout.contains("machines: all delivered"), "\(status.stdout)")
    }

    /// A receiver that is down, then answers 500, then is too slow: the events wait in the outbox and
    /// arrive on a later run, once each after duplicates are dropped; the deploy is never held back.
    @Test func undeliveredEventsArriveOnALaterRun() throws {
        let n = NotifyWorkspace()
        n.receiver.stop()
        var r = n.dagctl("reconcile")
        #expect(r.status == 0, "a dead receiver fails nothing: \(r.stdout)\n\(r.stderr)")
        #expect(try n.ws.deployedVersion() == "1", "and holds nothing back")
        #expect(r.stdout.contains("notification not delivered"), "\(r.stdout)")
        #expect(try n.outbox().count == 3, "approved, attempt_started, succeeded wait in the outbox")
        #expect(stateSchemaProblems(n.ws.statePath) == "", "state/schema.json describes the outbox dagctl writes")
        var status = n.dagctl("status")
        #expect(status.stdout.contains("machines: 3 undelivered"), "\(status.stdout)")
        #expect(status.stdout.contains("connection refused"), "\(status.stdout)")
        let json = try #require(parseJSON(n.dagctl("status", "--output", "json").stdout))
        let rows = try #require(json["notifications"] as? [[String: Any]])
        #expect(rows.first { $0["webhook"] as? String == "machines" }?["undelivered"] as? Int == 3)

        // Back off: a run right after does not try again.
        n.receiver.start()
        n.receiver.answer("500 busy")
        r = n.dagctl("reconcile")
        #expect(n.receiver.requests.isEmpty, "still backing off")
        // An hour later: tried, answered 500, kept.
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(3600))
        #expect(r.status == 0)
        #expect(n.receiver.requests.count == 2, "one try per webhook per run, in order: \(n.receiver.requests.count)")
        status = n.dagctl("status")
        #expect(status.stdout.contains("answered 500: busy"), "\(status.stdout)")
        // Slow past the 10 s timeout: kept.
        n.receiver.answer("delay 12")
        let started = Date()
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(2 * 3600))
        #expect(r.status == 0)
        #expect(Date().timeIntervalSince(started) < 35, "all requests of a run are bounded")
        #expect(n.dagctl("status").stdout.contains("no answer within 10 s"))
        #expect(try n.outbox().count == 3)
        // Healthy again: everything arrives, in order, once.
        n.receiver.answer(nil)
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(3 * 3600))
        #expect(r.status == 0)
        #expect(try n.outbox().isEmpty, "\(r.stdout)")
        let events = n.jsonEvents.map { $0["event"] as? String ?? "" }
        #expect(events == ["plan_approved", "attempt_started", "plan_succeeded"], "\(events)")
        // The slow answer came after dagctl gave up: that event was sent twice, with one id.
        let ids = n.receiver.requests.filter { $0["path"] as? String == "/hook" && ($0["answered"] as? Int) == 200 }.map { $0["id"] as? String ?? "" }
        #expect(Set(ids).count == 3, "three events, whatever the repeats: \(ids)")
        #expect(try n.ws.deployedVersion() == "1")
    }

    /// A 4xx (other than 408 and 429) is not retried: dropped with the receiver's answer, in the run's
    /// output, `status` and `outbox/dropped.jsonl`. A 429 is retried.
    @Test func aRefusedEventIsDroppedNotRetried() throws {
        let n = NotifyWorkspace(approvals: 1)
        n.receiver.answer("429 slow down")
        var r = n.dagctl("reconcile")
        #expect(r.status == 0)
        #expect(try n.outbox().count == 1, "429 is retried later")
        n.receiver.answer("404 no such hook")
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(3600))
        #expect(r.status == 0, "a refused notification fails nothing")
        #expect(r.stdout.contains("warning: dropped plan_pending"), "\(r.stdout)")
        #expect(r.stdout.contains("answered 404: no such hook"), "\(r.stdout)")
        #expect(try n.outbox().isEmpty)
        let dropped = try #require(n.ws.dir.read("state/outbox/dropped.jsonl"))
        let line = try #require(parseJSON(String(dropped.split(separator: "\n").first!)))
        #expect((line["reason"] as? String)?.contains("answered 404: no such hook") == true)
        #expect((line["event"] as? [String: Any])?["event"] as? String == "plan_pending")
        let tries = n.receiver.requests.count
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(7200))
        #expect(n.receiver.requests.count == tries, "not tried again")
        #expect(n.dagctl("status").stdout.contains("answered 404: no such hook"))
    }

    /// Undelivered for 24 hours (an injected clock, not a sleep): dropped with a warning.
    @Test func anEventUndeliveredFor24HoursIsDroppedLoudly() throws {
        let n = NotifyWorkspace(approvals: 1)
        n.receiver.stop()
        #expect(n.dagctl("reconcile").status == 0)
        #expect(try (n.outbox().first?["deliveries"] as? [Any])?.count == 2, "plan_pending: one event, a delivery to each webhook")
        var r = n.dagctl("reconcile", now: Date().addingTimeInterval(23 * 3600))
        #expect(try n.outbox().count == 1, "kept at 23 hours")
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(25 * 3600))
        #expect(r.status == 0)
        #expect(r.stdout.contains("warning: dropped plan_pending"), "\(r.stdout)")
        #expect(r.stdout.contains("not delivered within 24 hours"), "\(r.stdout)")
        #expect(try n.outbox().isEmpty)
        let lines = try #require(n.ws.dir.read("state/outbox/dropped.jsonl")).split(separator: "\n")
        #expect(lines.count == 2, "one line per webhook: \(lines)")
    }

    /// The URL's variable is missing: a clear error naming it, in the run's output and `status`; the
    /// deploy goes on, and the events go out once the variable is set.
    @Test func aMissingVariableIsNamedAndStopsNothing() throws {
        let n = NotifyWorkspace()
        n.extraEnvironment["HOOK_URL"] = nil
        var r = n.dagctl("reconcile")
        #expect(r.status == 0)
        #expect(try n.ws.deployedVersion() == "1")
        #expect(r.stdout.contains("HOOK_URL (url_env) is not set"), "\(r.stdout)")
        #expect(n.dagctl("status").stdout.contains("HOOK_URL (url_env) is not set"))
        let validate = n.dagctl("validate")
        #expect(validate.stdout.contains("HOOK_URL"), "\(validate.stdout)")
        n.extraEnvironment["HOOK_URL"] = n.receiver.url + "/slack"
        r = n.dagctl("reconcile", now: Date().addingTimeInterval(3600))
        #expect(try n.outbox().isEmpty, "\(r.stdout)")
        #expect(n.slackMessages.count == 1, "team-slack asked for plan_succeeded only (of these)")
    }

    /// A bad notifications.yaml: validate names the file, line and key; reconcile warns and deploys.
    @Test func aBadFileIsReportedAndDeploysGoOn() throws {
        let n = NotifyWorkspace()
        n.ws.dir.write("desired/notifications.yaml", """
            webhooks:
              - name: machines
                url: \(n.receiver.url)
                format: teams
                events: [plan_pending, plan_exploded]
                environments: [dve]
                retries: 3
            """)
        let validate = n.dagctl("validate")
        #expect(validate.status == 1)
        let file = n.ws.dir.file("desired/notifications.yaml")
        #expect(validate.stdout.contains("\(file):4: 'webhooks[0].format': 'teams' is not a format"), "\(validate.stdout)")
        #expect(validate.stdout.contains("\(file):5: 'webhooks[0].events': 'plan_exploded' is not an event"), "\(validate.stdout)")
        #expect(validate.stdout.contains("\(file):6: 'webhooks[0].environments': there is no environment 'dve'"), "\(validate.stdout)")
        #expect(validate.stdout.contains("\(file):7: 'webhooks[0].retries': unknown key"), "\(validate.stdout)")
        let r = n.dagctl("reconcile")
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("no notifications are recorded until notifications.yaml is fixed"), "\(r.stderr)")
        #expect(try n.ws.deployedVersion() == "1")
    }

    /// SIGTERM while a request hangs: the request is abandoned, no other starts, the run says why and
    /// exits 1, and the events wait for the next run.
    @Test func aSignalDuringDeliveryStopsItPromptly() throws {
        let n = NotifyWorkspace()
        n.receiver.answer("delay 60")
        let out = TemporaryDirectory("dagctl-out")
        let child = startDagctl(["reconcile"], environment: n.environment, outputDir: out.path)
        // The deploy is recorded first; delivery comes after the environment's work.
        #expect(eventually(within: 60) { n.ws.peekNewestPlan()?["status"] as? String == "succeeded" })
        usleep(1_500_000)
        let signalled = Date()
        kill(child.pid, SIGTERM)
        let status = child.wait()
        #expect(Date().timeIntervalSince(signalled) < 3, "stopped promptly, not after the 10 s timeout")
        #expect(status >> 8 & 0xff == 1, "exit 1: \(status)")
        let stdout = out.read("stdout") ?? ""
        #expect(stdout.contains("dagctl received SIGTERM while sending notifications"), "\(stdout)")
        #expect(try n.outbox().count == 3, "nothing lost")
        #expect(n.receiver.requests.isEmpty, "the hanging request never completed")
        #expect(try n.ws.deployedVersion() == "1")
    }

    /// `dagctl notify test NAME` sends a signed test event and says what the receiver answered.
    @Test func notifyTestSendsATestEvent() throws {
        let n = NotifyWorkspace()
        var r = n.dagctl("notify", "test", "team-slack")
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("answered 200"), "\(r.stdout)")
        #expect(!r.stdout.contains(n.receiver.url), "a URL from a variable is a secret and is not printed")
        let request = try #require(n.receiver.requests.last)
        #expect(request["event"] as? String == "test")
        #expect(request["signature_ok"] as? Bool == true)
        #expect(((request["body"] as? [String: Any])?["text"] as? String)?.contains("test notification") == true)
        n.receiver.answer("500 down")
        r = n.dagctl("notify", "test", "machines")
        #expect(r.status == 1)
        #expect(r.stderr.contains("answered 500: down"), "\(r.stderr)")
        r = n.dagctl("notify", "test", "nope")
        #expect(r.status == 1)
        #expect(r.stderr.contains("no webhook 'nope'"), "\(r.stderr)")
        #expect(n.ws.dir.read("state/state.json") == nil, "a test event is not recorded")
    }

    /// `kill -9` at random moments and right after the state writes that record events, over many
    /// reconciles: every plan's events arrive (once each, by id), and none is invented.
    @Test func killsBetweenTheWriteAndTheDeliveryLoseNoEvent() throws {
        let n = NotifyWorkspace()
        #expect(n.dagctl("reconcile").status == 0)
        let out = TemporaryDirectory("dagctl-out")
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for round in 2...25 {
            n.ws.bump(round) { $0.write("README.md", "# shop\n\nround \(round)\n") }
            var environment = n.environment
            if round % 2 == 0 {
                // Right after the n-th state write: events recorded, not yet delivered.
                environment["DAGCTL_FAILPOINT"] = "state-renamed:\(1 + round / 2 % 3)"
                let r = TestSupport.dagctl(["reconcile"], in: n.ws.dir.path, environment: environment)
                if r.status == SIGKILL { kills += 1 }
            } else {
                let child = startDagctl(["reconcile"], environment: environment, outputDir: out.path)
                usleep(UInt32.random(in: 0...60_000, using: &generator))
                var status: Int32 = 0
                if waitpid(child.pid, &status, WNOHANG) == 0 { kill(child.pid, SIGKILL); kills += 1 }
                child.wait()
            }
        }
        #expect(kills >= 20, "kills: \(kills)")
        let final = n.dagctl("reconcile")
        #expect(final.status == 0 || final.status == 1, "\(final.stdout)\n\(final.stderr)")
        _ = n.dagctl("reconcile", now: Date().addingTimeInterval(3 * 3600))  // past any backoff
        #expect(try n.outbox().isEmpty)

        // Every plan ever recorded (state and history) and its events, by distinct id.
        var plans = try n.ws.devPlans()
        for line in (n.ws.dir.read("state/history/dev.jsonl") ?? "").split(separator: "\n") {
            if let plan = parseJSON(String(line)) { plans.append(plan) }
        }
        var byPlan: [String: [String: Int]] = [:]
        for event in n.jsonEvents { byPlan[event["plan"] as! String, default: [:]][event["event"] as! String, default: 0] += 1 }
        #expect(Set(byPlan.keys).isSubset(of: Set(plans.map { $0["id"] as! String })), "no event for a plan that was never recorded")
        for plan in plans {
            let id = plan["id"] as! String, status = plan["status"] as! String
            let attempts = (plan["attempts"] as? [[String: Any]])?.count ?? 0
            let got = byPlan[id] ?? [:]
            #expect(got["plan_approved"] == 1, "\(id): \(got)")
            #expect(got["attempt_started"] ?? 0 == attempts, "\(id) has \(attempts) attempts: \(got)")
            if ["succeeded", "failed", "superseded"].contains(status) { #expect(got["plan_\(status)"] == 1, "\(id) \(status): \(got)") }
        }
        print("notification kill loop: \(kills) kills, \(plans.count) plans, \(n.jsonEvents.count) events delivered")
    }
}
