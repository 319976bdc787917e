import DagctlBackends
import DagctlPlanning
import DagctlState

/// Takes a due plan's attempt through its phases on a backend — start the attempt, build, run when the
/// plan has a run phase, confirm with the plan kind — recording every status change through the context. What a phase
/// does is the backend's; what comes next is decided here, the same for every backend and plan kind.
struct AttemptRunner {
    let backend: Backend

    /// Advances the plan as far as it goes in this run. A backend that throws leaves the plan as it
    /// stands (a later run recovers or observes it) and the error goes to the caller.
    func advance(_ context: AttemptContext) throws {
        if context.plan.status == .approved {
            try context.record { $0.startAttempt(at: Timestamp.now()) }
        }
        while context.plan.status.isInProgress {
            let phase = context.attempt.phase
            switch try backend.advance(phase, context) {
            case .running(let note):
                context.notes.append(note)
                return
            case .failed(let reason):
                try context.record { $0.failAttempt(reason, at: Timestamp.now()) }
                // The reason is in the attempt and the run's error; this line says where to look.
                context.notes.append("attempt \(context.n) failed in \(phase.rawValue) (logs: \(context.logDir))")
            case .interrupted(let reason):
                try context.record { $0.interruptAttempt(at: Timestamp.now(), reason: reason) }
                context.notes.append("\(context.plan.statusReason!) (logs: \(context.logDir))")
            case .succeeded where phase == .build && context.kind.hasRunPhase(context.plan):
                if let sig = Interruption.caught {
                    let reason = "dagctl received \(Interruption.name(sig)) and stopped before the run phase"
                    try context.record { $0.interruptAttempt(at: Timestamp.now(), reason: reason) }
                    context.notes.append(context.plan.statusReason!)
                    return
                }
                try context.record {
                    $0.status = .running
                    $0.attempts[$0.attempts.count - 1].phase = .run
                }
            case .succeeded:
                if phase == .build { context.notes.append("build_only: no dbt run") }
                let check = ExplainContext { [backend] commit, command in
                    try backend.inspect(commit, env: context.env, kind: context.kind, command: command)
                }
                if phase == .run, let problem = try context.kind.confirm(context.plan, env: context.env, context: check) {
                    try context.record { $0.failAttempt(problem, at: Timestamp.now()) }
                    context.notes.append(context.plan.statusReason!)
                    continue
                }
                try context.record { $0.succeedAttempt(at: Timestamp.now()) }
            }
        }
    }
}
