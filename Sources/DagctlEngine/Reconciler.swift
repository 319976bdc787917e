import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// One `dagctl reconcile`: for every environment, observe → explain → approve → build → run → record.
/// The caller holds the state lock. The state file is written at every status change.
public final class Reconciler {
    let planner: Planner
    let store: StateStore
    var state: StateFile
    let console: FileHandle
    let heartbeat: TimeInterval
    let wait: Bool
    /// Reports are handed out as soon as each environment is done (text output prints them then).
    let onReport: (EnvironmentReport) -> Void

    public init(planner: Planner, store: StateStore, console: FileHandle, heartbeat: TimeInterval = 15, wait: Bool = true,
                onReport: @escaping (EnvironmentReport) -> Void = { _ in }) {
        self.wait = wait
        self.planner = planner
        self.store = store
        self.state = planner.state
        self.console = console
        self.heartbeat = heartbeat
        self.onReport = onReport
    }

    /// Reconciles the named environments (all when empty); returns one report each.
    public func run(environments names: [String]) -> [EnvironmentReport] {
        Interruption.install()
        return planner.selectedEnvironments(names).map { report in
            var report = report
            if let env = report.spec, report.errors.isEmpty {
                do {
                    try Interruption.check(before: "reconciling environment '\(env.name)'")
                    try reconcile(env, &report)
                } catch { report.errors.append("\(error)") }
                do { try archive() } catch { report.errors.append("\(error)") }
            }
            if report.actions.isEmpty && report.errors.isEmpty { report.actions.append("nothing to do") }
            onReport(report)
            return report
        }
    }

    /// Moves finished plans to the history files once an environment is done (not during it: the
    /// loops above address plans by index).
    private func archive() throws {
        var slim = state
        try store.archive(&slim)
        if slim != state {
            state = slim
            try store.save(state)
        }
    }

    private func save(_ env: String, _ envState: EnvironmentState) throws {
        guard state.environments[env] != envState else { return }
        state.environments[env] = envState
        try store.save(state)
    }

