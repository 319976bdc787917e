import DagctlBackends
import DagctlGit
import DagctlNotify
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// One `dagctl reconcile`: for every environment, recover → observe → explain → approve → execute →
/// record. The caller holds the state lock. The state file is written at every status change, and a
/// plan's success and the deployment it makes are one write.
public final class Reconciler {
    let planner: Planner
    let store: StateStore
    var state: StateFile
    let console: FileHandle
    let heartbeat: TimeInterval
    let wait: Bool
    /// Reports are handed out as soon as each environment is done (text output prints them then).
    let onReport: (EnvironmentReport) -> Void
    let makeBackend: BackendFactory
    /// Set when a state write failed: the file on disk is then behind this run's view of it.
    private var saveFailure: String?
    /// Sends the outbox after each environment's work; nil sends nothing (events still wait in the outbox).
    var delivery: OutboxDelivery?
    /// The review of the newest pending plan as this run judged it, for the plan_pending event.
    private var review: ApprovalReview?
    /// The time deploy windows are judged at (injectable for tests).
    public var now: () -> Date = Date.init

    public init(planner: Planner, store: StateStore, console: FileHandle, heartbeat: TimeInterval = 15, wait: Bool = true,
                backends: BackendFactory? = nil, delivery: OutboxDelivery? = nil,
                onReport: @escaping (EnvironmentReport) -> Void = { _ in }) {
        self.delivery = delivery
        self.makeBackend = backends ?? { env in
            Backends.make(for: env, repo: planner.repo, desired: planner.desired, layout: store.layout, console: console, wait: wait)
        }
        self.planner = planner
        self.store = store
        self.state = planner.state
        self.console = console
        self.heartbeat = heartbeat
        self.wait = wait
        self.onReport = onReport
    }

    var cycle: EnvironmentCycle { planner.cycle }

    /// Reconciles the named environments (all when empty); returns one report each.
    public func run(environments names: [String]) -> [EnvironmentReport] {
        Interruption.install()
        return planner.selectedEnvironments(names).map { report in
            var report = report
            if let env = report.spec, report.errors.isEmpty {
                do {
                    if let failure = saveFailure {
                        throw EngineError("not reconciled: the state file could not be written (\(failure)); fix that and run again")
                    }
                    try Interruption.check(before: "reconciling environment '\(env.name)'")
                    try reconcile(env, &report)
                } catch { report.errors.append("\(error)") }
                // After a failed state write the file on disk no longer matches what this run holds:
                // nothing more is recorded, archived or started from it.
                if saveFailure == nil {
                    do { try record(env.name) } catch { report.errors.append("\(error)") }
                }
            }
            // Also after an environment that could not be reconciled: earlier events still go out.
            if saveFailure == nil { notify(&report) }
            if report.actions.isEmpty && report.errors.isEmpty { report.actions.append("nothing to do") }
            onReport(report)
            return report
        }
    }

    /// One environment, phase by phase; `plans` is written to the state file at every change.
    private func reconcile(_ env: EnvironmentSpec, _ report: inout EnvironmentReport) throws {
        let backend = makeBackend(env)
        review = nil
        var envState = state.environments[env.name] ?? EnvironmentState()
        defer {
            report.deployed = envState.deployed
            report.plan = envState.plans.last
            report.inSync = envState.plans.last == nil || envState.plans.last!.status.isFinal ? envState.inSync : nil
            report.command = envState.plans.last.flatMap { cycle.kind(of: $0).displayCommand($0, env: env) }
            report.manifests = envState.plans.last.map { backend.manifests(for: $0, env: env, kind: cycle.kind(of: $0)) } ?? []
            report.next = NextSteps.lines(for: envState.plans.last, env: env, members: planner.desired.members, review: report.approvals)
        }
        let pin = cycle.pin(env, plans: store.history(env.name) + envState.plans)
        try recover(env, backend, pin, &envState, &report)
        report.show(pin)
        report.actions += RollbackRules.withdraw(&envState.plans, pin: pin)
        let observation = try observe(env, pin, &envState, &report)
        try explain(env, observation, pin, backend, &envState, &report)
        try approve(env, &envState, &report)
        try execute(env, observation, pin, backend, &envState, &report)
    }

