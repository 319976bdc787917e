import DagctlSpec
import DagctlState
import Foundation
import Testing
import TestSupport
@testable import DagctlNotify

/// A receiver that answers from a script and takes the time it is told on a fake clock, so backoff,
/// expiry and the run's budget are tested without sleeping. (The real network is tested end to end
/// with a real receiver.)
final class ScriptedTransport: WebhookTransport, @unchecked Sendable {
    struct Post { var url: URL; var body: Data; var headers: [String: String] }
    var posts: [Post] = []
    var answers: [String: [PostOutcome]] = [:]  // by URL path; 200 when the script runs out
    var takes: TimeInterval = 0
    let clock: FakeClock

    init(clock: FakeClock) { self.clock = clock }

    var onPost: () -> Void = {}

    func post(_ url: URL, body: Data, headers: [(String, String)], timeout: TimeInterval, cancelled: @escaping () -> Bool) -> PostOutcome {
        onPost()
        posts.append(Post(url: url, body: body, headers: Dictionary(headers) { $1 }))
        clock.uptime += min(takes, timeout)
        if takes > timeout { return .unreachable("no answer within \(Int(timeout)) s") }
        let path = url.path
        guard var script = answers[path], !script.isEmpty else { return .answered(status: 200, body: "ok") }
        let answer = script.removeFirst()
        answers[path] = script
        return answer
    }

    func events(to path: String) -> [String] {
        posts.filter { $0.url.path == path }.compactMap { $0.headers["X-Dagctl-Event"] }
    }
}

final class Flag: @unchecked Sendable { var isSet = false }

final class FakeClock: @unchecked Sendable {
    var now = Date(timeIntervalSince1970: 1_800_000_000)
    var uptime: TimeInterval = 0
}

struct OutboxFixture {
    let clock = FakeClock()
    let transport: ScriptedTransport
    let dir = TemporaryDirectory("dagctl-outbox")
    var spec: NotificationsSpec? = NotificationsSpec(webhooks: [
        Webhook(name: "a", url: .literal("http://receiver.test/a"), secretEnv: "KEY"),
        Webhook(name: "b", url: .literal("http://receiver.test/b"), format: .slack),
    ])
    var state = StateFile()
    var environment = ["KEY": "s3cret"]
    var stopped: @Sendable () -> Bool = { false }

    init() { transport = ScriptedTransport(clock: clock) }

    var layout: StateLayout { StateLayout(directory: dir.path) }

    /// Records an event for the named webhooks at the clock's time.
    mutating func record(_ kind: EventKind, plan: String = "dev-v1-0123456789", to webhooks: [String] = ["a", "b"]) {
        let event = NotificationEvent(event: kind, environment: "dev", plan: plan, status: "pending", reason: nil, scope: "all",
                                      select: [], commit: String(repeating: "a", count: 40), author: "alice", approversNeeded: 1,
                                      url: nil, at: Timestamp.string(clock.now))
        state.outbox.append(OutboxEntry(event: event, deliveries: webhooks.map { Delivery(webhook: $0) }))
    }

    mutating func deliver(budget: TimeInterval = OutboxDelivery.runBudget) -> OutboxDelivery.Outcome {
        var delivery = OutboxDelivery(notifications: spec, transport: transport, layout: layout, now: { [clock] in clock.now },
                                      uptime: { [clock] in clock.uptime }, environment: environment, budget: budget, stopped: stopped)
        return delivery.deliver(&state)
    }

    func pending(_ webhook: String) -> Int { state.undelivered[webhook] ?? 0 }
    var droppedLines: [String] { (dir.read("outbox/dropped.jsonl") ?? "").split(separator: "\n").map(String.init) }
}

@Suite("Outbox delivery")
struct OutboxDeliveryTests {
    @Test func deliversInOrderSignedAndForgetsWhatArrived() throws {
        var f = OutboxFixture()
        f.record(.planPending)
        f.record(.planApproved)
        let outcome = f.deliver()
        #expect(outcome.delivered == ["a": 2, "b": 2])
        #expect(f.state.outbox.isEmpty)
        #expect(f.transport.events(to: "/a") == ["plan_pending", "plan_approved"])
        let first = try #require(f.transport.posts.first)
        let id = try #require(first.headers["X-Dagctl-Event-Id"])
        #expect(NotificationEvent.isValidID(id))
        #expect(first.headers["X-Dagctl-Signature"] == EventBodies.signature(first.body, secret: "s3cret"))
        let body = try #require(try JSONSerialization.jsonObject(with: first.body) as? [String: Any])
        #expect(body["id"] as? String == id && body["event"] as? String == "plan_pending")
        let slack = try #require(f.transport.posts.first { $0.url.path == "/b" })
        #expect(slack.headers["X-Dagctl-Signature"] == nil, "b has no secret_env")
        #expect((try JSONSerialization.jsonObject(with: slack.body) as? [String: Any])?["text"] as? String != nil)
        #expect(f.state.webhooks["a"]?.lastDeliveredAt == Timestamp.string(f.clock.now))
    }