    private func reconcile(_ env: EnvironmentSpec, _ report: inout EnvironmentReport) throws {
        var envState = state.environments[env.name] ?? EnvironmentState()
        defer {
            report.deployed = envState.deployed
            report.plan = envState.plans.last
        }

        // Recover: a local plan left building/running belongs to a run that died.
        for i in envState.plans.indices where [.building, .running].contains(envState.plans[i].status) {
            guard case .local = env.backend else { continue }
            var plan = envState.plans[i]
            if let attempt = plan.attempts.last, attempt.outcome == .running, let pid = attempt.pid,
               LiveProcess.stopOrphan(pid: pid, startedAt: attempt.pidStart) {
                report.actions.append("stopped process group \(pid) left running by the dagctl run that died")
            }
            plan.interruptAttempt(at: Timestamp.now())
            envState.plans[i] = plan
            report.actions.append("marked \(plan.id) failed: attempt \(plan.attempts.count) was interrupted")
            report.failed = true
            try save(env.name, envState)
        }

        // Observe and explain.
        let head = try planner.repo.resolveRef(env.ref)
        envState.ref = env.ref
        envState.head = head.hex
        report.head = head.hex
        let config = try planner.explainer.config(at: head, label: env.ref)
        switch NextPlanDecision.decide(headVersion: config.version, plans: envState.plans) {
        case .keep(let plan):
            report.commitsBehind = try planner.repo.commitsAhead(head, of: ObjectID(hex: plan.commit))
        case .versionWentBackwards(let newest):
            report.errors.append(NextPlanDecision.backwards(ref: env.ref, version: config.version, newest: newest))
        case .create(let supersede):
            var plan = try planner.explainer.explain(env: env, commit: head, config: config,
                                                     base: envState.deployed?.commit, label: env.ref)
            plan.createdAt = Timestamp.now()
            for i in envState.plans.indices where supersede.contains(envState.plans[i].id) {
                envState.plans[i].status = .superseded
                envState.plans[i].statusReason = "superseded by \(plan.id)"
                report.actions.append("superseded \(envState.plans[i].id)")
            }
            envState.plans.append(plan)
            report.isNewPlan = true
            report.supersedes = supersede
            report.actions.append("explained \(plan.id): \(describe(plan))")
        }
        try save(env.name, envState)

        // Approve, and honour retry requests.
        for i in envState.plans.indices where envState.plans[i].status == .pending {
            let review = ApprovalRules.review(plan: envState.plans[i], env: env, members: planner.desired.members,
                                              files: planner.desired.approvals(for: envState.plans[i].id), verify: planner.verify)
            report.approvals = review
            let approvers = review.approvers
            switch review.outcome {
            case .approved:
                envState.plans[i].status = .approved
                envState.plans[i].statusReason = approvers.isEmpty ? "no approval required" : "approved by " + approvers.joined(separator: ", ")
                report.actions.append("\(envState.plans[i].id) \(envState.plans[i].statusReason!)")
            case .rejected:
                let by = review.verdicts.filter { $0.valid && $0.decision == .reject }.map(\.by)
                envState.plans[i].status = .rejected
                envState.plans[i].statusReason = "rejected by " + by.joined(separator: ", ")
                report.actions.append("\(envState.plans[i].id) \(envState.plans[i].statusReason!)")
            case .waiting:
                break
            }
        }
        if let last = envState.plans.indices.last, envState.plans[last].status == .failed,
           let file = planner.desired.retry(for: envState.plans[last].id) {
            let plan = envState.plans[last]
            let verdict = ApprovalRules.review(retry: file, plan: plan, env: env, members: planner.desired.members, verify: planner.verify)
            if !verdict.valid {
                report.actions.append("ignored \(file.path): \(verdict.reason ?? "invalid")")
            } else if let wanted = verdict.retries, plan.attempts.count - 1 < wanted {
                envState.plans[last].status = .approved
                envState.plans[last].statusReason = "retry \(plan.attempts.count) of \(wanted) requested by \(verdict.by ?? "?")"
                report.actions.append("\(plan.id): \(envState.plans[last].statusReason!)")
            }
        }
        try save(env.name, envState)

        // Build and run approved plans, oldest first, one at a time.
        for i in envState.plans.indices where [.approved, .building, .running].contains(envState.plans[i].status) {
            try Interruption.check(before: "executing \(envState.plans[i].id)")
            // A plan's success and the deployment it makes are one write: a crash can never leave a
            // succeeded plan that the deployed record does not name.
            let record: (Plan) throws -> Void = { plan in
                envState.plans[i] = plan
                if plan.status == .succeeded {
                    envState.deployed = Deployment(commit: plan.commit, version: plan.version, plan: plan.id, deployedAt: Timestamp.now())
                }
                try self.save(env.name, envState)
            }
            let plan: Plan, notes: [String]
            switch env.backend {
            case .local:
                let executor = LocalExecutor(repo: planner.repo, desired: planner.desired, stateDir: store.directory,
                                             console: console, heartbeat: heartbeat)
                (plan, notes) = try executor.execute(envState.plans[i], env: env, record: record)
            case .kubernetes(let k):
                let executor = KubernetesExecutor(repo: planner.repo, desired: planner.desired, stateDir: store.directory,
                                                  console: console, heartbeat: heartbeat, wait: wait)
                (plan, notes) = try executor.advance(envState.plans[i], env: env, k: k, record: record)
            }
            report.actions += notes.map { "\(plan.id): \($0)" }
            if plan.status == .succeeded {
                report.actions.append("deployed \(plan.commit.prefix(10)) (version \(plan.version)) to \(env.name)")
                pruneBuilds(of: env.name, keeping: plan.id)
            } else if plan.status == .failed {
                report.failed = true
                report.errors.append("\(plan.id) failed: \(plan.statusReason ?? "")")
            } else {
                break  // still building or running (--no-wait): later plans wait their turn
            }
        }
        report.manifests = planner.manifests(for: envState.plans.last, env: env)
    }

    /// Keeps the build folders of the deployed plan and of plans not finished yet; removes the rest.
    private func pruneBuilds(of env: String, keeping deployed: String) {
        let dir = "\(store.directory)/builds"
        let plans = state.environments[env]?.plans ?? []
        let removable = Set(plans.filter { $0.status.isFinal || $0.status == .failed }.map(\.id)).subtracting([deployed])
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where removable.contains(name) {
            try? FileManager.default.removeItem(atPath: "\(dir)/\(name)")
        }
    }

    func describe(_ plan: Plan) -> String {
        switch plan.scope {
        case .all: return "all"
        case .buildOnly: return "build_only"
        case .selective: return "selective (\(plan.select.joined(separator: " ")))"
        }
    }
}
