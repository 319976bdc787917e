import Foundation

/// The plan transitions a webhook can be told about (SPEC §9).
public enum EventKind: String, Sendable, CaseIterable, Codable {
    case planPending = "plan_pending", planApproved = "plan_approved", planRejected = "plan_rejected"
    case planSuperseded = "plan_superseded", attemptStarted = "attempt_started"
    case planSucceeded = "plan_succeeded", planFailed = "plan_failed"
    /// Sent by `dagctl notify test` only; never recorded in the outbox.
    case test
}

/// One receiver in `notifications.yaml`.
public struct Webhook: Sendable, Equatable {
    public enum Format: String, Sendable { case slack, json }
    /// Where the URL comes from: written in the file, or (for a secret) an environment variable.
    public enum URLSource: Sendable, Equatable {
        case literal(String)
        case environment(String)
    }

    public var name: String
    public var url: URLSource
    public var format: Format
    public var events: Set<EventKind>
    /// nil: every environment.
    public var environments: Set<String>?
    /// The environment variable holding the HMAC key, when bodies are signed.
    public var secretEnv: String?
    public var line: Int?

    public init(name: String, url: URLSource, format: Format = .json, events: Set<EventKind> = Webhook.allEvents,
                environments: Set<String>? = nil, secretEnv: String? = nil, line: Int? = nil) {
        self.name = name
        self.url = url
        self.format = format
        self.events = events
        self.environments = environments
        self.secretEnv = secretEnv
        self.line = line
    }

    public static let allEvents = Set(EventKind.allCases.filter { $0 != .test })

    /// Whether this webhook wants `event` of `environment`.
    public func wants(_ event: EventKind, environment: String) -> Bool {
        events.contains(event) && (environments?.contains(environment) ?? true)
    }

    /// The URL to post to, read now from the process environment; the reason when it cannot be had.
    /// A URL from a variable is a secret (Slack's carries its token), so errors never repeat it.
    public func resolveURL(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<URL, WebhookSetupError> {
        switch url {
        case .literal(let text):
            guard let url = Self.httpURL(text) else { return .failure(WebhookSetupError("url '\(excerpt(text))' is not an http(s) URL (no spaces, user name or password)")) }
            return .success(url)
        case .environment(let variable):
            guard let text = environment[variable], !text.isEmpty else {
                return .failure(WebhookSetupError("\(variable) (url_env) is not set in the environment dagctl runs in; set it (in cron, in the crontab or the script it runs), and undelivered events go out on the next run"))
            }
            guard let url = Self.httpURL(text) else {
                return .failure(WebhookSetupError("\(variable) (url_env) does not hold an http(s) URL (with a host, without spaces, user name or password)"))
            }
            return .success(url)
        }
    }

    /// The HMAC key, when `secret_env` is set; an error when it is set but the variable is not.
    public func resolveSecret(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<String?, WebhookSetupError> {
        guard let variable = secretEnv else { return .success(nil) }
        guard let secret = environment[variable], !secret.isEmpty else {
            return .failure(WebhookSetupError("\(variable) (secret_env) is not set in the environment dagctl runs in, so the body cannot be signed; set it, and undelivered events go out on the next run"))
        }
        return .success(secret)
    }

    /// What to take out of error texts so that an address read from a variable (a secret) is never
    /// printed or recorded: the URL and its host, each replaced by where it comes from.
    public func hiddenAddress(_ address: URL) -> [(String, String)] {
        guard case .environment(let variable) = url else { return [] }
        return [(address.absoluteString, "(the URL in \(variable))"), (address.host ?? "", "(the host in \(variable))")]
    }

    /// An http(s) URL with a host, written plainly: no spaces or control characters (they would be
    /// sent percent-encoded, not as written) and no user name or password (not sent; put a secret in
    /// the path or query, and the URL in a variable).
    static func httpURL(_ text: String) -> URL? {
        guard !text.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7f }),
              let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty, url.user == nil, url.password == nil else { return nil }
        return url
    }
}

public struct WebhookSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `notifications.yaml` in the desired-state directory (optional).
public struct NotificationsSpec: Sendable, Equatable {
    public static let fileName = "notifications.yaml"

    public var dashboardURL: String?
    public var webhooks: [Webhook]

    public init(dashboardURL: String? = nil, webhooks: [Webhook]) {
        self.dashboardURL = dashboardURL
        self.webhooks = webhooks
    }

    public subscript(name: String) -> Webhook? { webhooks.first { $0.name == name } }

    /// The webhooks that want `event` of `environment`.
    public func receivers(of event: EventKind, environment: String) -> [Webhook] {
        webhooks.filter { $0.wants(event, environment: environment) }
    }

