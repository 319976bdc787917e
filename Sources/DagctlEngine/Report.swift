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
    /// Set for `plan --ref/--base`: what the preview is of, said wherever the plan is shown.
    public var preview: String?
    /// What people can do next, as commands to copy: the approve line per member who may approve a
    /// pending plan, the retry line for a failed one.
    public var next: [String] = []
    /// A plan failed during this run.
    public var failed = false
    /// Kubernetes environments: the Job objects of the newest plan's next (or current) attempt, as JSON.
    public var manifests: [String] = []
    /// `rollbacks/<env>.yaml`, judged, when it exists: the environment is pinned (or held, when invalid).
    public var pin: Pin?

    public init(name: String, spec: EnvironmentSpec? = nil) {
        self.name = name
        self.spec = spec
        self.ref = spec?.ref
    }

    /// The newest plan still waits for approval or execution.
    public var isLive: Bool { plan?.status.isLive ?? false }

    /// The run phase's command for the plan, as the plan kind shows it (no backend paths).
    public var command: [String]?

    /// Shows `rollbacks/<env>.yaml` as judged; one that does not count is also an error (it holds the
    /// environment).
    public mutating func show(_ pin: Pin?) {
        self.pin = pin
        if let pin, !pin.isValid { errors.append(pin.summary) }
    }
}

/// The commands that move a plan on, for the people who can run them.
public enum NextSteps {
    public static func lines(for plan: Plan?, env: EnvironmentSpec?, members: Members, review: ApprovalReview?) -> [String] {
        guard let plan, let env else { return [] }
        // The usual place of an ed25519 key; the member's own key, listed for them in members.yaml.
        let key = { (_: String) in env.requireSignature ? " --key ~/.ssh/id_ed25519" : "" }
        switch plan.status {
        case .pending:
            let eligible = review?.eligible ?? ApprovalRules.eligible(env: env, members: members, author: plan.author)
            if eligible.isEmpty, env.requireSignature {
                // Allowed but unable to sign: the usual first-day gap.
                let keyless = (env.protected ? env.allowlist : members.all.map(\.name)).filter {
                    ApprovalRules.refusal(of: $0, env: env, members: members, author: plan.author) == nil && (members[$0]?.keys.isEmpty ?? false)
                }
                if !keyless.isEmpty { return ["add an ssh key (keys: [\"ssh-ed25519 …\"]) in members.yaml for \(keyless.joined(separator: " or ")) so they can sign approvals"] }
            }
            return eligible.map { "dagctl approve \(plan.id) --as \($0)\(key($0))" }
        case .failed where plan.attempts.count <= RetryFile.maximum:
            let who = members.all.map(\.name).filter {
                ApprovalRules.refusal(of: $0, env: env, members: members, author: plan.author, asAuthor: false) == nil
                    && (!env.requireSignature || !(members[$0]?.keys.isEmpty ?? true))
            }
            guard let first = who.first else { return ["dagctl logs \(plan.id)"] }
            let others = who.count > 1 ? "   (or as \(who.dropFirst().joined(separator: ", ")))" : ""
            return ["dagctl logs \(plan.id)", "dagctl retry \(plan.id) --as \(first)\(key(first))\(others)"]
        default:
            return []
        }
    }
}
