import DagctlSpec

/// An environment pinned by `rollbacks/<env>.yaml` (SPEC §10): a valid file names the plan it goes
/// back to; an invalid one still holds the environment (nothing new starts) until it is fixed or
/// deleted, because a file meant to stop deploys must never be read as "carry on".
public struct Pin: Sendable, Equatable {
    /// The file, as a path.
    public var file: String
    /// The environment's file name, for messages: `rollbacks/prod.yaml`.
    public var name: String
    public var by: String?
    public var to: String?
    /// The plan gone back to, when the file is valid.
    public var target: Plan?
    /// Why the file is refused, when it is.
    public var problem: String?

    public var isValid: Bool { problem == nil && target != nil }

    /// Whether `plan` is the rollback this file asks for (the one plan a pin lets start): the same
    /// target, asked by the same member (who is the plan's author, so may not approve it).
    public func allows(_ plan: Plan) -> Bool {
        isValid && plan.rollback?.to == target?.id && plan.rollback?.by == by && plan.rollback?.withdrawn != true
    }

    /// One line for output: what pins the environment and how to unpin it.
    public var summary: String {
        if let problem {
            return "held by \(name), which is invalid: \(problem); nothing new is deployed until it is fixed or deleted"
        }
        return "pinned by \(name) at \(to ?? "?") (by \(by ?? "?")): new versions are explained but not deployed; delete \(name) to unpin"
    }
}

extension DesiredState {
    /// What `rollbacks/<env>.yaml` says, judged; nil when there is no such file. `plans` are the
    /// environment's archived and current plans (the target must have succeeded among them), read
    /// only when the file exists: a history file can be long.
    public func pin(_ env: EnvironmentSpec, plans: @autoclosure () -> [Plan], verify: SignatureCheck) -> Pin? {
        rollback(for: env.name).map { RollbackRules.pin($0, env: env, members: members, plans: plans(), verify: verify) }
    }
}

/// The exact bytes a member signs to ask for a rollback (SPEC §10).
extension SignedPayload {
    public static func rollback(environment: String, to target: String, commit: String, by: String) -> String {
        """
        dagctl-rollback-v1
        environment: \(environment)
        to: \(target)
        commit: \(commit)
        by: \(by)

        """
    }
}

public enum RollbackRules {
    /// Judges `rollbacks/<env>.yaml`. `plans` are the environment's plans, archived and current; the
    /// target must be one of them that succeeded. The member asking follows the rules of who may ask
    /// for a retry (allowlist, role and signature on a protected environment; being the author of the
    /// target is no bar). The rollback plan then needs approvals like any plan.
    public static func pin(_ file: LoadedFile<RollbackFile>, env: EnvironmentSpec, members: Members, plans: [Plan],
                           verify: SignatureCheck) -> Pin {
        var pin = Pin(file: file.path, name: "rollbacks/" + (file.path.split(separator: "/").last.map(String.init) ?? "\(env.name).yaml"))
        switch file.result {
        case .failure(let issues):
            pin.problem = "invalid file: " + issues.issues.map(\.description).joined(separator: "; ")
        case .success(let rollback):
            pin.by = rollback.by
            pin.to = rollback.to
            pin.problem = problem(with: rollback, env: env, members: members, plans: plans, verify: verify)
            if pin.problem == nil { pin.target = plans.last { $0.id == rollback.to } }
        }
        return pin
    }

    /// Why a rollback request is refused, or nil (also what `dagctl rollback` checks before writing).
    public static func problem(with rollback: RollbackFile, env: EnvironmentSpec, members: Members, plans: [Plan],
                               verify: SignatureCheck) -> String? {
        if rollback.env != env.name { return "'env: \(rollback.env)' differs from the file name '\(env.name)'" }
        if let why = targetProblem(rollback.to, env: env.name, plans: plans) { return why }
        let target = plans.last { $0.id == rollback.to }!
        if let refusal = ApprovalRules.refusal(of: rollback.by, env: env, members: members, author: nil, asAuthor: false) {
            return refusal
        }
        let payload = SignedPayload.rollback(environment: env.name, to: target.id, commit: target.commit, by: rollback.by)
        return ApprovalRules.signatureProblem(rollback.signature, payload: payload, member: members[rollback.by]!, env: env, verify: verify)
    }