    /// What explaining may use: the ids the environment took, and its backend to run the kind's helper.
    private func context(_ env: EnvironmentSpec, _ plans: [Plan], _ backend: Backend, _ kind: PlanKind) -> ExplainContext {
        let all = store.history(env.name) + plans
        var context = ExplainContext(taken: Set(all.map(\.id)), manifests: ManifestStore(layout: store.layout),
                                     keepsParsedManifests: true) { commit, command in
            try backend.inspect(commit, env: env, kind: kind, command: command)
        }
        context.unsettled = RollbackRules.unsettled(all)
        let here = LocalProcessBackend(repo: planner.repo, desired: planner.desired, layout: store.layout, console: console)
        context.inspectHere = { commit, command in try here.inspect(commit, env: env, kind: kind, command: command) }
        return context
    }

    /// A plan left building or running by a run that died: the backend says whether its attempt died
    /// with it (local: interrupted, the plan failed and retriable) or goes on (Kubernetes: observed).
    private func recover(_ env: EnvironmentSpec, _ backend: Backend, _ pin: Pin?, _ envState: inout EnvironmentState,
                         _ report: inout EnvironmentReport) throws {
        for i in envState.plans.indices where envState.plans[i].status.isInProgress {
            guard case .interrupt(let note) = backend.recover(envState.plans[i], env: env) else { continue }
            if let note { report.actions.append(note) }
            // A run killed after the tool finished (SQLMesh applied, dagctl died confirming): asked, the
            // tool says it is done, and that is what is recorded.
            let plan = envState.plans[i], kind = cycle.kind(of: plan)
            if plan.attempts.last?.phase == .run, kind.confirmsByAsking,
               confirmed(plan, kind: kind, env: env, plans: envState.plans, backend: backend) {
                envState.plans[i].succeedAttempt(at: Timestamp.now())
                envState.deployed = Deployment(commit: plan.commit, version: plan.version, plan: plan.id, deployedAt: Timestamp.now())
                report.actions.append("\(plan.id): its run had finished before the dagctl run doing it died (\(kind.tool) reports the environment in sync at \(plan.commit.prefix(10))); recorded as deployed")
                try save(env.name, envState)
                continue
            }
            envState.plans[i].interruptAttempt(at: Timestamp.now())
            report.actions.append("marked \(envState.plans[i].id) failed: attempt \(envState.plans[i].attempts.count) was interrupted")
            // A rollback whose request is gone is withdrawn next, never retried.
            let retriable = !RollbackRules.isWithdrawn(plan, by: pin)
            report.errors.append("\(plan.id) failed: attempt \(plan.attempts.count) was interrupted (the dagctl run doing it died)" + (retriable ? "; it can be retried" : ""))
            report.failed = true
            try save(env.name, envState)
        }
    }

    /// Whether the kind confirms the plan's run as done (in sync); no answer counts as not done.
    private func confirmed(_ plan: Plan, kind: PlanKind, env: EnvironmentSpec, plans: [Plan], backend: Backend) -> Bool {
        do { return try kind.confirm(plan, env: env, context: context(env, plans, backend, kind)) == nil } catch { return false }
    }

    /// Resolves the ref and asks the plan kind whether a new plan is due.
    private func observe(_ env: EnvironmentSpec, _ pin: Pin?, _ envState: inout EnvironmentState,
                         _ report: inout EnvironmentReport) throws -> EnvironmentCycle.Observation {
        let observation = try cycle.observe(env, state: envState, pin: pin)
        envState.ref = env.ref
        envState.head = observation.head.hex
        report.head = observation.head.hex
        report.commitsBehind = observation.commitsBehind
        if let error = observation.decision.error(ref: env.ref) { report.errors.append(error) }
        return observation
    }

    /// Explains a new plan when one is due, superseding the pending plans it replaces.
    private func explain(_ env: EnvironmentSpec, _ observation: EnvironmentCycle.Observation, _ pin: Pin?, _ backend: Backend,
                         _ envState: inout EnvironmentState, _ report: inout EnvironmentReport) throws {
        // Saved with the approve step's verdict (one write), so that a plan needing no approval is
        // never announced as waiting for one.
        switch observation.decision {
        case .create(let supersede):
            try explainFresh(env, observation, backend, supersede: supersede, &envState, &report)
        case .rollback(let target, let supersede):
            try explainRollback(env, to: target, pin: pin!, backend, supersede: supersede, &envState, &report)
        default:
            break
        }
    }

