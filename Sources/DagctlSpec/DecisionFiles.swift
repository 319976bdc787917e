/// `approvals/<plan-id>/<member>.yaml`: one member's decision on one plan.
public struct ApprovalFile: Sendable, Equatable {
    public enum Decision: String, Sendable { case approve, reject }

    public var plan: String
    public var commit: String
    public var decision: Decision
    public var by: String
    public var comment: String?
    public var signature: String?

    public init(plan: String, commit: String, decision: Decision, by: String, comment: String? = nil, signature: String? = nil) {
        self.plan = plan
        self.commit = commit
        self.decision = decision
        self.by = by
        self.comment = comment
        self.signature = signature
    }

    public static func parse(_ text: String, file: String) throws(SpecIssues) -> ApprovalFile {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        let plan = doc.string("plan", required: true)
        // Read as written: a sha of only digits would otherwise be a YAML number.
        let commit = doc.text("commit")
        if !doc.has("commit") { doc.invalid("commit", "required key is missing") }
        if let commit, !isFullSHA(commit) { doc.invalid("commit", "expected the full 40-hex commit id, found '\(commit)'") }
        let decisionText = doc.string("decision", required: true)
        let decision = decisionText.flatMap(Decision.init(rawValue:))
        if let decisionText, decision == nil { doc.invalid("decision", "'\(decisionText)' is not a decision; use approve or reject") }
        let by = doc.string("by", required: true)
        let comment = doc.text("comment")
        let signature = doc.string("signature")
        doc.finish()
        guard log.isEmpty, let plan, let commit, let decision, let by else { throw SpecIssues(log.issues) }
        return ApprovalFile(plan: plan, commit: commit, decision: decision, by: by, comment: comment, signature: signature)
    }
}

/// `retries/<plan-id>.yaml`: a request to retry a failed plan.
public struct RetryFile: Sendable, Equatable {
    public static let maximum = 3

    public var plan: String
    public var retries: Int
    public var by: String
    public var signature: String?

    public init(plan: String, retries: Int, by: String, signature: String? = nil) {
        self.plan = plan
        self.retries = retries
        self.by = by
        self.signature = signature
    }

    public static func parse(_ text: String, file: String) throws(SpecIssues) -> RetryFile {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        let plan = doc.string("plan", required: true)
        let retries = doc.int("retries", required: true, range: 1...maximum)
        let by = doc.string("by", required: true)
        let signature = doc.string("signature")
        doc.finish()
        guard log.isEmpty, let plan, let retries, let by else { throw SpecIssues(log.issues) }
        return RetryFile(plan: plan, retries: retries, by: by, signature: signature)
    }
}

public func isFullSHA(_ s: String) -> Bool {
    s.utf8.count == 40 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
}

/// `rollbacks/<env>.yaml`: a request to take an environment back to one of its earlier deploys and to
/// pin it there until the file is deleted (SPEC §10).
public struct RollbackFile: Sendable, Equatable {
    public var env: String
    /// The id of a plan that succeeded in the environment.
    public var to: String
    public var by: String
    public var signature: String?

    public init(env: String, to: String, by: String, signature: String? = nil) {
        self.env = env
        self.to = to
        self.by = by
        self.signature = signature
    }

    public static func parse(_ text: String, file: String) throws(SpecIssues) -> RollbackFile {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        let env = doc.string("env", required: true)
        if let env, !Names.isValid(env) { doc.invalid("env", "'\(env)' is not an environment name") }
        let to = doc.string("to", required: true)
        if let to, !Names.isValidPlanID(to) { doc.invalid("to", "'\(to)' is not a plan id; name a plan that succeeded in the environment, e.g. prod-v7-1a2b3c4d5e") }
        let by = doc.string("by", required: true)
        let signature = doc.string("signature")
        doc.finish()
        guard log.isEmpty, let env, let to, let by else { throw SpecIssues(log.issues) }
        return RollbackFile(env: env, to: to, by: by, signature: signature)
    }
}
