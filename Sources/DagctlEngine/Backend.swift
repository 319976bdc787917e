import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Where attempts run. The engine drives an attempt's phases (build, then run when the plan has one)
/// and records every change; a backend does one phase at a time.
public protocol Backend {
    /// Starts the phase of the attempt in `attempt`, or observes it when it was started by an earlier
    /// run, and returns how it stands. A backend that can leave work running (Kubernetes with
    /// `--no-wait`) returns `.running`; a later run calls this again.
    func advance(_ phase: Attempt.Phase, _ attempt: AttemptContext) throws -> PhaseResult
    /// What to do with a plan found building or running when a run starts.
    func recover(_ plan: Plan, env: EnvironmentSpec) -> Recovery
    /// The objects the plan's next (or current) attempt creates, as JSON texts, for review; empty
    /// where a backend creates none.
    func manifests(for plan: Plan, env: EnvironmentSpec, kind: PlanKind) -> [String]
    /// Runs a short helper of the plan kind (SQLMesh's explain) where the project at `commit` is
    /// prepared, and returns its standard output.
    func inspect(_ commit: ObjectID, env: EnvironmentSpec, kind: PlanKind, command: (Workspace) -> [String]) throws -> Data
}

public enum PhaseResult: Sendable, Equatable {
    case succeeded
    case failed(String)
    /// Stopped because dagctl was asked to stop.
    case interrupted(String)
    /// Still under way elsewhere; the note says where.
    case running(String)
}

public enum Recovery: Sendable, Equatable {
    /// The process doing the attempt died with the run that started it: the attempt is interrupted
    /// (`note` says what was cleaned up, if anything).
    case interrupt(note: String?)
    /// The attempt goes on elsewhere: `advance` observes it.
    case observe
}

/// What a backend needs of the engine while it runs a phase: the plan as it stands, where its logs
/// go, the plan's kind, and a way to record the plan (the state file is written at once).
public final class AttemptContext {
    public private(set) var plan: Plan
    public let env: EnvironmentSpec
    public let kind: PlanKind
    public let layout: StateLayout
    public let console: FileHandle
    public let heartbeat: TimeInterval
    /// One line per step for the run's report.
    public var notes: [String] = []
    let save: (Plan) throws -> Void

    init(plan: Plan, env: EnvironmentSpec, kind: PlanKind, layout: StateLayout, console: FileHandle, heartbeat: TimeInterval,
         save: @escaping (Plan) throws -> Void) {
        self.plan = plan
        self.env = env
        self.kind = kind
        self.layout = layout
        self.console = console
        self.heartbeat = heartbeat
        self.save = save
    }

    /// The attempt's number (the newest attempt).
    public var n: Int { plan.attempts.count }
    public var attempt: Attempt { plan.attempts[n - 1] }
    public var logDir: String { layout.logs(plan.id, attempt: n) }

    /// Changes the current attempt and records the plan at once (a Job's name before it is created, a
    /// child's pid as soon as it runs), so a later run can find what this one started.
    public func update(_ change: (inout Attempt) -> Void) throws {
        change(&plan.attempts[n - 1])
        try save(plan)
    }

    /// Changes the plan and records it.
    func record(_ change: (inout Plan) -> Void) throws {
        change(&plan)
        try save(plan)
    }

    /// A phase's log file, created empty, and its console prefix.
    public func phaseLog(_ phase: Attempt.Phase) throws -> (FileHandle, OutputSink) {
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        let path = "\(logDir)/\(phase.rawValue).log"
        // Created afresh and never through a link (a later observation of the same attempt starts it again).
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw EngineError("cannot write \(path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        return (handle, OutputSink(prefix: "[\(env.name) \(phase.rawValue)] ", console: console, heartbeat: heartbeat))
    }
}

/// Makes the backend of an environment (tests pass one that makes fakes).
public typealias BackendFactory = (_ env: EnvironmentSpec) -> Backend

/// The backend for an environment: the one place that maps `backend.kind` to an implementation.
/// A new backend is one new file with a conformer and one case here.
public enum Backends {
    public static func make(for env: EnvironmentSpec, repo: GitRepository, desired: DesiredState,
                            layout: StateLayout, console: FileHandle, wait: Bool) -> Backend {
        switch env.backend {
        case .local: return LocalProcessBackend(repo: repo, desired: desired, layout: layout, console: console)
        case .kubernetes(let k): return KubernetesBackend(k, repo: repo, wait: wait)
        }
    }
}
