import DagctlSpec

/// The exact bytes a member signs (SPEC §2.3), so a signature cannot be replayed onto another plan,
/// commit, scope, selection or decision.
public enum SignedPayload {
    public static func approval(plan: Plan, decision: ApprovalFile.Decision, by: String, comment: String?) -> String {
        lines(["dagctl-approval-v2"] + decided(plan, decision, by) + ["comment: \((comment ?? "").replacingOccurrences(of: "\n", with: "\\n"))"])
    }

    /// The first payload (no comment line). No longer accepted: a comment shown under a member's name
    /// must be the member's words; a file signed this way is reported as such.
    public static func approvalV1(plan: Plan, decision: ApprovalFile.Decision, by: String) -> String {
        lines(["dagctl-approval-v1"] + decided(plan, decision, by))
    }

    private static func decided(_ plan: Plan, _ decision: ApprovalFile.Decision, _ by: String) -> [String] {
        ["plan: \(plan.id)", "environment: \(plan.environment)", "commit: \(plan.commit)", "scope: \(plan.scope.rawValue)",
         "select: \(plan.select.joined(separator: " "))", "decision: \(decision.rawValue)", "by: \(by)"]
    }

    /// Every line ends in a newline.
    private static func lines(_ lines: [String]) -> String { lines.map { $0 + "\n" }.joined() }

    public static func retry(plan: Plan, retries: Int, by: String) -> String {
        """
        dagctl-retry-v1
        plan: \(plan.id)
        environment: \(plan.environment)
        commit: \(plan.commit)
        retries: \(retries)
        by: \(by)

        """
    }
}

/// Checks a signature over a payload for a member; returns why it fails, or nil when it verifies.
/// Injected so that judging stays pure (the real one runs `ssh-keygen -Y verify`).
public typealias SignatureCheck = (_ payload: String, _ signature: String, _ member: Member) -> String?

/// One approval file and what the rules made of it.
public struct ApprovalVerdict: Sendable, Equatable {
    public var file: String
    public var by: String
    public var decision: ApprovalFile.Decision?
    public var valid: Bool
    public var reason: String?
    public var comment: String?
}

public struct ApprovalReview: Sendable, Equatable {
    public enum Outcome: String, Sendable { case approved, rejected, waiting }

    public var verdicts: [ApprovalVerdict]
    public var required: Int
    public var outcome: Outcome
    /// Members whose approval would count now.
    public var eligible: [String]
    public var signatureRequired: Bool

    /// Distinct members with a valid approval: approvals count per person, never per file.
    public var validApprovals: Int { ApprovalReview.approvers(verdicts).count }
    public var approvers: [String] { ApprovalReview.approvers(verdicts) }

    static func approvers(_ verdicts: [ApprovalVerdict]) -> [String] {
        var seen = Set<String>()
        return verdicts.filter { $0.valid && $0.decision == .approve && seen.insert($0.by).inserted }.map(\.by)
    }
    public var missing: Int { max(0, required - validApprovals) }

    /// "waiting for 1 approval from bob or carol, signed"
    public var waitingSummary: String {
        let who: String
        switch eligible.count {
        case 0: who = "nobody yet (no member passes the rules now: check the allowlist, required_role, that the author may not approve, and, where signatures are required, members' ssh keys)"
        case 1: who = eligible[0]
        default: who = eligible.dropLast().joined(separator: ", ") + " or " + eligible.last!
        }
        let n = missing
        return "waiting for \(n) approval\(n == 1 ? "" : "s") from \(who)\(signatureRequired ? ", signed" : "")"
    }
}

/// Who may decide on a plan, and whether a decision file counts (SPEC §3, "Approve" and "Retries").
public enum ApprovalRules {
    /// Why `member` may not approve, reject or ask for a retry of `plan` in `env`, or nil when they may.
    /// `asAuthor` is false for retries: the author may ask for one.
    public static func refusal(of member: String, env: EnvironmentSpec, members: Members, author: String?,
                               asAuthor: Bool = true) -> String? {
        guard let m = members[member] else { return "'\(member)' is not a member in members.yaml" }
        guard env.protected else { return nil }
        if !env.allowlist.contains(member) {
            return "'\(member)' is not on the allowlist of protected environment '\(env.name)' (\(env.allowlist.joined(separator: ", ")))"
        }
        if let role = env.requiredRole, !m.roles.contains(role) {
            return "'\(member)' does not hold the role '\(role)' required by '\(env.name)'"
        }
        if asAuthor, let author, author == member {
            return "'\(member)' authored the version bump of this plan and may not approve it on protected environment '\(env.name)'"
        }
        return nil
    }