    /// A failure keeps the event and the ones behind it for that webhook (order), backs off, and does
    /// not hold up other webhooks.
    @Test func aFailureBacksOffThatWebhookOnly() {
        var f = OutboxFixture()
        f.record(.planPending)
        f.record(.planApproved)
        f.transport.answers["/a"] = [.answered(status: 500, body: "oops")]
        var outcome = f.deliver()
        #expect(f.transport.events(to: "/a") == ["plan_pending"], "the second waits behind the first")
        #expect(outcome.delivered == ["b": 2])
        #expect(f.pending("a") == 2 && f.pending("b") == 0)
        #expect(outcome.deferred.count == 1 && outcome.deferred[0].contains("answered 500: oops"))
        #expect(f.state.webhooks["a"]?.lastError == "answered 500: oops")
        // 10 s later: still backing off (30 s after the first failure).
        f.clock.now += 10
        outcome = f.deliver()
        #expect(f.transport.events(to: "/a").count == 1)
        f.clock.now += 25
        outcome = f.deliver()
        #expect(f.transport.events(to: "/a") == ["plan_pending", "plan_pending", "plan_approved"])
        #expect(f.state.outbox.isEmpty)
    }

    @Test func backoffDoublesUpToAnHour() {
        #expect((1...9).map { OutboxDelivery.backoff(after: $0) } == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600])
    }

    /// A 4xx other than 408 and 429 is dropped at once with the receiver's answer; 408, 429, 5xx, 3xx and
    /// no answer are tried again.
    @Test func onlyAPermanentRefusalIsDropped() throws {
        for (status, retried) in [(400, false), (401, false), (404, false), (410, false), (408, true), (429, true), (500, true), (503, true), (301, true)] {
            var f = OutboxFixture()
            f.record(.planFailed, to: ["a"])
            f.transport.answers["/a"] = [.answered(status: status, body: "no")]
            let outcome = f.deliver()
            #expect(f.pending("a") == (retried ? 1 : 0), "\(status)")
            #expect(outcome.dropped.count == (retried ? 0 : 1), "\(status)")
            if !retried {
                let line = try #require(f.droppedLines.first)
                let doc = try #require(parseJSON(line))
                #expect(doc["webhook"] as? String == "a")
                #expect((doc["reason"] as? String)?.hasPrefix("answered \(status): no") == true)
                #expect((doc["event"] as? [String: Any])?["event"] as? String == "plan_failed")
            }
        }
        var f = OutboxFixture()
        f.record(.planFailed, to: ["a"])
        f.transport.takes = 60
        _ = f.deliver()
        #expect(f.pending("a") == 1)
        #expect(f.state.outbox[0].deliveries[0].lastError == "no answer within 10 s")
    }

    @Test func givesUpAfter24HoursWithAWarning() {
        var f = OutboxFixture()
        f.record(.planPending)
        f.transport.answers["/a"] = Array(repeating: .unreachable("connection refused"), count: 100)
        f.transport.answers["/b"] = Array(repeating: .unreachable("connection refused"), count: 100)
        _ = f.deliver()
        f.clock.now += 24 * 3600 - 1
        var outcome = f.deliver()
        #expect(outcome.dropped.isEmpty && f.state.outbox.count == 1, "kept until 24 hours have passed")
        f.clock.now += 2
        outcome = f.deliver()
        #expect(outcome.dropped.count == 2)
        #expect(outcome.dropped[0].contains("not delivered within 24 hours (2 attempts; last error: connection refused)"), "\(outcome.dropped)")
        #expect(f.state.outbox.isEmpty)
        #expect(f.droppedLines.count == 2)
        #expect(f.transport.posts.count == 4, "not tried at 24 hours")
    }

    /// With a bad notifications.yaml (no spec) nothing is sent or dropped but what expired; a webhook
    /// taken out of a good file has its events dropped, loudly.
    @Test func aBadFileKeepsEventsAndARemovedWebhookDropsThem() {
        var f = OutboxFixture()
        f.record(.planPending)
        f.spec = nil
        var outcome = f.deliver()
        #expect(f.transport.posts.isEmpty && outcome.isEmpty && f.state.outbox.count == 1)
        f.spec = NotificationsSpec(webhooks: [Webhook(name: "a", url: .literal("http://receiver.test/a"))])
        f.state.webhooks["gone"] = WebhookRecord(lastError: "old")
        outcome = f.deliver()
        #expect(outcome.delivered == ["a": 1])
        #expect(outcome.dropped.count == 1 && outcome.dropped[0].contains("webhook 'b' is no longer in notifications.yaml"))
        #expect(f.state.webhooks["gone"] == nil, "records of removed webhooks go too")
        f.spec = nil
        f.record(.planApproved)
        f.clock.now += 25 * 3600
        outcome = f.deliver()
        #expect(outcome.dropped.count == 2 && f.state.outbox.isEmpty, "expiry applies even without a usable file")
    }

