import DagctlPlanning
import DagctlState
import Foundation

/// Plans and state files that pass the state file's checks, for the tests to start from.
enum Samples {
    static let commit = "1a2b3c4d5e" + String(repeating: "f", count: 30)

    /// Plan `prod-v<version>-1a2b3c4d5e` with one finished attempt; `extra` adds changes so records differ in length.
    static func plan(_ version: Int, env: String = "prod", status: PlanStatus = .failed, finished: String = "2024-05-01T12:00:00Z",
                     extra: Int = 0) -> Plan {
        let outcome: Attempt.Outcome = status == .succeeded ? .succeeded : .failed
        return Plan(id: "\(env)-v\(version)-\(commit.prefix(10))", environment: env, version: String(version), commit: commit, base: nil,
                    author: "alice", createdAt: "2024-05-01T11:00:00Z",
                    changes: (0..<(1 + extra)).map { Change(path: "models/m\($0)_é.sql", change: .added, category: .model) },
                    scope: .selective, select: ["m0+"], warnings: [], status: status,
                    attempts: [Attempt(n: 1, outcome: outcome, phase: .run, startedAt: "2024-05-01T11:59:00Z", finishedAt: finished,
                                       summary: ["models": ResultCounts(success: 1)])])
    }

    static func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
}
