import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState

/// The steps `plan` and `reconcile` share for one environment, so the preview is what the run does:
/// observe the ref, decide whether a new plan is due and explain it, and judge the decision files.
/// `plan` shows the outcome; `reconcile` records it and goes on to execute.
public struct EnvironmentCycle {
    public let repo: GitRepository
    public let desired: DesiredState
    public let verify: SignatureCheck

    public init(repo: GitRepository, desired: DesiredState, verify: @escaping SignatureCheck) {
        self.repo = repo
        self.desired = desired
        self.verify = verify
    }

    /// The kind of a project's plans, from `kind:` in its `.dagctl/config.yaml` at `commit`: the one
    /// place that maps a project to a `PlanKind`.
    public func kind(at commit: ObjectID, label: String) throws -> PlanKind {
        let dbt = DbtPlans(repo: repo, members: desired.members)
        switch try dbt.config(at: commit, label: label).kind {
        case .dbt: return dbt
        case .sqlmesh: return SQLMeshPlans(repo: repo, members: desired.members)
        }
    }

    /// The kind of an explained plan.
    public func kind(of plan: Plan) -> PlanKind {
        plan.scope == .sqlmesh ? SQLMeshPlans(repo: repo, members: desired.members) : DbtPlans(repo: repo, members: desired.members)
    }

    public struct Observation {
        public var ref: String
        public var head: ObjectID
        public var kind: PlanKind
        public var decision: NextPlanDecision
        /// Commits the head is ahead of the newest plan's commit, when that plan is kept.
        public var commitsBehind = 0
    }

    /// What `rollbacks/<env>.yaml` says, judged (`DesiredState.pin`).
    public func pin(_ env: EnvironmentSpec, plans: @autoclosure () -> [Plan]) -> Pin? {
        desired.pin(env, plans: plans(), verify: verify)
    }

    /// Resolves the ref and decides whether a new plan is due: the rollback a valid pin asks for, or
    /// what the plan kind's trigger says. A `ref` given (a preview of another ref) ignores the pin.
    public func observe(_ env: EnvironmentSpec, state: EnvironmentState, ref: String? = nil, pin: Pin? = nil) throws -> Observation {
        let label = ref ?? env.ref
        let head = try repo.resolveRef(label)
        let kind = try kind(at: head, label: label)
        if ref == nil, let decision = RollbackRules.decision(pin, plans: state.plans, deployedCommit: state.deployed?.commit) {
            return Observation(ref: label, head: head, kind: kind, decision: decision)
        }
        var observation = Observation(ref: label, head: head, kind: kind,
                                      decision: try kind.trigger(env: env, head: head, state: state, label: label))
        if case .keep(let plan) = observation.decision {
            // A rollback plan went back in history: the head is compared with what is deployed instead.
            let since = plan.rollback != nil ? state.deployed?.commit ?? plan.commit : plan.commit
            observation.commitsBehind = try repo.commitsAhead(head, of: ObjectID(hex: since))
        }
        return observation
    }

    /// Explains the rollback to `target` against `base` (the deployed commit) and appends it to `plans`,
    /// superseding what gives way to it. The plan kind explains it as any plan at the target's commit;
    /// it takes a rollback id and the target's version, and counts the member who asked as its author
    /// (on a protected environment someone else approves it). Nil when the kind reports nothing to do.
    /// `context` makes what explaining may use for the target's plan kind.
    public func explainRollback(_ env: EnvironmentSpec, to target: Plan, pin: Pin, base: String?, supersede: [String],
                                plans: inout [Plan], context makeContext: (PlanKind) -> ExplainContext) throws -> Plan? {
        let commit = ObjectID(hex: target.commit)
        let kind = try kind(at: commit, label: target.id)
        let context = makeContext(kind)
        var plan = try kind.explain(env: env, head: commit, base: base, label: target.id, context: context)
        if var explained = plan {
            explained.id = Plan.rollbackID(environment: env.name, commit: target.commit, taken: context.taken)
            explained.version = target.version
            explained.author = pin.by
            explained.rollback = RollbackOrigin(to: target.id, by: pin.by ?? "")
            plan = explained
        }
        let reason = plan.map { "superseded by rollback \($0.id)" } ?? "the environment is in sync at \(commit.short)"
        for id in supersede { plans.apply(PlanTransition(plan: id, status: .superseded, reason: reason)) }
        if let plan { plans.append(plan) }
        return plan
    }

    /// Explains the plan at the observed head against `base` and appends it to `plans`, superseding the
    /// pending plans it replaces; returns it, or nil when the kind reports nothing to do (then pending
    /// plans are superseded too: what they would change is done).
    public func explainNew(_ env: EnvironmentSpec, at observation: Observation, base: String?, supersede: [String],
                           plans: inout [Plan], context: ExplainContext) throws -> Plan? {
        let plan = try observation.kind.explain(env: env, head: observation.head, base: base, label: observation.ref, context: context)
        let reason = plan.map { "superseded by \($0.id)" } ?? "the environment is in sync at \(observation.head.short)"
        for id in supersede { plans.apply(PlanTransition(plan: id, status: .superseded, reason: reason)) }
        if let plan { plans.append(plan) }
        return plan
    }

    /// The approve step's decisions for the plans as they stand; `head` is the ref's commit now.
    public func judge(_ env: EnvironmentSpec, plans: [Plan], head: ObjectID? = nil) -> Judgement {
        Lifecycle.judge(plans: plans, env: env, members: desired.members, approvals: desired.approvals(for:),
                        retry: desired.retry(for:), verify: verify) { plan in
            // A rollback goes to a commit its signed request names, on the ref or not (say, what ran
            // before a force-push); any other plan's retry needs the ref to still hold its commit.
            guard let head, plan.rollback == nil else { return true }
            return repo.isAncestor(ObjectID(hex: plan.commit), of: head)
        }
    }
}
