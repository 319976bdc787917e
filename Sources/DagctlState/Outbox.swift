import DagctlSpec
import Foundation

/// One notification about a plan (SPEC §9). Its fields are the `json` body, as sent.
public struct NotificationEvent: Codable, Sendable, Equatable {
    public var id: String
    public var event: EventKind
    public var environment: String
    public var plan: String
    public var status: String
    public var reason: String?
    public var scope: String
    public var select: [String]
    public var commit: String
    public var author: String?
    /// Approvals the plan still needs (0 once approved or when none are required).
    public var approversNeeded: Int
    /// The dashboard's plan page, when `dashboard_url` is set.
    public var url: String?
    public var at: String
    /// attempt_started, plan_succeeded, plan_failed: the attempt's number.
    public var attempt: Int?
    /// plan_pending: the members whose approval would count, and the line to run.
    public var mayApprove: [String]?
    public var approveCommand: String?
    /// plan_failed: the dbt nodes that errored or failed (empty when the tool names none), and the
    /// line that asks for a retry.
    public var failedNodes: [String]?
    public var retryCommand: String?

    public init(id: String = NotificationEvent.newID(), event: EventKind, environment: String, plan: String, status: String,
                reason: String?, scope: String, select: [String], commit: String, author: String?, approversNeeded: Int,
                url: String?, at: String, attempt: Int? = nil, mayApprove: [String]? = nil, approveCommand: String? = nil,
                failedNodes: [String]? = nil, retryCommand: String? = nil) {
        self.id = id
        self.event = event
        self.environment = environment
        self.plan = plan
        self.status = status
        self.reason = reason
        self.scope = scope
        self.select = select
        self.commit = commit
        self.author = author
        self.approversNeeded = approversNeeded
        self.url = url
        self.at = at
        self.attempt = attempt
        self.mayApprove = mayApprove
        self.approveCommand = approveCommand
        self.failedNodes = failedNodes
        self.retryCommand = retryCommand
    }

    enum CodingKeys: String, CodingKey {
        case id, event, environment, plan, status, reason, scope, select, commit, author, url, at, attempt
        case approversNeeded = "approvers_needed", mayApprove = "may_approve", approveCommand = "approve_command"
        case failedNodes = "failed_nodes", retryCommand = "retry_command"
    }

    /// `evt-` and 32 hex digits: unique, and safe in a header and a file line.
    public static func newID() -> String {
        "evt-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    public static func isValidID(_ id: String) -> Bool {
        id.utf8.count == 36 && id.hasPrefix("evt-") && id.utf8.dropFirst(4).allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    // Every key is written, null where empty, so receivers see one shape.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(event, forKey: .event)
        try c.encode(environment, forKey: .environment)
        try c.encode(plan, forKey: .plan)
        try c.encode(status, forKey: .status)
        try c.encode(reason, forKey: .reason)
        try c.encode(scope, forKey: .scope)
        try c.encode(select, forKey: .select)
        try c.encode(commit, forKey: .commit)
        try c.encode(author, forKey: .author)
        try c.encode(approversNeeded, forKey: .approversNeeded)
        try c.encode(url, forKey: .url)
        try c.encode(at, forKey: .at)
        // The keys an event kind carries are always there, null when empty, like the common ones.
        if [.attemptStarted, .planSucceeded, .planFailed].contains(event) || attempt != nil { try c.encode(attempt, forKey: .attempt) }
        if event == .planPending || mayApprove != nil || approveCommand != nil {
            try c.encode(mayApprove ?? [], forKey: .mayApprove)
            try c.encode(approveCommand, forKey: .approveCommand)
        }
        if event == .planFailed || failedNodes != nil || retryCommand != nil {
            try c.encode(failedNodes ?? [], forKey: .failedNodes)
            try c.encode(retryCommand, forKey: .retryCommand)
        }
    }
}

/// An event waiting in the outbox, with its delivery to each webhook that wants it. It leaves the
/// outbox when every delivery is done: answered 2xx, refused for good (a 4xx), or expired.
public struct OutboxEntry: Codable, Sendable, Equatable {
    public var event: NotificationEvent
    public var deliveries: [Delivery]

    public init(event: NotificationEvent, deliveries: [Delivery]) {
        self.event = event
        self.deliveries = deliveries
    }
}

public struct Delivery: Codable, Sendable, Equatable {
    public var webhook: String
    /// Requests made so far.
    public var attempts: Int
    /// Not tried again before this time (backoff).
    public var nextAttemptAt: String?
    public var lastError: String?

    public init(webhook: String, attempts: Int = 0, nextAttemptAt: String? = nil, lastError: String? = nil) {
        self.webhook = webhook
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
    }

    enum CodingKeys: String, CodingKey { case webhook, attempts, nextAttemptAt = "next_attempt_at", lastError = "last_error" }
}

/// What `dagctl status` shows of a webhook beyond its undelivered events.
public struct WebhookRecord: Codable, Sendable, Equatable {
    public var lastDeliveredAt: String?
    public var lastError: String?
    public var lastErrorAt: String?

    public init(lastDeliveredAt: String? = nil, lastError: String? = nil, lastErrorAt: String? = nil) {
        self.lastDeliveredAt = lastDeliveredAt
        self.lastError = lastError
        self.lastErrorAt = lastErrorAt
    }

    enum CodingKeys: String, CodingKey { case lastDeliveredAt = "last_delivered_at", lastError = "last_error", lastErrorAt = "last_error_at" }
}

extension StateFile {
    /// Undelivered events by webhook name.
    public var undelivered: [String: Int] {
        var out: [String: Int] = [:]
        for entry in outbox { for d in entry.deliveries { out[d.webhook, default: 0] += 1 } }
        return out
    }
}

/// Appends to a log of JSON lines that only dagctl writes (`outbox/dropped.jsonl`). Its folder must be
/// a real folder and the file a regular one: a link is never followed out of the state folder, and a
/// FIFO or device planted there can neither block the run nor take the line.
public enum JSONLines {
    public static func append(_ line: Data, to path: String) throws(StateError) {
        let folder = (path as NSString).deletingLastPathComponent
        var info = stat()
        if lstat(folder, &info) != 0 {
            guard mkdir(folder, 0o755) == 0 || errno == EEXIST else {
                throw .writeFailed(path: path, reason: "cannot create \(folder): \(String(cString: strerror(errno)))")
            }
        } else if (info.st_mode & S_IFMT) != S_IFDIR {
            throw .writeFailed(path: path, reason: "\(folder) is not a folder (a symbolic link or a file); remove it, and dagctl makes its own")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            throw .writeFailed(path: path, reason: errno == ELOOP ? "it is a symbolic link; dagctl writes only its own regular files" : String(cString: strerror(errno)))
        }
        defer { close(fd) }
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw .writeFailed(path: path, reason: "it is not a regular file; remove it, and dagctl makes its own")
        }
        var failure = StateStore.writeAll(fd, line)
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        if let failure { throw .writeFailed(path: path, reason: failure) }
    }
}