    private func explainRollback(_ env: EnvironmentSpec, to target: Plan, pin: Pin, _ backend: Backend, supersede: [String],
                                 _ envState: inout EnvironmentState, _ report: inout EnvironmentReport) throws {
        let plans = envState.plans
        var kind: PlanKind?
        let explained = try cycle.explainRollback(env, to: target, pin: pin, base: envState.deployed?.commit, supersede: supersede,
                                                  plans: &envState.plans) { kind = $0; return context(env, plans, backend, $0) }
        guard let plan = stamp(explained, superseding: supersede, &envState, &report) else {
            report.actions.append("\(kind?.tool ?? "the tool") reports \(env.name) in sync at \(target.commit.prefix(10)) already: the rollback to \(target.id) has nothing to do")
            return
        }
        report.actions.append("explained \(plan.id), a rollback to \(target.id) asked by \(pin.by ?? "?"): \(Self.describe(plan))")
    }

    private func explainFresh(_ env: EnvironmentSpec, _ observation: EnvironmentCycle.Observation, _ backend: Backend,
                              supersede: [String], _ envState: inout EnvironmentState, _ report: inout EnvironmentReport) throws {
        let explained = try cycle.explainNew(env, at: observation, base: envState.deployed?.commit, supersede: supersede,
                                             plans: &envState.plans, context: context(env, envState.plans, backend, observation.kind))
        guard let plan = stamp(explained, superseding: supersede, &envState, &report) else {
            envState.inSync = observation.head.hex
            report.actions.append("\(observation.kind.tool) reports \(env.name) in sync at \(observation.head.short): no plan")
            return
        }
        report.actions.append("explained \(plan.id): \(Self.describe(plan))")
    }

    /// What a run records of an explain: the plans it superseded and, when it made one, the new plan
    /// (the newest in `envState`), stamped with its time; returns that plan.
    private func stamp(_ plan: Plan?, superseding supersede: [String], _ envState: inout EnvironmentState,
                       _ report: inout EnvironmentReport) -> Plan? {
        report.actions += supersede.map { "superseded \($0)" }
        report.supersedes = supersede
        guard plan != nil else { return nil }
        envState.plans[envState.plans.count - 1].createdAt = Timestamp.now()
        report.isNewPlan = true
        return envState.plans.last
    }

    /// Judges approvals and retry requests, and records what they decide.
    private func approve(_ env: EnvironmentSpec, _ envState: inout EnvironmentState, _ report: inout EnvironmentReport) throws {
        let judgement = cycle.judge(env, plans: envState.plans, head: envState.head.map(ObjectID.init(hex:)))
        report.approvals = judgement.review
        review = judgement.review
        for transition in judgement.transitions {
            envState.plans.apply(transition)
            report.actions.append(transition.status == .approved && transition.reason.hasPrefix("retry")
                                  ? "\(transition.plan): \(transition.reason)" : "\(transition.plan) \(transition.reason)")
        }
        if let ignored = judgement.retryIgnored { report.actions.append(ignored) }
        try save(env.name, envState)
    }

