import DagctlSpec
import DagctlState
import Foundation

/// Delivers the outbox (SPEC §9): oldest first and in order per webhook, at least once, never for more
/// than 24 hours. It changes only the state's `outbox` and `webhooks`; the caller saves them.
///
/// A webhook whose head event fails (no answer, a 5xx, 408 or 429, a missing variable) is left for this
/// run: its later events wait behind it, so a receiver sees them in order, and a dead receiver costs one
/// timeout per run, not one per event. A 4xx other than 408 and 429 will not change by asking again: that
/// delivery is dropped, with the receiver's answer.
public struct OutboxDelivery {
    public static let requestTimeout: TimeInterval = 10
    /// All requests of one run together; what is left waits for the next run.
    public static let runBudget: TimeInterval = 30
    public static let expiry: TimeInterval = 24 * 3600

    public let notifications: NotificationsSpec?
    public let transport: WebhookTransport
    public let layout: StateLayout
    public let now: () -> Date
    /// Seconds on a clock that only moves forward, to measure the run's requests against its budget.
    public let uptime: () -> TimeInterval
    public let environment: [String: String]
    /// Whether dagctl was told to stop (a signal): then no request starts, and one under way is abandoned.
    public let stopped: () -> Bool
    /// Time left for requests in this run.
    private var budget: TimeInterval

    public init(notifications: NotificationsSpec?, transport: WebhookTransport, layout: StateLayout,
                now: @escaping () -> Date = Date.init, uptime: @escaping () -> TimeInterval = { ProcessInfo.processInfo.systemUptime },
                environment: [String: String] = ProcessInfo.processInfo.environment, budget: TimeInterval = OutboxDelivery.runBudget,
                stopped: @escaping () -> Bool = { false }) {
        self.stopped = stopped
        self.notifications = notifications
        self.transport = transport
        self.layout = layout
        self.now = now
        self.uptime = uptime
        self.environment = environment
        self.budget = budget
    }

    /// What one pass did, for the run's output.
    public struct Outcome: Equatable, Sendable {
        /// Delivered event counts by webhook.
        public var delivered: [String: Int] = [:]
        /// One line per event that failed and will be tried again.
        public var deferred: [String] = []
        /// One line per delivery given up (a 4xx, 24 hours, a webhook removed from the file): warnings.
        public var dropped: [String] = []
        /// Set when a signal stopped the pass: what is left waits for the next run.
        public var interrupted = false
        public var isEmpty: Bool { delivered.isEmpty && deferred.isEmpty && dropped.isEmpty }
    }

    /// One pass over the outbox. Without notifications (a bad notifications.yaml) nothing is sent: the
    /// events wait for the file to be fixed, and expire after 24 hours like any other.
    public mutating func deliver(_ state: inout StateFile) -> Outcome {
        var outcome = Outcome()
        var done: Set<String> = []  // webhooks left for this run
        for i in state.outbox.indices {
            let event = state.outbox[i].event
            var kept: [Delivery] = []
            for var delivery in state.outbox[i].deliveries {
                let name = delivery.webhook
                if let recorded = Timestamp.date(event.at), now().timeIntervalSince(recorded) > Self.expiry {
                    let why = "not delivered within 24 hours (\(delivery.attempts) attempt\(delivery.attempts == 1 ? "" : "s")\(delivery.lastError.map { "; last error: \($0)" } ?? ""))"
                    if !drop(event, delivery, because: why, &outcome) { kept.append(delivery) }
                    continue
                }
                guard let notifications else {
                    kept.append(delivery)
                    continue
                }
                guard let webhook = notifications[name] else {
                    if !drop(event, delivery, because: "webhook '\(name)' is no longer in notifications.yaml", &outcome) { kept.append(delivery) }
                    continue
                }
                if stopped() { outcome.interrupted = true }
                if done.contains(name) || budget < 1 || outcome.interrupted {
                    kept.append(delivery)
                    continue
                }
                if let next = delivery.nextAttemptAt.flatMap(Timestamp.date), next > now() {
                    done.insert(name)  // backing off: later events wait behind this one
                    kept.append(delivery)
                    continue
                }
                let result = send(event, to: webhook)
                let time = now()  // after the request: errors and backoff count from when it ended
                switch result {
                case .delivered:
                    outcome.delivered[name, default: 0] += 1
                    state.webhooks[name, default: WebhookRecord()].lastDeliveredAt = Timestamp.string(time)
                case .refused(let why):
                    delivery.attempts += 1
                    delivery.lastError = why
                    record(error: why, for: name, at: time, &state)
                    if !drop(event, delivery, because: "\(why); a 4xx answer is not retried", &outcome) { kept.append(delivery) }
                case .failed(let why):
                    delivery.attempts += 1
                    delivery.lastError = why
                    delivery.nextAttemptAt = Timestamp.string(time.addingTimeInterval(Self.backoff(after: delivery.attempts)))
                    record(error: why, for: name, at: time, &state)
                    outcome.deferred.append("\(event.event.rawValue) \(event.plan) → \(name): \(why); tried again after \(delivery.nextAttemptAt!)")
                    done.insert(name)
                    kept.append(delivery)
                case .notSetUp(let why):
                    // Nothing was sent: no backoff, the next run tries as soon as the setting is fixed.
                    delivery.lastError = why
                    record(error: why, for: name, at: time, &state)
                    outcome.deferred.append("\(event.event.rawValue) \(event.plan) → \(name): \(why)")
                    done.insert(name)
                    kept.append(delivery)
                case .stopped:
                    outcome.interrupted = true
                    kept.append(delivery)
                }
            }
            state.outbox[i].deliveries = kept
        }
        state.outbox.removeAll { $0.deliveries.isEmpty }
        if let notifications {  // records of webhooks taken out of the file go with them
            let waiting = Set(state.outbox.flatMap { $0.deliveries.map(\.webhook) })
            state.webhooks = state.webhooks.filter { notifications[$0.key] != nil || waiting.contains($0.key) }
        }
        return outcome
    }

