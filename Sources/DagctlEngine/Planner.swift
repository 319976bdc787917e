import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Observe, explain and judge without side effects: what reconcile would do next for each environment.
/// `dagctl plan` prints it; `dagctl reconcile` carries out the same steps (`EnvironmentCycle`).
public struct Planner {
    public let cycle: EnvironmentCycle
    public let state: StateFile
    public let layout: StateLayout
    /// Finished plans of an environment (the history files), whose ids a new plan must not take.
    public let history: (String) -> [Plan]
    /// Where a plan kind's helper shows what it does while a preview explains (stderr: stdout may carry a document).
    public let console: FileHandle
    /// `plan --manifest FILE`: the base commit's dependency index, given; it makes the preview precise.
    public var givenManifest: DependencyIndex?
    /// The time deploy windows are judged at (injectable for tests).
    public var now: () -> Date = Date.init

    public init(repo: GitRepository, desired: DesiredState, state: StateFile, layout: StateLayout = StateLayout(directory: "state"),
                history: @escaping (String) -> [Plan] = { _ in [] }, console: FileHandle = .standardError,
                verify: @escaping SignatureCheck) {
        self.cycle = EnvironmentCycle(repo: repo, desired: desired, verify: verify)
        self.state = state
        self.layout = layout
        self.history = history
        self.console = console
    }

    /// The environment's backend, as `reconcile` would use it (a preview only asks and reviews).
    func backend(for env: EnvironmentSpec) -> Backend {
        Backends.make(for: env, repo: repo, desired: desired, layout: layout, console: console, wait: true)
    }

    /// What explaining may use: the ids the environment took, and the backend to ask the kind's helper.
    func explainContext(_ env: EnvironmentSpec, plans: [Plan], backend: Backend, kind: PlanKind) -> ExplainContext {
        let all = history(env.name) + plans
        var context = ExplainContext(taken: Set(all.map(\.id)), manifests: ManifestStore(layout: layout),
                                     givenIndex: givenManifest) { commit, command in
            try backend.inspect(commit, env: env, kind: kind, command: command)
        }
        context.unsettled = RollbackRules.unsettled(all)
        let here = LocalProcessBackend(repo: repo, desired: desired, layout: layout, console: console)
        context.inspectHere = { commit, command in try here.inspect(commit, env: env, kind: kind, command: command) }
        return context
    }

    public var repo: GitRepository { cycle.repo }
    public var desired: DesiredState { cycle.desired }

    /// The environments to look at: all of them, or the ones named (unknown names are reported).
    public func selectedEnvironments(_ names: [String]) -> [EnvironmentReport] {
        var known = Set(desired.environmentNames)
        known.formUnion(desired.environmentIssues.keys)
        let wanted = names.isEmpty ? known.sorted() : names
        return wanted.map { name in
            var report = EnvironmentReport(name: name, spec: desired.environment(name))
            let envState = state.environments[name]
            report.deployed = envState?.deployed
            report.plan = envState?.plans.last
            if let issues = desired.environmentIssues[name] {
                report.errors += issues.map(\.description)
            } else if report.spec == nil {
                report.errors.append("no environment '\(name)': there is no \(desired.root)/environments/\(name).yaml (known: \(known.sorted().joined(separator: ", ")))")
            }
            return report
        }
    }

    /// What reconcile would do for one environment next, as a report (the plan command's view).
    /// With `ref` or `base`, always explains a fresh plan at the ref's commit against that base.
    public func preview(_ report: EnvironmentReport, ref overrideRef: String? = nil, base overrideBase: String? = nil) -> EnvironmentReport {
        var report = report
        guard let env = report.spec, report.errors.isEmpty else { return report }
        explainAndJudge(env, &report, ref: overrideRef, base: overrideBase)
        report.command = report.plan.flatMap { cycle.kind(of: $0).displayCommand($0, env: env) }
        // A preview against another base judges no approvals, so it offers none to write either.
        let judged = report.preview == nil || report.approvals != nil
        report.next = judged ? NextSteps.lines(for: report.plan, env: env, members: desired.members, review: report.approvals) : []
        if let plan = report.plan, plan.rollback != nil, report.isNewPlan {
            report.next = ["dagctl reconcile --env \(env.name)   (records \(plan.id); a rollback plan is approved once recorded)"]
        }
        return report
    }