    /// Why a request cannot go back to `id`, or nil when `id` is one of the environment's `plans`
    /// (archived and current) that succeeded.
    public static func targetProblem(_ id: String, env: String, plans: [Plan]) -> String? {
        guard let plan = plans.last(where: { $0.id == id }) else {
            return "\(id) is not a plan of '\(env)'; name one that succeeded there (dagctl status --env \(env) --history lists them)"
        }
        guard plan.status == .succeeded else {
            return "\(id) never succeeded in '\(env)' (it is \(plan.status.rawValue)); only a plan that was deployed can be rolled back to"
        }
        return nil
    }

    /// What a pin decides before the plan kind's own trigger is asked: go back (a rollback plan is
    /// due), keep the rollback plan in hand, or nil to go on as usual (the rollback is done, or there
    /// is no valid pin).
    public static func decision(_ pin: Pin?, plans: [Plan], deployedCommit: String?) -> NextPlanDecision? {
        guard let pin, pin.isValid, let target = pin.target, deployedCommit != target.commit else { return nil }
        if let newest = plans.last, pin.allows(newest), newest.status != .superseded { return .keep(newest) }
        // Plans not yet started give way; one under way finishes first, the rollback waits its turn.
        return .rollback(to: target, supersede: plans.filter { $0.status == .pending || $0.status == .approved }.map(\.id))
    }

    /// Withdraws the rollback plans no pin asks for any more (the file was deleted, or now names another
    /// plan or member): one not started or failed is superseded, so it is never deployed or retried;
    /// one under way finishes. Each is marked withdrawn, so that asking again makes a new plan (a
    /// rejected rollback is not the answer to a new request). A file that does not count withdraws
    /// nothing: it holds everything, and once fixed its plan goes on with its approvals. Returns a line
    /// for each plan superseded.
    public static func withdraw(_ plans: inout [Plan], pin: Pin?) -> [String] {
        var lines: [String] = []
        for i in plans.indices {
            guard plans[i].rollback?.withdrawn != true, isWithdrawn(plans[i], by: pin), !plans[i].status.isInProgress else { continue }
            plans[i].rollback?.withdrawn = true
            guard [.pending, .approved, .failed].contains(plans[i].status) else { continue }
            let why = pin.map { "\($0.name) now asks for \($0.to ?? "?") by \($0.by ?? "?")" } ?? "rollbacks/\(plans[i].environment).yaml was deleted"
            plans[i].status = .superseded
            plans[i].statusReason = "withdrawn: \(why)"
            lines.append("superseded \(plans[i].id): withdrawn: \(why); it is not run or retried")
        }
        return lines
    }

    /// Whether `plan` is a rollback that `pin` no longer asks for: the file was deleted, or it names
    /// another target or member. A file that does not count withdraws nothing (it holds).
    public static func isWithdrawn(_ plan: Plan, by pin: Pin?) -> Bool {
        guard plan.rollback != nil else { return false }
        guard let pin else { return true }
        return pin.isValid && !pin.allows(plan)
    }

    /// Why the warehouse may not be what `deployed` says: the newest plan that reached its run phase is
    /// a rollback that did not succeed, so part of it may have run. The next dbt plan then builds
    /// everything, whatever its diff says. `plans` are the environment's archived and current plans.
    public static func unsettled(_ plans: [Plan]) -> String? {
        guard let ran = plans.last(where: { $0.attempts.contains { $0.phase == .run } }),
              ran.rollback != nil, ran.status != .succeeded, !ran.status.isInProgress else { return nil }
        return "the rollback \(ran.id) reached its run phase and did not finish (\(ran.status.rawValue)), so the warehouse may hold part of it"
    }
}