    /// A missing variable is the operator's to fix, not the receiver's: no backoff, so the run after the
    /// fix delivers.
    @Test func aMissingVariableIsTheDeliveryErrorWithoutBackoff() {
        var f = OutboxFixture()
        f.spec = NotificationsSpec(webhooks: [Webhook(name: "a", url: .environment("HOOK"))])
        f.record(.planPending, to: ["a"])
        for _ in 1...5 {
            let outcome = f.deliver()
            #expect(outcome.deferred.first?.contains("HOOK (url_env) is not set") == true)
            f.clock.now += 60
        }
        #expect(f.transport.posts.isEmpty)
        #expect(f.state.outbox[0].deliveries[0].nextAttemptAt == nil && f.state.outbox[0].deliveries[0].attempts == 0)
        f.environment["HOOK"] = "http://receiver.test/a"
        #expect(f.deliver().delivered == ["a": 1])
    }

    /// A hook address read from a variable is a secret: taken out of errors before they are recorded.
    @Test func anAddressFromAVariableNeverReachesTheRecord() {
        var f = OutboxFixture()
        f.spec = NotificationsSpec(webhooks: [Webhook(name: "a", url: .environment("HOOK"))])
        f.environment["HOOK"] = "http://hooks.internal.example:8443/T0/SECRET"
        f.record(.planPending, to: ["a"])
        f.transport.answers["/T0/SECRET"] = [.unreachable("DNS error for host hooks.internal.example, port 8443 (http://hooks.internal.example:8443/T0/SECRET)")]
        let outcome = f.deliver()
        let recorded = f.state.outbox[0].deliveries[0].lastError ?? ""
        #expect(!recorded.contains("hooks.internal.example") && !recorded.contains("SECRET"), "\(recorded)")
        #expect(recorded.contains("(the host in HOOK)") && recorded.contains("(the URL in HOOK)"), "\(recorded)")
        #expect(!outcome.deferred.joined().contains("SECRET"))
    }

    /// A receiver's answer goes to terminals and files: control characters (escape sequences, a
    /// carriage return) are shown as `?`, and it is cut to one line.
    @Test func aReceiversAnswerIsMadePrintable() {
        guard case .failed(let text) = OutboxDelivery.judge(.answered(status: 500, body: "\u{1b}[31mRED\u{1b}]0;pwned\u{07}\rX\nsecond")) else {
            Issue.record("a 500 is retried"); return
        }
        #expect(text == "answered 500: ?[31mRED?]0;pwned?", "\(text)")
    }

    /// A signal stops the pass: no request starts after it, and what is left waits.
    @Test func aSignalStopsTheDelivery() {
        var f = OutboxFixture()
        f.record(.planPending)
        f.record(.planApproved)
        let flag = Flag()
        f.stopped = { flag.isSet }
        f.transport.onPost = { flag.isSet = true }  // the signal arrives during the first request
        let outcome = f.deliver()
        #expect(outcome.interrupted)
        #expect(f.transport.posts.count == 1)
        #expect(f.pending("a") + f.pending("b") == 3, "the first was delivered; the rest wait")
    }

    /// `outbox/dropped.jsonl` must be dagctl's regular file in a real folder: a FIFO there cannot block
    /// the run, a link cannot send the line elsewhere, and an event whose line cannot be written is kept.
    @Test(arguments: ["fifo", "folder", "link to a file", "outbox is a link"])
    func aDropThatCannotBeWrittenKeepsTheEvent(_ kind: String) throws {
        var f = OutboxFixture()
        let elsewhere = TemporaryDirectory("dagctl-elsewhere")
        switch kind {
        case "fifo":
            try FileManager.default.createDirectory(atPath: f.dir.file("outbox"), withIntermediateDirectories: true)
            #expect(mkfifo(f.dir.file("outbox/dropped.jsonl"), 0o644) == 0)
        case "folder":
            try FileManager.default.createDirectory(atPath: f.dir.file("outbox/dropped.jsonl"), withIntermediateDirectories: true)
        case "link to a file":
            try FileManager.default.createDirectory(atPath: f.dir.file("outbox"), withIntermediateDirectories: true)
            elsewhere.write("victim", "")
            try FileManager.default.createSymbolicLink(atPath: f.dir.file("outbox/dropped.jsonl"), withDestinationPath: elsewhere.file("victim"))
        default:
            try FileManager.default.createSymbolicLink(atPath: f.dir.file("outbox"), withDestinationPath: elsewhere.path)
        }
        f.record(.planFailed, to: ["a"])
        f.transport.answers["/a"] = [.answered(status: 404, body: "gone"), .answered(status: 404, body: "gone")]
        let outcome = f.deliver()
        #expect(outcome.dropped.isEmpty)
        #expect(f.pending("a") == 1, "kept: the drop is written before the event is forgotten")
        #expect(outcome.deferred.first?.contains("stays in the outbox") == true, "\(outcome.deferred)")
        #expect(elsewhere.read("victim") ?? "" == "" && elsewhere.read("dropped.jsonl") == nil, "nothing written outside")
    }