    public static func eligible(env: EnvironmentSpec, members: Members, author: String?) -> [String] {
        let names = env.protected ? env.allowlist : members.all.map(\.name)
        return names.filter { name in
            refusal(of: name, env: env, members: members, author: author) == nil
                && (!env.requireSignature || !(members[name]?.keys.isEmpty ?? true))
        }.sorted()
    }

    public static func review(plan: Plan, env: EnvironmentSpec, members: Members,
                              files: [LoadedFile<ApprovalFile>], verify: SignatureCheck) -> ApprovalReview {
        var verdicts: [ApprovalVerdict] = []
        for file in files {
            switch file.result {
            case .failure(let issues):
                verdicts.append(ApprovalVerdict(file: file.path, by: file.stem, decision: nil, valid: false,
                                                reason: "invalid file: " + issues.issues.map(\.description).joined(separator: "; ")))
            case .success(let approval):
                let reason = problem(with: approval, stem: file.stem, plan: plan, env: env, members: members, verify: verify)
                verdicts.append(ApprovalVerdict(file: file.path, by: approval.by, decision: approval.decision,
                                                valid: reason == nil, reason: reason, comment: approval.comment))
            }
        }
        let required = env.requiredApprovals
        let outcome: ApprovalReview.Outcome
        if verdicts.contains(where: { $0.valid && $0.decision == .reject }) {
            outcome = .rejected
        } else if ApprovalReview.approvers(verdicts).count >= required {
            outcome = .approved
        } else {
            outcome = .waiting
        }
        let already = Set(verdicts.filter(\.valid).map(\.by))
        return ApprovalReview(verdicts: verdicts, required: required, outcome: outcome,
                              eligible: eligible(env: env, members: members, author: plan.author).filter { !already.contains($0) },
                              signatureRequired: env.requireSignature)
    }

    static func problem(with approval: ApprovalFile, stem: String, plan: Plan, env: EnvironmentSpec,
                        members: Members, verify: SignatureCheck) -> String? {
        if approval.by != stem { return "'by: \(approval.by)' differs from the file name '\(stem)'" }
        if approval.plan != plan.id { return "it is for plan '\(approval.plan)', not '\(plan.id)'" }
        if approval.commit != plan.commit { return "it is for commit \(approval.commit.prefix(10)), not the plan's \(plan.commit.prefix(10))" }
        if let refusal = refusal(of: approval.by, env: env, members: members, author: plan.author) { return refusal }
        let member = members[approval.by]!
        let payload = SignedPayload.approval(plan: plan, decision: approval.decision, by: approval.by, comment: approval.comment)
        let problem = signatureProblem(approval.signature, payload: payload, member: member, env: env, verify: verify)
        if problem != nil, let signature = approval.signature,
           verify(SignedPayload.approvalV1(plan: plan, decision: approval.decision, by: approval.by), signature, member) == nil {
            return "signed over the old dagctl-approval-v1 payload, which does not cover the comment; sign it again with this dagctl (dagctl approve \(plan.id) --as \(approval.by) --key …)"
        }
        return problem
    }

    static func signatureProblem(_ signature: String?, payload: String, member: Member, env: EnvironmentSpec,
                                 verify: SignatureCheck) -> String? {
        guard let signature, !signature.isEmpty else {
            return env.requireSignature ? "a signature is required in environment '\(env.name)' but the file has none" : nil
        }
        if member.keys.isEmpty { return "'\(member.name)' has no keys in members.yaml to verify the signature with" }
        // A signature that is present must verify even where none is required: a bad one is never ignored.
        return verify(payload, signature, member).map { "signature does not verify: \($0)" }
    }

    /// A retry request and what the rules made of it.
    public struct RetryVerdict: Sendable, Equatable {
        public var file: String
        public var by: String?
        public var retries: Int?
        public var valid: Bool
        public var reason: String?
    }

    public static func review(retry file: LoadedFile<RetryFile>, plan: Plan, env: EnvironmentSpec, members: Members,
                              verify: SignatureCheck) -> RetryVerdict {
        switch file.result {
        case .failure(let issues):
            return RetryVerdict(file: file.path, by: nil, retries: nil, valid: false,
                                reason: "invalid file: " + issues.issues.map(\.description).joined(separator: "; "))
        case .success(let retry):
            var reason: String?
            if retry.plan != plan.id { reason = "it is for plan '\(retry.plan)', not '\(plan.id)'" }
            else if let refusal = refusal(of: retry.by, env: env, members: members, author: plan.author, asAuthor: false) { reason = refusal }
            else {
                let payload = SignedPayload.retry(plan: plan, retries: retry.retries, by: retry.by)
                reason = signatureProblem(retry.signature, payload: payload, member: members[retry.by]!, env: env, verify: verify)
            }
            return RetryVerdict(file: file.path, by: retry.by, retries: retry.retries, valid: reason == nil, reason: reason)
        }
    }
}
