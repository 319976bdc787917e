import DagctlSpec

/// A plan's move to another status, with the reason recorded beside it.
public struct PlanTransition: Sendable, Equatable {
    public var plan: String
    public var status: PlanStatus
    public var reason: String

    public init(plan: String, status: PlanStatus, reason: String) {
        self.plan = plan
        self.status = status
        self.reason = reason
    }
}

/// What the decision files say about an environment's plans: the approve step, the same for `plan`
/// (which shows it) and `reconcile` (which carries it out).
public struct Judgement: Sendable, Equatable {
    public var transitions: [PlanTransition] = []
    /// The review of the newest pending plan's approvals, for output.
    public var review: ApprovalReview?
    /// The newest failed plan's retry request, when there is one.
    public var retry: ApprovalRules.RetryVerdict?
    /// Why a retry request changes nothing because it is invalid.
    public var retryIgnored: String?
}

/// The pure rules of a plan's life after it is explained (SPEC §3 "Approve", "Retries", "Statuses").
public enum Lifecycle {
    /// Judges approvals of pending plans and the retry request of the newest plan if it failed.
    /// `approvals` and `retry` read the decision files of a plan id.
    /// `onRef` says whether the ref still holds a plan's commit (a retry never deploys a commit the
    /// branch or tag no longer contains).
    public static func judge(plans: [Plan], env: EnvironmentSpec, members: Members,
                             approvals: (String) -> [LoadedFile<ApprovalFile>], retry: (String) -> LoadedFile<RetryFile>?,
                             verify: SignatureCheck, onRef: (Plan) -> Bool = { _ in true }) -> Judgement {
        var judgement = Judgement()
        for plan in plans where plan.status == .pending {
            let review = ApprovalRules.review(plan: plan, env: env, members: members, files: approvals(plan.id), verify: verify)
            judgement.review = review
            switch review.outcome {
            case .approved:
                let reason = review.approvers.isEmpty ? "no approval required" : "approved by " + review.approvers.joined(separator: ", ")
                judgement.transitions.append(PlanTransition(plan: plan.id, status: .approved, reason: reason))
            case .rejected:
                let by = review.verdicts.filter { $0.valid && $0.decision == .reject }.map(\.by)
                judgement.transitions.append(PlanTransition(plan: plan.id, status: .rejected, reason: "rejected by " + by.joined(separator: ", ")))
            case .waiting:
                break
            }
        }
        if let newest = plans.last, newest.status == .failed, let file = retry(newest.id) {
            let verdict = ApprovalRules.review(retry: file, plan: newest, env: env, members: members, verify: verify)
            judgement.retry = verdict
            if !verdict.valid {
                judgement.retryIgnored = "ignored \(file.path): \(verdict.reason ?? "invalid")"
            } else if !onRef(newest) {
                judgement.retryIgnored = "ignored \(file.path): \(env.ref) no longer holds commit \(newest.commit.prefix(10)) of \(newest.id), so it is not retried"
            } else if let wanted = verdict.retries, newest.attempts.count - 1 < wanted {
                let reason = "retry \(newest.attempts.count) of \(wanted) requested by \(verdict.by ?? "?")"
                judgement.transitions.append(PlanTransition(plan: newest.id, status: .approved, reason: reason))
            }  // else: the retries it asks for have all run
        }
        return judgement
    }

    /// The plans a backend should take next: approved or unfinished ones, oldest first.
    public static func due(_ plans: [Plan]) -> [Plan] { plans.filter { $0.status.isActive } }

    /// Plans older than the newest that must finish before it gets its turn.
    public static func waitingFor(_ plans: [Plan]) -> [String] { plans.dropLast().filter { $0.status.isActive }.map(\.id) }
}

extension Array where Element == Plan {
    /// Applies a transition to the plan it names.
    public mutating func apply(_ transition: PlanTransition) {
        guard let i = firstIndex(where: { $0.id == transition.plan }) else { return }
        self[i].status = transition.status
        self[i].statusReason = transition.reason
    }
}