    /// 30 s, 1 min, 2 min, … at most 1 hour between tries.
    public static func backoff(after attempts: Int) -> TimeInterval {
        min(3600, 30 * pow(2, Double(max(0, attempts - 1))))
    }

    enum Result { case delivered, refused(String), failed(String), notSetUp(String), stopped }

    private mutating func send(_ event: NotificationEvent, to webhook: Webhook) -> Result {
        let request: WebhookRequest
        switch WebhookRequest.make(event, for: webhook, environment: environment) {
        case .success(let made): request = made
        case .failure(let error): return .notSetUp(error.description)
        }
        let started = uptime()
        let answer = transport.post(request.url, body: request.body, headers: request.headers, timeout: min(Self.requestTimeout, budget),
                                    cancelled: stopped)
        budget -= uptime() - started
        if stopped(), case .unreachable = answer { return .stopped }
        return Self.judge(answer, hiding: webhook.hiddenAddress(request.url))
    }

    /// How an answer counts. `hiding` (the address, when it came from a variable: a secret) is taken out
    /// of what is recorded and printed.
    static func judge(_ answer: PostOutcome, hiding: [(String, String)] = []) -> Result {
        func clean(_ text: String) -> String {
            hiding.reduce(text) { text, pair in pair.0.isEmpty ? text : text.replacingOccurrences(of: pair.0, with: pair.1) }
        }
        switch answer {
        case .unreachable(let why): return .failed(clean(EventBodies.short(why)))
        case .answered(let status, _) where (200..<300).contains(status): return .delivered
        case .answered(let status, let body):
            let said = EventBodies.short(body.trimmingCharacters(in: .whitespacesAndNewlines))
            var text = "answered \(status)" + (said.isEmpty ? "" : ": " + said)
            if (300..<400).contains(status) { text += " (redirects are not followed: set the webhook's URL to the final address)" }
            return (400..<500).contains(status) && status != 408 && status != 429 ? .refused(clean(text)) : .failed(clean(text))
        }
    }

    private func record(error: String, for webhook: String, at time: Date, _ state: inout StateFile) {
        state.webhooks[webhook, default: WebhookRecord()].lastError = error
        state.webhooks[webhook, default: WebhookRecord()].lastErrorAt = Timestamp.string(time)
    }

    /// Writes the line to `outbox/dropped.jsonl` before the state forgets the delivery: a run killed in
    /// between drops it again on the next run (a repeated line), never silently. Returns false when the
    /// line could not be written: the delivery then stays in the outbox, and the next run tries again.
    private func drop(_ event: NotificationEvent, _ delivery: Delivery, because reason: String, _ outcome: inout Outcome) -> Bool {
        let line = DroppedEvent(webhook: delivery.webhook, reason: reason, droppedAt: Timestamp.string(now()), event: event)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(line)
            data.append(0x0A)
            try JSONLines.append(data, to: layout.droppedEvents)
        } catch {
            outcome.deferred.append("\(event.event.rawValue) \(event.plan) → \(delivery.webhook): would be dropped (\(reason)), but \(error); it stays in the outbox until the line can be written")
            return false
        }
        outcome.dropped.append("dropped \(event.event.rawValue) \(event.plan) → \(delivery.webhook): \(reason) (\(layout.droppedEvents))")
        return true
    }
}

/// A line of `outbox/dropped.jsonl`.
struct DroppedEvent: Encodable {
    var webhook: String
    var reason: String
    var droppedAt: String
    var event: NotificationEvent
    enum CodingKeys: String, CodingKey { case webhook, reason, droppedAt = "dropped_at", event }
}
