import DagctlPlanning
import DagctlSpec
import Foundation

/// Finished plans live in `<state-dir>/history/<env>.jsonl`, one JSON plan per line, appended and never
/// rewritten; the state file keeps only each environment's newest plan and the plans still to finish.
/// Reading and writing the state file therefore costs the same after ten plans or ten thousand.
extension StateStore {
    public var historyDirectory: String { "\(directory)/history" }

    func historyPath(_ env: String) -> String? {
        Names.isValid(env) ? "\(historyDirectory)/\(env).jsonl" : nil
    }

    /// A plan the state file need not keep: finished, and not its environment's newest.
    static func isArchivable(_ plan: Plan, newest: Bool) -> Bool {
        !newest && ![.pending, .approved, .building, .running].contains(plan.status)
    }

    /// Moves archivable plans from `state` to the history files (appended and synced before the caller
    /// writes the slimmer state; a crash in between leaves a plan in both places, which readers
    /// resolve by id).
    public func archive(_ state: inout StateFile) throws(StateError) {
        for name in state.environments.keys.sorted() {
            let plans = state.environments[name]!.plans
            let keep = plans.enumerated().filter { !Self.isArchivable($0.element, newest: $0.offset == plans.count - 1) }.map(\.element)
            guard keep.count < plans.count, let path = historyPath(name) else { continue }
            let kept = Set(keep.map(\.id))
            let done = plans.filter { !kept.contains($0.id) }
            try append(done, to: path)
            state.environments[name]!.plans = keep
        }
    }

    /// Archived plans of `env`, oldest first (the last record of an id wins).
    public func history(_ env: String) throws(StateError) -> [Plan] {
        guard let path = historyPath(env), let data = FileManager.default.contents(atPath: path) else { return [] }
        var plans: [Plan] = []
        var index: [String: Int] = [:]
        let decoder = JSONDecoder()
        for (n, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.isEmpty {
            let plan: Plan
            do { plan = try decoder.decode(Plan.self, from: Data(line)) } catch {
                throw .unreadable(path: path, reason: "line \(n + 1) is not a plan (\(Self.describe(error)))")
            }
            if let i = index[plan.id] { plans[i] = plan } else {
                index[plan.id] = plans.count
                plans.append(plan)
            }
        }
        return plans
    }

    private func append(_ plans: [Plan], to path: String) throws(StateError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        do { for plan in plans { data += try encoder.encode(plan) + Data("\n".utf8) } } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
        try? FileManager.default.createDirectory(atPath: historyDirectory, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return fsync(fd) == 0
        }
        if !ok { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    }
}