    /// Builds and runs due plans, oldest first, one at a time; a plan still under way elsewhere
    /// (`--no-wait`) keeps the later ones waiting.
    private func execute(_ env: EnvironmentSpec, _ observation: EnvironmentCycle.Observation, _ pin: Pin?, _ backend: Backend,
                         _ envState: inout EnvironmentState, _ report: inout EnvironmentReport) throws {
        for plan in Lifecycle.due(envState.plans) {
            try Interruption.check(before: "executing \(plan.id)")
            // Pinned: only the rollback the file asks for starts; an attempt under way goes on to its end.
            if let pin, plan.status == .approved, !pin.allows(plan) {
                report.actions.append(pin.isValid ? "pinned by \(pin.name): \(plan.id) is approved and waits (delete \(pin.name) to unpin)"
                                      : "held by the invalid \(pin.name): \(plan.id) is approved and waits (fix or delete \(pin.name))")
                continue
            }
            // Suspended: an attempt under way goes on to its end; nothing new starts.
            if env.suspended && plan.status == .approved {
                report.actions.append("suspended: \(plan.id) is approved and waits (suspend: true in \(env.file); remove it to resume)")
                break
            }
            if plan.status == .approved, case .closed(let until) = DeployWindows.verdict(env.windows, at: now()) {
                report.actions.append("outside its deploy windows: \(plan.id) is approved and waits " + DeployWindows.describe(until) + " (windows in \(env.file))")
                break
            }
            let kind = cycle.kind(of: plan)
            // Asked once more right before it starts: a stale plan is never applied.
            if plan.status == .approved, let stale = try kind.staleness(plan, env: env, context: context(env, envState.plans, backend, kind)) {
                envState.plans.apply(PlanTransition(plan: plan.id, status: .superseded, reason: stale))
                report.actions.append("superseded \(plan.id): \(stale)")
                try save(env.name, envState)
                if let pin, pin.allows(plan), let target = pin.target {
                    try explainRollback(env, to: target, pin: pin, backend, supersede: [], &envState, &report)
                } else {
                    try explainFresh(env, observation, backend, supersede: [], &envState, &report)
                }
                report.approvals = cycle.judge(env, plans: envState.plans, head: observation.head).review
                try save(env.name, envState)
                break  // the fresh plan needs its approvals again
            }
            let context = AttemptContext(plan: plan, env: env, kind: kind, layout: store.layout, console: console,
                                         heartbeat: heartbeat) { [self] plan in try record(plan, in: env.name) }
            defer { envState = state.environments[env.name] ?? envState }
            do { try AttemptRunner(backend: backend).advance(context) } catch {
                report.actions += context.notes.map { "\(plan.id): \($0)" }
                throw error
            }
            report.actions += context.notes.map { "\(plan.id): \($0)" }
            let done = context.plan
            if done.status == .succeeded {
                report.actions.append("deployed \(done.commit.prefix(10))" + (done.version.isEmpty ? "" : " (version \(done.version))") + " to \(env.name)")
                if let note = keepManifest(done, env: env, kind: kind, backend: backend, plans: envState.plans) { report.actions.append(note) }
                try? prune()
            } else if done.status == .failed {
                report.failed = true
                report.errors.append("\(done.id) failed: \(done.statusReason ?? "")")
            } else {
                break  // still under way elsewhere (--no-wait): later plans wait their turn
            }
        }
    }

    /// A dbt deploy on this machine keeps its manifest (and partial-parse file) for precise scope and
    /// warm parses (SPEC §11). A manifest that cannot be kept costs nothing but a note.
    private func keepManifest(_ plan: Plan, env: EnvironmentSpec, kind: PlanKind, backend: Backend, plans: [Plan]) -> String? {
        guard let dbt = kind as? DbtPlans, case .local = env.backend, let n = plan.attempts.last?.n else { return nil }
        let manifests = ManifestStore(layout: store.layout)
        guard kind.hasRunPhase(plan) else {
            // build_only ran no dbt. When no file dbt reads changed, the kept index is still true of
            // this commit; otherwise a precise environment has its commit parsed now, at deploy time,
            // so that the next plan is explained without running dbt.
            if dbt.touchesNothingDbtReads(plan), case .success(var index)? = manifests.index(env.name), index.commit == plan.base {
                index.commit = plan.commit
                try? manifests.keep(env.name, index: index, manifest: nil, partialParse: nil)
            } else if env.scopeMode == .precise {
                do {
                    let commit = ObjectID(hex: plan.commit)
                    _ = try dbt.parsedIndex(env: env, config: try dbt.project(at: commit), base: commit,
                                            context: context(env, plans, backend, kind))
                } catch {
                    return "warning: no manifest of \(plan.id) could be made (\(error)); the next precise plan runs dbt parse"
                }
            }
            return nil
        }
        let target = "\(store.layout.build(plan.id, attempt: n))/dbt-target"
        do {
            try manifests.keep(env.name, target: target, commit: plan.commit, source: "the deploy of \(plan.id)",
                               projectRoot: URL(fileURLWithPath: store.layout.currentProject(env.name)).standardizedFileURL.path)
            return nil
        } catch {
            return "warning: the manifest of \(plan.id) was not kept (\(error)); the next precise plan runs dbt parse"
        }
    }

    /// Records a plan's new state; a success sets the deployment in the same write, so no crash can
    /// leave a succeeded plan that `deployed` does not name.
    private func record(_ plan: Plan, in env: String) throws {
        guard var envState = state.environments[env], let i = envState.plans.firstIndex(where: { $0.id == plan.id }) else { return }
        envState.plans[i] = plan
        if plan.status == .succeeded {
            envState.deployed = Deployment(commit: plan.commit, version: plan.version, plan: plan.id, deployedAt: Timestamp.now())
        }
        try save(env, envState)
    }

