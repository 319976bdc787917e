import DagctlPlanning
import DagctlSpec
import DagctlState

/// Everything dagctl knows about one environment after a run or a preview: what is deployed, the
/// newest plan, and what went wrong. Outputs (text, JSON, markdown) are rendered from this.
public struct EnvironmentReport: Sendable {
    public var name: String
    public var spec: EnvironmentSpec?
    public var ref: String?
    public var head: String?
    public var deployed: Deployment?
    public var errors: [String] = []
    /// The environment's newest plan (a freshly explained one in a preview).
    public var plan: Plan?
    /// SQLMesh projects: the commit at which SQLMesh reports the environment in sync (no plan due).
    public var inSync: String?
    /// Commits the head is ahead of the newest plan's commit.
    public var commitsBehind: Int = 0
    /// True when the plan was explained by this run (or would be, in a preview).
    public var isNewPlan = false
    /// Older pending plans the new plan supersedes.
    public var supersedes: [String] = []
    /// Plans that must finish before the newest plan gets its turn.
    public var waitingFor: [String] = []
    public var approvals: ApprovalReview?
    /// What this run did, in order, one line each.
    public var actions: [String] = []
    /// What a preview or run noticed that changes nothing (an invalid retry request, say).
    public var notes: [String] = []
    /// A plan failed during this run.
    public var failed = false
    /// Kubernetes environments: the Job objects of the newest plan's next (or current) attempt, as JSON.
    public var manifests: [String] = []

    public init(name: String, spec: EnvironmentSpec? = nil) {
        self.name = name
        self.spec = spec
        self.ref = spec?.ref
    }

    /// The newest plan still waits for approval or execution.
    public var isLive: Bool { plan?.status.isLive ?? false }

    /// The run phase's command for the plan, as the plan kind shows it (no backend paths).
    public var command: [String]?
}