    private func explainAndJudge(_ env: EnvironmentSpec, _ report: inout EnvironmentReport, ref overrideRef: String?, base overrideBase: String?) {
        var env = env
        if givenManifest != nil { env.scopeMode = .precise }
        let envState = state.environments[env.name] ?? EnvironmentState()
        var plans = envState.plans
        do {
            let fresh = overrideRef != nil || overrideBase != nil
            // A preview of another ref or base shows that plan, whatever pins the environment.
            let pin = fresh ? nil : cycle.pin(env, plans: history(env.name) + plans)
            report.show(pin)
            if !fresh { _ = RollbackRules.withdraw(&plans, pin: pin) }
            var observed = envState
            observed.plans = plans
            let observation = try cycle.observe(env, state: fresh ? EnvironmentState() : observed, ref: overrideRef, pin: pin)
            report.ref = observation.ref
            report.head = observation.head.hex
            report.commitsBehind = observation.commitsBehind
            let backend = backend(for: env)
            switch observation.decision {
            case .keep:
                break
            case .nothingDue:
                report.inSync = envState.inSync ?? observation.head.hex
            case .versionWentBackwards:
                report.errors.append(observation.decision.error(ref: observation.ref)!)
                return
            case .rollback(let target, let supersede):
                let plan = try cycle.explainRollback(env, to: target, pin: pin!, base: envState.deployed?.commit, supersede: supersede,
                                                     plans: &plans) { explainContext(env, plans: envState.plans, backend: backend, kind: $0) }
                report.isNewPlan = plan != nil
                report.supersedes = supersede
                report.waitingFor = Lifecycle.waitingFor(plans)
            case .create(let supersede):
                let base = try overrideBase.map { try repo.resolveCommit($0).hex } ?? envState.deployed?.commit
                if fresh { plans = [] }
                var context = explainContext(env, plans: envState.plans, backend: backend, kind: observation.kind)
                // A preview's plan stands alone: it takes the id reconcile would give it with no plans before it.
                if fresh { context.taken = [] }
                let plan = try cycle.explainNew(env, at: observation, base: base, supersede: fresh ? [] : supersede, plans: &plans,
                                                context: context)
                if plan == nil { report.inSync = observation.head.hex }
                report.isNewPlan = plan != nil
                report.supersedes = fresh ? [] : supersede
                report.waitingFor = Lifecycle.waitingFor(plans)
            }
            if fresh {
                let base = plans.last?.base.map { String($0.prefix(10)) } ?? "nothing (a first deploy)"
                report.preview = "a preview of \(observation.ref) @ \(observation.head.short) against \(base); reconcile explains its own plan"
            }
            // Approvals are signed over the plan reconcile explains (against the deployed commit). Against
            // another base the same id can hold another scope, and a valid approval must never look forged:
            // so it is not judged then.
            let otherBase = overrideBase != nil && plans.last?.base != envState.deployed?.commit
            if otherBase {
                report.notes.append("approvals are not judged in a preview against another base than the deployed commit; `dagctl plan` without --base shows them")
                report.plan = plans.last
                if let newest = plans.last { report.manifests = backend.manifests(for: newest, env: env, kind: cycle.kind(of: newest)) }
                return
            }
            // Show the statuses the approve step would give the plans.
            let judgement = cycle.judge(env, plans: plans, head: observation.head)
            for transition in judgement.transitions { plans.apply(transition) }
            report.approvals = judgement.review
            if let ignored = judgement.retryIgnored { report.notes.append(ignored) }
            report.plan = plans.last
            if let newest = plans.last {
                report.manifests = backend.manifests(for: newest, env: env, kind: cycle.kind(of: newest))
            }
            if let newest = plans.last, newest.status.isActive, !env.windows.isEmpty {
                switch DeployWindows.verdict(env.windows, at: now()) {
                case .open: report.notes.append("deploy windows: open now; \(newest.id) would start")
                case .closed(let until): report.notes.append("outside its deploy windows: \(newest.id) would wait " + DeployWindows.describe(until))
                }
            }
            if env.suspended {
                report.notes.append("suspended (suspend: true in \(env.file)): plans are explained and judged, but nothing is built or run until it is removed")
            }
        } catch {
            report.errors.append("\(error)")
        }
    }
}