    /// Writes the environment's new state, with the notifications its changes cause in the same write.
    private func save(_ env: String, _ envState: EnvironmentState) throws {
        guard state.environments[env] != envState else { return }
        if let failure = saveFailure { throw EngineError("the state file could not be written (\(failure))") }
        var next = state
        if let notifications = planner.desired.notifications, let spec = planner.desired.environment(env) {
            let events = PlanEvents(notifications: notifications, env: spec, members: planner.desired.members, review: review)
            next.outbox += events.entries(from: state.environments[env], to: envState, at: Timestamp.now())
        }
        next.environments[env] = envState
        do { try store.save(next) } catch {
            saveFailure = "\(error)"
            throw error
        }
        state = next
    }

    /// Delivers the outbox once the environment's work is done. It never fails the run: what could not
    /// be sent waits for a later run, and what is given up is a warning.
    private func notify(_ report: inout EnvironmentReport) {
        guard var delivery, !state.outbox.isEmpty else { return }
        var next = state
        let outcome = delivery.deliver(&next)
        self.delivery = delivery
        for (webhook, n) in outcome.delivered.sorted(by: { $0.key < $1.key }) {
            report.actions.append("notified \(webhook) (\(n) event\(n == 1 ? "" : "s"))")
        }
        report.actions += outcome.deferred.map { "notification not delivered: \($0)" }
        report.actions += outcome.dropped.map { "warning: \($0)" }
        if outcome.interrupted, let sig = Interruption.caught {
            report.errors.append("dagctl received \(Interruption.name(sig)) while sending notifications; what is not sent waits in the outbox for the next run")
        }
        guard next != state else { return }
        do { try store.save(next) } catch {
            report.actions.append("warning: the outbox could not be saved after delivery (\(error)); the events delivered now are sent again by a later run")
            return
        }
        state = next
    }

    /// Once an environment is done: its finished plans move to the history file (not during it, as
    /// plans are addressed in the list).
    private func record(_ env: String) throws {
        var slim = state
        try store.archive(&slim)
        if slim != state {
            state = slim
            do { try store.save(state) } catch {
                saveFailure = "\(error)"
                throw error
            }
        }
    }

    /// Removes what no environment needs any more, from what is on disk (not from the plans this run
    /// saw): build folders of plans that are neither deployed nor unfinished in any environment, and
    /// virtualenvs not used by any environment's last two deployments.
    func prune() throws {
        let layout = store.layout
        let fm = FileManager.default
        var keepBuilds = Set<String>()
        var keepVirtualenvs = Set<String>()
        for (name, env) in state.environments {
            if let deployed = env.deployed?.plan { keepBuilds.insert(deployed) }
            keepBuilds.formUnion(env.plans.filter { $0.status.isLive }.map(\.id))
            let succeeded = (store.history(name) + env.plans).filter { $0.status == .succeeded }
            for plan in succeeded.suffix(2) { keepVirtualenvs.formUnion(plan.attempts.compactMap(\.virtualenv)) }
            // A plan being built now may have made its virtualenv already.
            for plan in env.plans where plan.status.isLive { keepVirtualenvs.formUnion(plan.attempts.compactMap(\.virtualenv)) }
        }
        for name in (try? fm.contentsOfDirectory(atPath: layout.builds)) ?? [] where !keepBuilds.contains(name) {
            try? fm.removeItem(atPath: "\(layout.builds)/\(name)")
        }
        for name in (try? fm.contentsOfDirectory(atPath: layout.virtualenvs)) ?? [] where !keepVirtualenvs.contains(name) {
            try? fm.removeItem(atPath: "\(layout.virtualenvs)/\(name)")
        }
    }

    static func describe(_ plan: Plan) -> String {
        switch plan.scope {
        case .all: return "all"
        case .buildOnly: return "build_only"
        case .selective: return "selective (\(plan.select.joined(separator: " ")))"
        case .sqlmesh:
            let models = plan.models ?? []
            return "sqlmesh (\(models.count) model\(models.count == 1 ? "" : "s"): " + models.map { "\($0.model) \($0.change.rawValue)" }.joined(separator: ", ") + ")"
        }
    }
}
