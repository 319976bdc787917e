import ArgumentParser
import DagctlBackends
import DagctlNotify
import DagctlSpec
import DagctlState
import Foundation

struct NotifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify",
        abstract: "Work with the webhooks of notifications.yaml.",
        subcommands: [NotifyTestCommand.self])
}

struct NotifyTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Send a test event to a webhook now and print its answer.",
        discussion: """
            Sends one 'test' event (not recorded in the outbox) in the webhook's format, with the same \
            headers and signature as real events, and prints what the receiver answered. Exits 1 when it \
            did not answer 2xx.
            """)

    @Argument(help: "The webhook's name in notifications.yaml.")
    var name: String

    @OptionGroup var inputs: InputOptions

    func run() throws {
        let desired = DesiredState.load(inputs.desired)
        if !desired.notificationIssues.isEmpty {
            throw Console.fail("notifications.yaml cannot be used:\n" + desired.notificationIssues.map { "  \($0)" }.joined(separator: "\n"))
        }
        guard let notifications = desired.notifications else {
            throw Console.fail("there is no \(NotificationsSpec.fileName) in \(inputs.desired); add one with a webhook (see the README's Notifications section)")
        }
        guard let webhook = notifications[name] else {
            let known = notifications.webhooks.map(\.name)
            throw Console.fail("no webhook '\(name)' in \(NotificationsSpec.fileName)" + (known.isEmpty ? "" : "; webhooks: \(known.joined(separator: ", "))"))
        }
        let event = NotificationEvent(event: .test, environment: webhook.environments?.sorted().first ?? "test", plan: "test-v0-0000000000",
                                      status: "test", reason: "webhook \(webhook.name) works", scope: "all", select: [],
                                      commit: String(repeating: "0", count: 40), author: nil, approversNeeded: 0,
                                      url: notifications.dashboardURL, at: Timestamp.now())
        let request: WebhookRequest
        switch WebhookRequest.make(event, for: webhook) {
        case .success(let made): request = made
        case .failure(let error): throw Console.fail("webhook \(webhook.name): \(error)")
        }
        let shown: String
        switch webhook.url {
        case .literal(let text): shown = text
        case .environment(let variable): shown = "the URL in \(variable)"
        }
        let hidden = webhook.hiddenAddress(request.url)
        func clean(_ text: String) -> String {
            hidden.reduce(EventBodies.short(text)) { text, pair in pair.0.isEmpty ? text : text.replacingOccurrences(of: pair.0, with: pair.1) }
        }
        Interruption.install()
        switch HTTPWebhookTransport().post(request.url, body: request.body, headers: request.headers, timeout: OutboxDelivery.requestTimeout,
                                           cancelled: { Interruption.caught != nil }) {
        case .answered(let status, let answer) where (200..<300).contains(status):
            Console.out("sent \(event.id) to \(webhook.name) (\(shown)): answered \(status)\(answer.isEmpty ? "" : ": \(clean(answer))")\n")
        case .answered(let status, let answer):
            throw Console.fail("\(webhook.name) (\(shown)) answered \(status)\(answer.isEmpty ? "" : ": \(clean(answer))")")
        case .unreachable(let why):
            throw Console.fail("\(webhook.name) (\(shown)): \(clean(why))")
        }
    }

}

/// The outbox's clock. `DAGCTL_TEST_NOW` (an RFC 3339 time) stands in for the present in tests of
/// backoff and the 24-hour expiry, so they need no sleeps; nothing else reads it.
enum NotificationClock {
    static func now() -> Date {
        ProcessInfo.processInfo.environment["DAGCTL_TEST_NOW"].flatMap(Timestamp.date) ?? Date()
    }

    /// What delivers a reconcile's outbox; nil when there is nothing to deliver now or later. Without
    /// the file, waiting events are dropped with a warning (notifications were turned off); with a bad
    /// file they wait for it to be fixed.
    static func delivery(_ session: Session) -> OutboxDelivery? {
        let desired = session.desired
        guard desired.notifications != nil || !session.state.outbox.isEmpty else { return nil }
        let spec = desired.notifications ?? (desired.notificationIssues.isEmpty ? NotificationsSpec(webhooks: []) : nil)
        return OutboxDelivery(notifications: spec, transport: HTTPWebhookTransport(), layout: session.store.layout, now: now,
                              stopped: { Interruption.caught != nil })
    }
}

/// The webhooks section of `dagctl status`: what waits in the outbox per webhook and the last error.
enum OutboxStatus {
    struct Row {
        var webhook: String
        var undelivered: Int
        var oldest: String?
        var nextAttemptAt: String?
        var record: WebhookRecord?
    }

    static func rows(_ state: StateFile) -> [Row] {
        let names = Set(state.outbox.flatMap { $0.deliveries.map(\.webhook) }).union(state.webhooks.keys)
        return names.sorted().map { name in
            let waiting = state.outbox.filter { $0.deliveries.contains { $0.webhook == name } }
            return Row(webhook: name, undelivered: waiting.count, oldest: waiting.first?.event.at,
                       nextAttemptAt: waiting.first?.deliveries.first { $0.webhook == name }?.nextAttemptAt,
                       record: state.webhooks[name])
        }
    }

    static func text(_ state: StateFile) -> String {
        let rows = rows(state)
        guard !rows.isEmpty else { return "" }
        var out = "\nnotifications\n"
        for row in rows {
            var line = "  \(row.webhook): "
            line += row.undelivered == 0 ? "all delivered" : "\(row.undelivered) undelivered (oldest \(row.oldest ?? "?")"
                + (row.nextAttemptAt.map { ", next try after \($0)" } ?? "") + ")"
            if let last = row.record?.lastDeliveredAt { line += "; last delivery \(last)" }
            if let error = row.record?.lastError {
                line += "\n    last error" + (row.record?.lastErrorAt.map { " (\($0))" } ?? "") + ": \(error)"
            }
            out += line + "\n"
        }
        return out
    }

    static func json(_ state: StateFile) -> JSONValue {
        .array(rows(state).map { row in
            .object([
                ("webhook", .string(row.webhook)),
                ("undelivered", .int(row.undelivered)),
                ("oldest", .string(row.oldest)),
                ("next_attempt_at", .string(row.nextAttemptAt)),
                ("last_delivered_at", .string(row.record?.lastDeliveredAt)),
                ("last_error", .string(row.record?.lastError)),
                ("last_error_at", .string(row.record?.lastErrorAt)),
            ])
        })
    }
}
