import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Writing approval and retry files (`dagctl approve`, `dagctl retry`): find the plan's details, refuse
/// what the rules would reject, sign the exact payload, and write the file where reconcile reads it.
public struct DecisionWriter {
    public let planner: Planner

    /// Finished plans of an environment (the state store's history), so a superseded plan is
    /// recognised as such rather than explained afresh.
    public let history: (String) throws -> [Plan]

    public init(planner: Planner, history: @escaping (String) throws -> [Plan] = { _ in [] }) {
        self.planner = planner
        self.history = history
    }

    /// The plan with this id and its environment: from the state file, or explained the way `plan` does
    /// (at the commit named by the id, against the deployed commit).
    public func findPlan(_ id: String) throws -> (Plan, EnvironmentSpec) {
        guard Names.isValidPlanID(id) else {
            throw EngineError("'\(id)' is not a plan id (expected <env>-v<version>-<10 hex>, or <env>-<10 hex> for a SQLMesh plan)")
        }
        // The environments whose name the id starts with, longest first (an id of `prod-eu` also starts
        // with `prod-`; `prod-rollback-…` may be prod's rollback or a plan of `prod-rollback`).
        let candidates = planner.desired.environments.filter { id.hasPrefix($0.name + "-") }.sorted { $0.name.count > $1.name.count }
        var firstError: Error?
        for env in candidates {
            do { return (try findPlan(id, in: env), env) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
        if let issues = planner.desired.environmentIssues.first(where: { id.hasPrefix($0.key + "-") }) {
            throw EngineError("environment '\(issues.key)' is invalid: " + issues.value.map(\.description).joined(separator: "; "))
        }
        throw EngineError("plan '\(id)' belongs to no environment in \(planner.desired.root)/environments")
    }

    private func findPlan(_ id: String, in env: EnvironmentSpec) throws -> Plan {
        if let plan = planner.state.environments[env.name]?.plans.first(where: { $0.id == id })
            ?? (try? history(env.name))?.last(where: { $0.id == id }) {
            return plan
        }
        // A rollback plan is approved only once reconcile has recorded it: its id comes from the target's
        // commit alone, so an approval written ahead for a request withdrawn before reconcile saw it would
        // otherwise count for a later request to the same target. Recorded, the id is taken for good.
        if id.dropFirst(env.name.count + 1).hasPrefix("rollback-") {
            throw EngineError("plan '\(id)' is not recorded yet: a rollback plan is approved once reconcile has recorded it (run dagctl reconcile --env \(env.name); the plan then waits for this approval)")
        }
        // <env>-v<version>-<10 hex>[-<n>] (dbt) or <env>-<10 hex>[-<n>] (SQLMesh): find the commit's hex part.
        let rest = id.dropFirst(env.name.count + 1).split(separator: "-")
        let shortSHA = String((rest.first?.hasPrefix("v") == true ? rest.dropFirst().first : rest.first) ?? "")
        let commit: ObjectID
        do { commit = try planner.repo.resolveCommit(shortSHA) } catch {
            throw EngineError("plan '\(id)' is not in the state file and its commit \(shortSHA) is not in the repository")
        }
        let kind = try planner.cycle.kind(at: commit, label: commit.short)
        // A SQLMesh plan is approved as reconcile recorded it, with the SQLMesh plan it applies on top of
        // (its base): the check right before applying compares with that. An approval written from a
        // preview would not be bound to the base the approver saw.
        guard kind.buildsImage else {
            throw EngineError("plan '\(id)' is not recorded yet: a SQLMesh plan is approved once reconcile has recorded it (run dagctl reconcile --env \(env.name); the plan then waits for this approval)")
        }
        let envState = planner.state.environments[env.name] ?? EnvironmentState()
        let context = planner.explainContext(env, plans: envState.plans, backend: planner.backend(for: env), kind: kind)
        guard let plan = try kind.explain(env: env, head: commit, base: envState.deployed?.commit, label: commit.short, context: context) else {
            throw EngineError("commit \(shortSHA) gives no plan for \(env.name): SQLMesh reports it in sync")
        }
        guard plan.id == id else {
            throw EngineError("commit \(shortSHA) has version \(plan.version), so its plan is '\(plan.id)', not '\(id)'")
        }
        return plan
    }

    /// The environment's plans, archived and current (a rollback's target is one of them).
    func plans(of env: String) -> [Plan] {
        ((try? history(env)) ?? []) + (planner.state.environments[env]?.plans ?? [])
    }

    /// Writes `rollbacks/<env>.yaml` asking to go back to `target` and to stay there; returns its path,
    /// the target plan and what the next reconcile will do. Refuses what reconcile would not accept, so
    /// an invalid file is never written.
    public func rollback(env name: String, to targetID: String, as member: String, keyPath: String?,
                         force: Bool = false) throws -> (path: String, target: Plan, next: String) {
        guard let env = planner.desired.environment(name) else {
            if let issues = planner.desired.environmentIssues[name] {
                throw EngineError("environment '\(name)' is invalid: " + issues.map(\.description).joined(separator: "; "))
            }
            throw EngineError("no environment '\(name)' in \(planner.desired.root)/environments")
        }
        let plans = plans(of: name)
        if let why = RollbackRules.targetProblem(targetID, env: name, plans: plans) {
            let deployed = plans.filter { $0.status == .succeeded }.suffix(5).map(\.id)
            throw EngineError("refused: \(why)" + (deployed.isEmpty ? "; nothing has been deployed there yet" : "; the last that did: \(deployed.joined(separator: ", "))"))
        }
        let target = plans.last { $0.id == targetID }!
        let path = DesiredStatePaths.rollback(root: planner.desired.root, env: name)
        if !force, let existing = planner.desired.rollback(for: name) {
            let what = (try? existing.result.get()).map { "to \($0.to) by \($0.by)" } ?? "a file that does not parse"
            throw EngineError("refused: \(existing.path) exists (\(what)); pass --force to replace it, or delete it to unpin '\(name)'")
        }
        if let refusal = ApprovalRules.refusal(of: member, env: env, members: planner.desired.members, author: nil, asAuthor: false) {
            throw EngineError("refused: \(refusal)")
        }
        let payload = SignedPayload.rollback(environment: name, to: target.id, commit: target.commit, by: member)
        let signature = try sign(payload, member: member, env: env, keyPath: keyPath)
        var text = "env: \(name)\nto: \(target.id)\nby: \(member)\n"
        if let signature { text += Self.block("signature", signature) }
        // What reconcile will make of it, checked on the very bytes written.
        let file = LoadedFile(stem: name, path: path, result: Result { () throws(SpecIssues) in try RollbackFile.parse(text, file: path) })
        let pin = RollbackRules.pin(file, env: env, members: planner.desired.members, plans: plans, verify: planner.cycle.verify)
        if let problem = pin.problem { throw EngineError("refused: \(problem)") }
        try write(text, to: path)
        return (path, target, nextStep(env: name, pin: pin, target: target, plans: plans))
    }

    /// What the next reconcile makes of the request, in words: the rule reconcile decides by.
    func nextStep(env: String, pin: Pin, target: Plan, plans: [Plan]) -> String {
        switch RollbackRules.decision(pin, plans: plans, deployedCommit: planner.state.environments[env]?.deployed?.commit) {
        case .keep(let plan)?:
            return plan.status == .rejected
                ? "the rollback plan \(plan.id) for this request was rejected and stands: to ask again, delete the file, let reconcile run once, then ask again"
                : "the rollback plan \(plan.id) (\(plan.status.rawValue)) already answers this request"
        case .rollback?:
            let id = Plan.rollbackID(environment: env, commit: target.commit, taken: Set(plans.map(\.id)))
            return "commit it to the desired-state repository; the next reconcile explains the rollback plan \(id), which needs \(env)'s approvals like any plan"
        default:
            return "\(env) is deployed at that commit already: the file pins it there"
        }
    }

    /// Writes `approvals/<plan>/<member>.yaml`; returns its path. Refuses what would not count.
    public func approve(planID: String, as member: String, decision: ApprovalFile.Decision, comment: String?,
                        keyPath: String?, force: Bool = false) throws -> String {
        let (plan, env) = try findPlan(planID)
        if plan.status != .pending {
            throw EngineError("plan \(plan.id) is \(plan.status.rawValue); only a pending plan can be approved or rejected")
        }
        let path = DesiredStatePaths.approval(root: planner.desired.root, plan: plan.id, member: member)
        if !force, FileManager.default.fileExists(atPath: path) {
            let existing = (try? ApprovalFile.parse(DesiredState.readText(path, allowLink: false).get(), file: path))
                .map { "\($0.decision.rawValue) by \($0.by)" + ($0.comment.map { ", comment \"\($0)\"" } ?? "") + ($0.signature == nil ? ", unsigned" : ", signed") }
                ?? "a file that does not parse"
            throw EngineError("refused: \(path) exists (\(existing)); pass --force to replace it")
        }
        if let refusal = ApprovalRules.refusal(of: member, env: env, members: planner.desired.members, author: plan.author) {
            throw EngineError("refused: \(refusal)")
        }
        let payload = SignedPayload.approval(plan: plan, decision: decision, by: member, comment: comment)
        let signature = try sign(payload, member: member, env: env, keyPath: keyPath)
        var text = "plan: \(plan.id)\ncommit: \(plan.commit)\ndecision: \(decision.rawValue)\nby: \(member)\n"
        if let comment { text += "comment: \(Self.quoted(comment))\n" }
        if let signature { text += Self.block("signature", signature) }
        try write(text, to: path)
        return path
    }

    /// Writes `retries/<plan>.yaml` asking for one more attempt; returns its path and the retries asked.
    public func retry(planID: String, as member: String, keyPath: String?) throws -> (String, Int) {
        let (plan, env) = try findPlan(planID)
        guard plan.status == .failed else {
            throw EngineError("plan \(plan.id) is \(plan.status.rawValue); only a failed plan can be retried")
        }
        let wanted = max(plan.attempts.count, 1)
        guard wanted <= RetryFile.maximum else {
            throw EngineError("refused: plan \(plan.id) already had \(plan.attempts.count) attempts; at most \(RetryFile.maximum) retries are allowed")
        }
        if let refusal = ApprovalRules.refusal(of: member, env: env, members: planner.desired.members, author: plan.author, asAuthor: false) {
            throw EngineError("refused: \(refusal)")
        }
        let payload = SignedPayload.retry(plan: plan, retries: wanted, by: member)
        let signature = try sign(payload, member: member, env: env, keyPath: keyPath)
        var text = "plan: \(plan.id)\nretries: \(wanted)\nby: \(member)\n"
        if let signature { text += Self.block("signature", signature) }
        let path = DesiredStatePaths.retry(root: planner.desired.root, plan: plan.id)
        try write(text, to: path)
        return (path, wanted)
    }

    /// Signs with `keyPath` after checking that the key is one of the member's, so a file that would be
    /// invalid is never written.
    func sign(_ payload: String, member: String, env: EnvironmentSpec, keyPath: String?) throws -> String? {
        guard let keyPath else {
            if env.requireSignature {
                throw EngineError("refused: environment '\(env.name)' requires a signature; pass --key PATH (an ssh private key listed for \(member) in members.yaml)")
            }
            return nil
        }
        let signature = try SSHSignatures.sign(payload: payload, keyPath: keyPath)
        if let problem = SSHSignatures.verify(payload: payload, signature: signature, member: planner.desired.members[member]!) {
            throw EngineError("refused: the key \(keyPath) is not one of \(member)'s keys in members.yaml (\(problem))")
        }
        return signature
    }

    func write(_ text: String, to path: String) throws {
        do { try StateStore.atomicWrite(Data(text.utf8), to: path) } catch { throw EngineError("\(error)") }
    }

    static func quoted(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self).dropFirst().dropLast().description
    }

    static func block(_ key: String, _ value: String) -> String {
        "\(key): |\n" + value.split(separator: "\n", omittingEmptySubsequences: true).map { "  \($0)\n" }.joined()
    }
}

/// Where decision files live in the desired-state directory; every name has been validated first.
enum DesiredStatePaths {
    static func approval(root: String, plan: String, member: String) -> String {
        precondition(Names.isValidPlanID(plan) && Names.isValid(member))
        return "\(root)/approvals/\(plan)/\(member).yaml"
    }

    static func rollback(root: String, env: String) -> String {
        precondition(Names.isValid(env))
        return "\(root)/rollbacks/\(env).yaml"
    }

    static func retry(root: String, plan: String) -> String {
        precondition(Names.isValidPlanID(plan))
        return "\(root)/retries/\(plan).yaml"
    }
}
