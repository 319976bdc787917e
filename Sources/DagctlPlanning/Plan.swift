import DagctlSpec

public enum ChangeKind: String, Codable, Sendable { case added, modified, deleted, renamed }

/// One changed path of a plan, relative to the repository root.
public struct Change: Codable, Sendable, Equatable {
    public var path: String
    public var oldPath: String?
    public var change: ChangeKind
    public var category: Category

    public init(path: String, oldPath: String? = nil, change: ChangeKind, category: Category) {
        self.path = path
        self.oldPath = oldPath
        self.change = change
        self.category = category
    }

    enum CodingKeys: String, CodingKey { case path, oldPath = "old_path", change, category }
}

public enum Scope: String, Codable, Sendable {
    case selective, all
    case buildOnly = "build_only"
    /// A SQLMesh plan: what runs is what SQLMesh planned for its environment.
    case sqlmesh
}

/// One model of a SQLMesh plan, as SQLMesh reports it.
public struct ModelChange: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case added, removed
        case directlyModified = "directly_modified", indirectlyModified = "indirectly_modified"
        case metadata
    }

    /// `<schema>.<name>`, as SQLMesh prints it.
    public var model: String
    public var change: Kind
    /// SQLMesh's category: breaking, non_breaking, forward_only, indirect_breaking, indirect_non_breaking,
    /// metadata, or nil where it has none.
    public var category: String?
    /// Intervals to backfill, as [start, end] pairs.
    public var backfill: [[String]]

    public init(model: String, change: Kind, category: String?, backfill: [[String]] = []) {
        self.model = model
        self.change = change
        self.category = category
        self.backfill = backfill
    }

    /// What an approval signs: `<change>:<model>` of added, directly modified and removed models.
    public var selectEntry: String? {
        [.added, .directlyModified, .removed].contains(change) ? "\(change.rawValue):\(model)" : nil
    }
}

public enum PlanStatus: String, Codable, Sendable, CaseIterable {
    case pending, approved, building, running, succeeded, failed, rejected, superseded

    /// Will not change again (a failed plan can still be retried, so it is not final).
    public var isFinal: Bool { Self.final.contains(self) }
    /// Not finished: waiting for approval, or due to run, or running.
    public var isLive: Bool { Self.live.contains(self) }
    /// Approved and not finished: what a backend executes, oldest first, one at a time.
    public var isActive: Bool { Self.active.contains(self) }
    /// An attempt is under way (a run that finds one at start and is local knows its runner died).
    public var isInProgress: Bool { Self.inProgress.contains(self) }

    public static let final: Set<PlanStatus> = [.succeeded, .rejected, .superseded]
    public static let live: Set<PlanStatus> = [.pending, .approved, .building, .running]
    public static let active: Set<PlanStatus> = [.approved, .building, .running]
    public static let inProgress: Set<PlanStatus> = [.building, .running]
}

/// Counts of dbt results of one resource type.
public struct ResultCounts: Codable, Sendable, Equatable {
    public var success = 0, error = 0, skipped = 0, warned = 0
    public init(success: Int = 0, error: Int = 0, skipped: Int = 0, warned: Int = 0) {
        self.success = success
        self.error = error
        self.skipped = skipped
        self.warned = warned
    }
}

public struct Attempt: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable { case succeeded, failed, interrupted, running }
    public enum Phase: String, Codable, Sendable { case build, run }

    public var n: Int
    public var outcome: Outcome
    public var phase: Phase
    public var startedAt: String?
    public var finishedAt: String?
    /// Why the attempt failed, in one line.
    public var reason: String?
    /// dbt's results by resource type (models, tests, seeds, snapshots).
    public var summary: [String: ResultCounts]
    /// The nodes that errored or failed, as dbt names them (`model.shop.customers`).
    public var failedNodes: [String]?
    /// Names of backend objects (Kubernetes Jobs) by phase, so a later run can find them.
    public var jobs: [String: String]?
    /// The local child's process id (and group) and its start time, so a later run can stop an orphan.
    public var pid: Int32?
    public var pidStart: UInt64?
    /// The cached virtualenv the attempt used (its folder under the state's cache), so that pruning
    /// keeps the ones recent deployments need.
    public var virtualenv: String?

    public init(n: Int, outcome: Outcome, phase: Phase, startedAt: String? = nil, finishedAt: String? = nil,
                reason: String? = nil, summary: [String: ResultCounts] = [:], jobs: [String: String]? = nil, pid: Int32? = nil) {
        self.n = n
        self.outcome = outcome
        self.phase = phase
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.reason = reason
        self.summary = summary
        self.jobs = jobs
        self.pid = pid
    }

    enum CodingKeys: String, CodingKey {
        case n, outcome, phase, reason, summary, jobs, pid
        case startedAt = "started_at", finishedAt = "finished_at", pidStart = "pid_start", virtualenv
        case failedNodes = "failed_nodes"
    }
}

/// Where a rollback plan goes back to, and who asked for it (the signer of `rollbacks/<env>.yaml`).
public struct RollbackOrigin: Codable, Sendable, Equatable {
    /// The id of the succeeded plan whose commit the rollback deploys.
    public var to: String
    public var by: String
    /// Set when the request was withdrawn (its file deleted, or pointed elsewhere) after this plan:
    /// asking again makes a new rollback plan instead of keeping this one (a rejected one, say).
    public var withdrawn: Bool?

