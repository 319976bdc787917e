import Crypto
import DagctlSpec
import DagctlState
import Foundation

/// The bytes a webhook receives for an event, in its format (SPEC §9).
public enum EventBodies {
    public static func body(_ event: NotificationEvent, format: Webhook.Format) -> Data {
        switch format {
        case .json: return json(event)
        case .slack: return slack(event)
        }
    }

    /// The event's fields as one JSON object, keys sorted (stable for signing and diffing).
    public static func json(_ event: NotificationEvent) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(event)) ?? Data("{}".utf8)
    }

    /// Slack's incoming-webhook message: `text` (the line, for notifications and clients without blocks)
    /// and one mrkdwn section block, where the plan id links to the dashboard when there is one.
    public static func slack(_ event: NotificationEvent) -> Data {
        let message: [String: Any] = [
            "text": line(event, link: false),
            "blocks": [["type": "section", "text": ["type": "mrkdwn", "text": line(event, link: true)]]],
        ]
        return (try? JSONSerialization.data(withJSONObject: message, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }

    /// One short line a person reads in a channel: what happened to which plan, and what to do.
    /// Both Slack fields are markup (`text` is what notifications and Slack-compatible services show), so
    /// every piece from a repository or a receiver is cut first, then escaped; only `link` adds the link.
    public static func line(_ event: NotificationEvent, link: Bool) -> String {
        let esc = slackEscaped
        let code = { (s: String) in link ? "`\(slackEscaped(s))`" : slackEscaped(s) }
        let plan = link && event.url != nil ? "<\(event.url!)|\(event.plan)>" : event.plan
        let env = "*\(esc(event.environment))*"
        let why = event.reason.map { esc(short($0)) }
        switch event.event {
        case .planPending:
            let who = listed(event.mayApprove ?? [])
            let n = event.approversNeeded
            var text = ":hourglass: \(plan) for \(env) waits for \(n) approval\(n == 1 ? "" : "s")" + (who.isEmpty ? "" : " from \(esc(who))")
            if let command = event.approveCommand { text += ": \(code(command))" }
            return text
        case .planApproved:
            let how = why.map { $0.hasPrefix("approved") ? $0 : "approved: \($0)" } ?? "approved"
            return ":white_check_mark: \(plan) for \(env) \(how)"
        case .planRejected:
            return ":no_entry: \(plan) for \(env) " + (why ?? "rejected")
        case .planSuperseded:
            return ":fast_forward: \(plan) for \(env) superseded" + (why.map { ": \($0)" } ?? "")
        case .attemptStarted:
            return ":arrow_forward: \(plan): attempt \(event.attempt ?? 1) started on \(env) (\(scopeText(event)))"
        case .planSucceeded:
            return ":rocket: \(plan) deployed to \(env) (commit \(event.commit.prefix(10)))"
        case .planFailed:
            var text = ":x: \(plan) failed on \(env)" + (why.map { ": \($0)" } ?? "")
            if let command = event.retryCommand { text += "; retry: \(code(command))" }
            return text
        case .test:
            return ":wave: test notification from dagctl" + (why.map { ": \($0)" } ?? "")
        }
    }

    static func scopeText(_ event: NotificationEvent) -> String {
        guard event.scope == "selective", !event.select.isEmpty else { return event.scope }
        let shown = event.select.prefix(5).joined(separator: " ")
        return "selective: \(shown)" + (event.select.count > 5 ? " and \(event.select.count - 5) more" : "")
    }

    static func listed(_ names: [String]) -> String {
        names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    /// Text cut to one line of at most 200 characters, with control characters (a receiver's escape
    /// sequences, a carriage return) shown as `?`: it goes to terminals, logs and messages.
    public static func short(_ text: String) -> String {
        let first = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map(String.init) ?? ""
        let printable = String(String.UnicodeScalarView(first.unicodeScalars.map { scalar in
            scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) ? "?" : scalar
        }))
        return printable.count > 200 ? String(printable.prefix(199)) + "…" : printable
    }

    /// Slack's mrkdwn gives `&`, `<` and `>` meaning; they are escaped so text stays text.
    static func slackEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// `sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the webhook's secret.
    public static func signature(_ body: Data, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}

/// What is POSTed for an event: the webhook's address, the body in its format, and the headers (the
/// event's id and kind, and the HMAC signature when the webhook has a secret). Real deliveries and
/// `dagctl notify test` build it here, so a test sends exactly what real events send.
public struct WebhookRequest {
    public var url: URL
    public var body: Data
    public var headers: [(String, String)]

    public static func make(_ event: NotificationEvent, for webhook: Webhook,
                            environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<WebhookRequest, WebhookSetupError> {
        webhook.resolveURL(environment).flatMap { url in
            webhook.resolveSecret(environment).map { secret in
                let body = EventBodies.body(event, format: webhook.format)
                var headers = [("X-Dagctl-Event-Id", event.id), ("X-Dagctl-Event", event.event.rawValue)]
                if let secret { headers.append(("X-Dagctl-Signature", EventBodies.signature(body, secret: secret))) }
                return WebhookRequest(url: url, body: body, headers: headers)
            }
        }
    }
}