    /// The dashboard's page of a plan, when `dashboard_url` is set.
    public func planURL(_ plan: String) -> String? {
        guard let base = dashboardURL else { return nil }
        return (base.hasSuffix("/") ? base : base + "/") + "plans/" + plan
    }

    /// Parses the file; `environments` (the desired state's environment names) catches a misspelt
    /// environment filter, which would otherwise silently never match.
    public static func parse(_ text: String, file: String, environments: Set<String>? = nil) throws(SpecIssues) -> NotificationsSpec {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        let dashboard = doc.string("dashboard_url")
        if let dashboard, Webhook.httpURL(dashboard) == nil || dashboard.contains(where: { "<>|".contains($0) }) {
            doc.invalid("dashboard_url", "'\(excerpt(dashboard))' is not a plain http(s) URL (no spaces, <, >, |, user name or password); write the address people open the dashboard at, e.g. https://dagctl.example.com")
        }
        var webhooks: [Webhook] = []
        var seen: [String: Int] = [:]
        for entry in doc.mappings("webhooks", required: true) ?? [] {
            let name = entry.string("name", required: true)
            if let name {
                if !Names.isValid(name) {
                    entry.invalid("name", "'\(excerpt(name))' is not a valid webhook name; names match \(Names.pattern)")
                } else if let line = seen[name] {
                    entry.invalid("name", "webhook '\(name)' is listed twice (first at line \(line))")
                }
                seen[name] = entry.line ?? 0
            }
            let literal = entry.string("url")
            let variable = entry.string("url_env")
            var source: Webhook.URLSource?
            switch (literal, variable) {
            case (nil, nil):
                if !entry.has("url") && !entry.has("url_env") {
                    entry.invalid("name", "webhook '\(name ?? "?")' has no URL; add 'url_env: VARIABLE' (the URL comes from that environment variable, the way to keep a secret URL out of git) or 'url: https://…'")
                }
            case (let url?, nil):
                if Webhook.httpURL(url) == nil {
                    entry.invalid("url", "'\(excerpt(url))' is not an http(s) URL (with a host, without spaces, user name or password)")
                } else {
                    source = .literal(url)
                }
            case (nil, let v?):
                if let problem = variableProblem(v) { entry.invalid("url_env", problem) } else { source = .environment(v) }
            case (_?, _?):
                entry.invalid("url_env", "give either 'url' or 'url_env', not both")
            }
            var format = Webhook.Format.json
            if let text = entry.string("format") {
                if let f = Webhook.Format(rawValue: text) { format = f } else {
                    entry.invalid("format", "'\(excerpt(text))' is not a format; use slack (a message for a Slack channel) or json")
                }
            }
            let known = Webhook.allEvents.map(\.rawValue).sorted().joined(separator: ", ")
            let events = entry.strings("events") { EventKind(rawValue: $0).map { $0 == .test ? "'test' is not recorded; it is sent by dagctl notify test" : nil } ?? "'\(excerpt($0))' is not an event; events are \(known)" }
            if let events, events.isEmpty { entry.invalid("events", "lists no event; name some, or remove the key for all of them") }
            let envNames = entry.strings("environments") { name in
                if !Names.isValid(name) { return "'\(excerpt(name))' is not a valid environment name" }
                if let environments, !environments.contains(name) {
                    return "there is no environment '\(name)' (environments/\(name).yaml); known: \(environments.sorted().joined(separator: ", "))"
                }
                return nil
            }
            if let envNames, envNames.isEmpty { entry.invalid("environments", "lists no environment; name some, or remove the key for all of them") }
            let secret = entry.string("secret_env")
            if let secret, let problem = variableProblem(secret) { entry.invalid("secret_env", problem) }
            entry.finish()
            if let name, let source {
                webhooks.append(Webhook(name: name, url: source, format: format,
                                        events: events.map { Set($0.compactMap(EventKind.init(rawValue:))) } ?? Webhook.allEvents,
                                        environments: envNames.map(Set.init), secretEnv: secret, line: entry.line))
            }
        }
        doc.finish()
        guard log.isEmpty else { throw SpecIssues(log.issues) }
        return NotificationsSpec(dashboardURL: dashboard, webhooks: webhooks)
    }

    /// Why `name` cannot be an environment variable's name, or nil.
    static func variableProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        let ok = !bytes.isEmpty && bytes.count <= 128 && !(48...57).contains(bytes[0])
            && bytes.allSatisfy { (65...90).contains($0) || (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }
        return ok ? nil : "'\(excerpt(name))' is not an environment variable name (letters, digits and _, not starting with a digit)"
    }
}