    /// All requests of a run share one budget: once spent, the rest waits for the next run.
    @Test func oneRunsRequestsAreBounded() {
        var f = OutboxFixture()
        f.spec = NotificationsSpec(webhooks: (1...5).map { Webhook(name: "w\($0)", url: .literal("http://receiver.test/w\($0)")) })
        f.record(.planPending, to: (1...5).map { "w\($0)" })
        f.transport.takes = 60  // every receiver hangs: each request ends at its 10 s timeout
        _ = f.deliver()
        #expect(f.transport.posts.count == 3, "30 s of budget: three 10 s timeouts, then stop")
        #expect(f.clock.uptime == 30)
        #expect(f.state.outbox[0].deliveries.count == 5)
    }
}

@Suite("Event bodies")
struct EventBodiesTests {
    /// RFC 4231, test case 2.
    @Test func signsWithHMACSHA256() {
        #expect(EventBodies.signature(Data("what do ya want for nothing?".utf8), secret: "Jefe")
                == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func slackLinesAreShortEscapedAndLinked() throws {
        let event = NotificationEvent(event: .planFailed, environment: "prod", plan: "prod-v8-1a2b3c4d5e", status: "failed",
                                      reason: "attempt 1 failed in run: dbt build: exit 1; failed: <model.shop.x> & more\nsecond line",
                                      scope: "selective", select: ["x"], commit: String(repeating: "b", count: 40), author: "alice",
                                      approversNeeded: 0, url: "https://d.example.com/plans/prod-v8-1a2b3c4d5e", at: "2026-11-29T08:00:00Z",
                                      failedNodes: ["model.shop.x"], retryCommand: "dagctl retry prod-v8-1a2b3c4d5e --as bob")
        let message = try #require(try JSONSerialization.jsonObject(with: EventBodies.slack(event)) as? [String: Any])
        let text = try #require(message["text"] as? String)
        #expect(!text.contains("\n") && !text.contains("second line"))
        #expect(text.contains("&lt;model.shop.x&gt; &amp; more"), "the text field is markup too: \(text)")
        #expect(text.contains("dagctl retry prod-v8-1a2b3c4d5e --as bob"))
        let block = try #require(((message["blocks"] as? [[String: Any]])?.first?["text"] as? [String: Any])?["text"] as? String)
        #expect(block.hasPrefix(":x: <https://d.example.com/plans/prod-v8-1a2b3c4d5e|prod-v8-1a2b3c4d5e> failed on *prod*"))
        #expect(block.contains("&lt;model.shop.x&gt; &amp; more"), "text stays text in Slack's markup")
        #expect(block.contains("`dagctl retry prod-v8-1a2b3c4d5e --as bob`"))
        let long = NotificationEvent(event: .planSuperseded, environment: "dev", plan: "dev-v1-0123456789", status: "superseded",
                                     reason: String(repeating: "x", count: 5000), scope: "all", select: [], commit: "", author: nil,
                                     approversNeeded: 0, url: nil, at: "2026-11-29T08:00:00Z")
        #expect(EventBodies.line(long, link: false).count < 260)
    }

    /// Every documented key is in every json body, null when empty, so receivers see one shape.
    @Test func jsonBodiesHaveOneShape() throws {
        let event = NotificationEvent(event: .planApproved, environment: "dev", plan: "dev-v1-0123456789", status: "approved",
                                      reason: nil, scope: "all", select: [], commit: String(repeating: "c", count: 40), author: nil,
                                      approversNeeded: 0, url: nil, at: "2026-11-29T08:00:00Z")
        let body = try #require(try JSONSerialization.jsonObject(with: EventBodies.json(event)) as? [String: Any])
        #expect(Set(body.keys) == ["id", "event", "environment", "plan", "status", "reason", "scope", "select", "commit", "author",
                                   "approvers_needed", "url", "at"])
        #expect(body["reason"] is NSNull && body["url"] is NSNull && body["author"] is NSNull)
    }
}
