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

    /// Resolves the ref and asks the plan kind whether a new plan is due.
    public func observe(_ env: EnvironmentSpec, state: EnvironmentState, ref: String? = nil) throws -> Observation {
        let ref = ref ?? env.ref
        let head = try repo.resolveRef(ref)
        let kind = try kind(at: head, label: ref)
        var observation = Observation(ref: ref, head: head, kind: kind,
                                      decision: try kind.trigger(env: env, head: head, state: state, label: ref))
        if case .keep(let plan) = observation.decision {
            observation.commitsBehind = try repo.commitsAhead(head, of: ObjectID(hex: plan.commit))
        }
        return observation
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
            guard let head else { return true }
            return repo.isAncestor(ObjectID(hex: plan.commit), of: head)
        }
    }
}
