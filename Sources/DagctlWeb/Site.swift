import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// What the dashboard shows, read from the same files as every command (the state file, its history,
/// the desired state, the repository) each time a page is asked for. It writes nothing and holds no lock.
public struct Site: Sendable {
    public let store: StateStore
    public let desired: DesiredState
    public let repoPath: String
    /// The `status --output json` document and one plan's JSON (rendered by the CLI's renderers).
    public let statusJSON: @Sendable ([EnvironmentReport]) -> String
    public let planJSON: @Sendable (Plan, EnvironmentReport) -> String
    private let historyCache = HistoryCache()

    public init(store: StateStore, desired: DesiredState, repoPath: String,
                statusJSON: @escaping @Sendable ([EnvironmentReport]) -> String, planJSON: @escaping @Sendable (Plan, EnvironmentReport) -> String) {
        self.store = store
        self.desired = desired
        self.repoPath = repoPath
        self.statusJSON = statusJSON
        self.planJSON = planJSON
    }

    /// The state file as it is now. A reconcile replaces it by rename, so a read is whole; a read that
    /// still fails (it raced a rename on a slow disk) is tried again before giving up.
    public func state() throws -> StateFile {
        var last: Error?
        for attempt in 0..<5 {
            do { return try store.load() } catch { last = error; usleep(UInt32(20_000 * (attempt + 1))) }
        }
        throw last!
    }

    /// Every environment: its spec (if its file is valid), its state, its history.
    public struct Environment {
        public var name: String
        public var spec: EnvironmentSpec?
        public var state: EnvironmentState
    }

    public func environments(_ state: StateFile) -> [Environment] {
        let names = Set(desired.environmentNames).union(state.environments.keys).sorted()
        return names.map { Environment(name: $0, spec: desired.environment($0), state: state.environments[$0] ?? EnvironmentState()) }
    }

    /// A plan by id: looked up in the state file and the history files, never used as a path.
    public func plan(_ id: String, in state: StateFile) -> (Plan, Environment)? {
        for env in environments(state) {
            if let plan = env.state.plans.first(where: { $0.id == id }) ?? history(env.name).last(where: { $0.id == id }) {
                return (plan, env)
            }
        }
        return nil
    }

    /// The archived plans of `env`, oldest first. Decoding a long history costs tens of milliseconds,
    /// so the result is kept until the file changes (it only ever grows, by append).
    public func history(_ env: String) -> [Plan] {
        guard let path = store.historyPath(env) else { return [] }
        return historyCache.plans(path: path, stamp: Self.stamp(path)) { store.history(env) }
    }

    /// What changes when a file is replaced or appended to (mtime, size, inode); empty if it is missing.
    static func stamp(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "" }
        return "\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec).\(info.st_size).\(info.st_ino)"
    }

    /// The end of a log for a page: at most `limit` bytes (from a line start), decoded leniently (a tool
    /// may print bytes that are not UTF-8), with the file's size for the live stream to go on from and
    /// how many bytes were left out. Nil when there is no log.
    public struct LogTail { public var text: String; public var size: UInt64; public var skipped: UInt64 }

    public static func logTail(_ path: String, root: String, limit: UInt64 = 1 << 20) -> LogTail? {
        guard let handle = openLog(path, root: root) else { return nil }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd() else { return nil }
        var start = size > limit ? size - limit : 0
        try? handle.seek(toOffset: start)
        var data = (try? handle.read(upToCount: Int(size - start))) ?? Data()
        if start > 0, let newline = data.firstIndex(of: 10) {
            start += UInt64(newline - data.startIndex + 1)
            data = data[(newline + 1)...]
        }
        return LogTail(text: String(decoding: data, as: UTF8.self), size: start + UInt64(data.count), skipped: start)
    }

    /// A log opened for reading only if it is a regular file that really lies under `root` (the state's
    /// logs folder): a symbolic link, in the file's name or in a folder above it, is not followed out.
    public static func openLog(_ path: String, root: String) -> FileHandle? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              let real = realpath(path, nil), let base = realpath(root, nil) else { close(fd); return nil }
        defer { free(real); free(base) }
        guard String(cString: real).hasPrefix(String(cString: base) + "/") else { close(fd); return nil }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// The report the other outputs are rendered from, for one environment.
    public func report(_ env: Environment, plan: Plan? = nil) -> EnvironmentReport {
        var report = EnvironmentReport(name: env.name, spec: env.spec)
        report.ref = env.state.ref ?? env.spec?.ref
        report.head = env.state.head
        report.deployed = env.state.deployed
        report.inSync = env.state.inSync
        report.plan = plan ?? env.state.plans.last
        report.waitingFor = Lifecycle.waitingFor(env.state.plans)
        if let spec = env.spec, let p = report.plan, let repo = try? GitRepository.open(repoPath) {
            report.command = EnvironmentCycle(repo: repo, desired: desired, verify: SSHSignatures.verify).kind(of: p).displayCommand(p, env: spec)
        }
        if let spec = env.spec, let p = report.plan {
            let files = desired.approvals(for: p.id)
            if p.status == .pending || !files.isEmpty {
                report.approvals = ApprovalRules.review(plan: p, env: spec, members: desired.members, files: files, verify: SSHSignatures.verify)
            }
            report.next = NextSteps.lines(for: p, env: spec, members: desired.members, review: report.approvals)
        }
        if let spec = env.spec {
            report.pin = desired.pin(spec, plans: history(spec.name) + env.state.plans, verify: SSHSignatures.verify)
        }
        return report
    }

    /// The first line of a commit's message.
    public func summary(of commit: String) -> String? {
        guard let repo = try? GitRepository.open(repoPath) else { return nil }
        return try? repo.commitInfo(ObjectID(hex: commit)).summary
    }

    /// The unified diff of one changed file of a plan, from git.
    public func diff(_ change: Change, plan: Plan) -> String {
        guard let repo = try? GitRepository.open(repoPath) else { return "(the repository at \(repoPath) cannot be opened)" }
        let base = plan.base.flatMap { isFullSHA($0) && repo.hasCommit(ObjectID(hex: $0)) ? ObjectID(hex: $0) : nil }
        do {
            return try repo.unifiedDiff(path: change.path, oldPath: change.oldPath, from: base, to: ObjectID(hex: plan.commit))
        } catch {
            return "(no diff: \(error))"
        }
    }
}

/// Decoded history files by path, each valid while the file's stamp (mtime, size, inode) is unchanged.
final class HistoryCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: (stamp: String, plans: [Plan])] = [:]

    func plans(path: String, stamp: String, load: () -> [Plan]) -> [Plan] {
        if let hit = lock.withLock({ entries[path] }), hit.stamp == stamp { return hit.plans }
        let plans = load()
        lock.withLock { entries[path] = (stamp, plans) }
        return plans
    }
}