    public init(to: String, by: String, withdrawn: Bool? = nil) {
        self.to = to
        self.by = by
        self.withdrawn = withdrawn
    }
}

/// An explained plan: what changed between `base` and `commit`, what will run, and where it stands.
public struct Plan: Codable, Sendable, Equatable {
    public var id: String
    public var environment: String
    public var version: String
    public var commit: String
    public var base: String?
    public var author: String?
    public var createdAt: String?
    public var changes: [Change]
    public var scope: Scope
    public var select: [String]
    /// SQLMesh plans: the models SQLMesh reports (dbt plans have `changes` instead).
    public var models: [ModelChange]?
    public var warnings: [String]
    /// `precise` when the plan's scope came from a manifest (SPEC §11); nil for the path rules.
    public var scopeMode: String?
    /// Precise plans: selector entry → why it was selected.
    public var reasons: [String: [String]]?
    /// Precise plans: which manifest explained it (`kept from <plan>`, `dbt parse of <commit>`).
    public var manifest: String?
    /// Rollback plans: the plan whose commit it goes back to, and who asked (SPEC §10).
    public var rollback: RollbackOrigin?
    public var status: PlanStatus
    public var statusReason: String?
    public var attempts: [Attempt]

    public init(id: String, environment: String, version: String, commit: String, base: String?, author: String?,
                createdAt: String? = nil, changes: [Change], scope: Scope, select: [String], models: [ModelChange]? = nil,
                warnings: [String], status: PlanStatus = .pending, statusReason: String? = nil, attempts: [Attempt] = []) {
        self.models = models
        self.id = id
        self.environment = environment
        self.version = version
        self.commit = commit
        self.base = base
        self.author = author
        self.createdAt = createdAt
        self.changes = changes
        self.scope = scope
        self.select = select
        self.warnings = warnings
        self.status = status
        self.statusReason = statusReason
        self.attempts = attempts
    }

    enum CodingKeys: String, CodingKey {
        case id, environment, version, commit, base, author, changes, scope, select, models, warnings, status, attempts, reasons, manifest, rollback
        case createdAt = "created_at", statusReason = "status_reason", scopeMode = "scope_mode"
    }

    /// `<env>-v<version>-<first 10 hex of the commit>`, then `-2`, `-3`, … when an earlier plan took it
    /// (the version deployed again after a rollback): a new plan never inherits another's approvals.
    public static func id(environment: String, version: Version, commit: String, taken: Set<String> = []) -> String {
        unique("\(environment)-v\(version.text)-\(commit.prefix(10))", taken: taken)
    }

    /// A SQLMesh plan's id: `<env>-<first 10 hex of the commit>`, then `-2`, `-3`, … when an earlier
    /// plan of the environment already took it (SQLMesh's state moved under the same commit).
    public static func sqlmeshID(environment: String, commit: String, taken: Set<String>) -> String {
        unique("\(environment)-\(commit.prefix(10))", taken: taken)
    }

    /// A rollback plan's id: `<env>-rollback-<first 10 hex of the target commit>`, then `-2`, `-3`, …
    public static func rollbackID(environment: String, commit: String, taken: Set<String>) -> String {
        unique("\(environment)-rollback-\(commit.prefix(10))", taken: taken)
    }

    private static func unique(_ first: String, taken: Set<String>) -> String {
        guard taken.contains(first) else { return first }
        var n = 2
        while taken.contains("\(first)-\(n)") { n += 1 }
        return "\(first)-\(n)"
    }
}

extension Plan {
    /// Starts attempt `attempts.count + 1` in the build phase; the plan is then `building`.
    public mutating func startAttempt(at time: String, jobs: [String: String]? = nil) {
        attempts.append(Attempt(n: attempts.count + 1, outcome: .running, phase: .build, startedAt: time, jobs: jobs))
        status = .building
        statusReason = nil
    }

    /// Ends the current attempt as succeeded, and the plan with it.
    public mutating func succeedAttempt(at time: String) {
        attempts[attempts.count - 1].outcome = .succeeded
        attempts[attempts.count - 1].finishedAt = time
        status = .succeeded
    }

    /// A plan whose attempt was cut short (the dagctl run doing it died, or was stopped by a signal):
    /// the running attempt becomes `interrupted` and the plan `failed`, so a retry can run it again.
    public mutating func interruptAttempt(at time: String, reason: String = "the dagctl run doing it stopped before it finished") {
        let n = attempts.count
        if n > 0, attempts[n - 1].outcome == .running {
            attempts[n - 1].outcome = .interrupted
            attempts[n - 1].finishedAt = time
            attempts[n - 1].reason = reason
            attempts[n - 1].pid = nil
            attempts[n - 1].pidStart = nil
        }
        status = .failed
        statusReason = "attempt \(n) was interrupted; it can be retried"
    }

    /// Ends the current attempt as failed for `reason`; the plan is `failed` (and can be retried).
    public mutating func failAttempt(_ reason: String, at time: String) {
        let n = attempts.count
        attempts[n - 1].outcome = .failed
        attempts[n - 1].finishedAt = time
        attempts[n - 1].reason = reason
        status = .failed
        statusReason = "attempt \(n) failed in \(attempts[n - 1].phase.rawValue): \(reason)"
    }
}
