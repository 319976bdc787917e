import DagctlPlanning
import DagctlSpec

/// A state file is sometimes edited by hand, and its values become paths and process arguments:
/// environment names and plan ids name folders (`history/<env>.jsonl`, `logs/<plan>`, `builds/<plan>`),
/// commits and Job names go to git and kubectl, select entries to dbt, and a pid is signalled as a
/// process group. So every such value is checked before anything uses it, and a file with a wrong one
/// is refused like a corrupt file. state/schema.json says the same with patterns, as far as a pattern can.
extension StateFile {
    /// Every problem, each led by its JSON location (`environments.prod.plans[0].id`); empty when the
    /// state can be used.
    public func problems() -> [String] {
        var out: [String] = []
        for name in environments.keys.sorted() {
            let env = environments[name]!
            let at = Names.isValid(name) ? "environments.\(name)" : "environments[\(quoted(name))]"
            if !Names.isValid(name) {
                out.append("\(at): \(quoted(name)) is not an environment name (names match \(Names.pattern))")
            }
            if let head = env.head, !isFullSHA(head) { out.append("\(at).head: \(quoted(head)) is not a full 40-hex commit id") }
            if let inSync = env.inSync, !isFullSHA(inSync) { out.append("\(at).in_sync: \(quoted(inSync)) is not a full 40-hex commit id") }
            if let deployed = env.deployed { out += deployed.problems(environment: name, at: "\(at).deployed") }
            var seen: Set<String> = []
            for (i, plan) in env.plans.enumerated() {
                out += plan.problems(environment: name, at: "\(at).plans[\(i)]")
                if !seen.insert(plan.id).inserted { out.append("\(at).plans[\(i)].id: \(quoted(plan.id)) is there twice") }
            }
        }
        var ids: Set<String> = []
        for (i, entry) in outbox.enumerated() {
            let at = "outbox[\(i)]", event = entry.event
            if !NotificationEvent.isValidID(event.id) { out.append("\(at).event.id: \(quoted(event.id)) is not an event id (evt- and 32 hex digits)") }
            if !ids.insert(event.id).inserted { out.append("\(at).event.id: \(quoted(event.id)) is there twice") }
            if !Names.isValid(event.environment) { out.append("\(at).event.environment: \(quoted(event.environment)) is not an environment name") }
            if !Names.isValidPlanID(event.plan) { out.append("\(at).event.plan: \(quoted(event.plan)) is not a plan id") }
            if !Timestamp.isValid(event.at) { out.append("\(at).event.at: \(quoted(event.at)) is not an RFC 3339 date-time") }
            if event.event == .test { out.append("\(at).event.event: 'test' events are never recorded") }
            if Scope(rawValue: event.scope) == nil { out.append("\(at).event.scope: \(quoted(event.scope)) is not a scope") }
            if !isFullSHA(event.commit) { out.append("\(at).event.commit: \(quoted(event.commit)) is not a full 40-hex commit id") }
            if event.approversNeeded < 0 { out.append("\(at).event.approvers_needed: \(event.approversNeeded) is negative") }
            if let n = event.attempt, n < 1 { out.append("\(at).event.attempt: \(n) is not an attempt number") }
            let names = entry.deliveries.map(\.webhook)
            if Set(names).count != names.count { out.append("\(at).deliveries: a webhook is listed twice (it would be sent the event twice)") }
            for (j, d) in entry.deliveries.enumerated() {
                if !Names.isValid(d.webhook) { out.append("\(at).deliveries[\(j)].webhook: \(quoted(d.webhook)) is not a webhook name") }
                if let next = d.nextAttemptAt, !Timestamp.isValid(next) { out.append("\(at).deliveries[\(j)].next_attempt_at: \(quoted(next)) is not an RFC 3339 date-time") }
                if d.attempts < 0 { out.append("\(at).deliveries[\(j)].attempts: \(d.attempts) is negative") }
            }
        }
        for name in webhooks.keys.sorted() where !Names.isValid(name) {
            out.append("webhooks[\(quoted(name))]: is not a webhook name")
        }
        return out
    }
}

extension Deployment {
    func problems(environment env: String, at: String) -> [String] {
        var out: [String] = []
        if !isFullSHA(commit) { out.append("\(at).commit: \(quoted(commit)) is not a full 40-hex commit id") }
        if !version.isEmpty, Version(version) == nil { out.append("\(at).version: \(quoted(version)) is not a version (1, 2, 1.4.2…)") }
        out += planIDProblems(plan, environment: env, version: version, commit: commit, at: "\(at).plan")
        if let deployedAt, !Timestamp.isValid(deployedAt) { out.append("\(at).deployed_at: \(quoted(deployedAt)) is not an RFC 3339 date-time") }
        return out
    }
}

extension Plan {
    /// The checks of `StateFile.problems` for one plan of environment `env`; history lines get them too.
    func problems(environment env: String, at: String) -> [String] {
        var out: [String] = []
        if environment != env { out.append("\(at).environment: \(quoted(environment)) is not the environment it is filed under, '\(env)'") }
        if !isFullSHA(commit) { out.append("\(at).commit: \(quoted(commit)) is not a full 40-hex commit id") }
        if scope == .sqlmesh {
            // A SQLMesh plan's base is the SQLMesh environment's plan id; it has no version.
            if let base, !isSQLMeshPlanID(base) { out.append("\(at).base: \(quoted(base)) is not a SQLMesh plan id") }
            if !version.isEmpty { out.append("\(at).version: a SQLMesh plan has no version, found \(quoted(version))") }
        } else {
            if let base, !isFullSHA(base) { out.append("\(at).base: \(quoted(base)) is not a full 40-hex commit id") }
            if Version(version) == nil { out.append("\(at).version: \(quoted(version)) is not a version (1, 2, 1.4.2…)") }
        }
        out += planIDProblems(id, environment: env, version: version, commit: commit, at: "\(at).id")
        if id.hasPrefix("\(env)-rollback-") != (rollback != nil) {
            out.append("\(at).rollback: \(rollback == nil ? "a rollback plan id without" : "a rollback") \(rollback == nil ? "the plan it goes back to" : "under a plan id that is not a rollback id")")
        }
        if let rollback {
            if !Names.isValidPlanID(rollback.to) || !rollback.to.hasPrefix("\(env)-") { out.append("\(at).rollback.to: \(quoted(rollback.to)) is not a plan id of '\(env)'") }
            if !Names.isValid(rollback.by) { out.append("\(at).rollback.by: \(quoted(rollback.by)) is not a member name") }
        }
        if let author, !Names.isValid(author) { out.append("\(at).author: \(quoted(author)) is not a member name") }
        if let createdAt, !Timestamp.isValid(createdAt) { out.append("\(at).created_at: \(quoted(createdAt)) is not an RFC 3339 date-time") }
        // Each entry is one argument after dbt's --select: one starting with '-' would be read as an option.
        for (i, entry) in select.enumerated() where entry.isEmpty || entry.hasPrefix("-") || entry.unicodeScalars.contains(where: isControl) {
            out.append("\(at).select[\(i)]: \(quoted(entry)) is not a model selector")
        }
        if scope == .selective && select.isEmpty { out.append("\(at).select: a selective plan selects at least one model") }
        for (i, attempt) in attempts.enumerated() {
            out += attempt.problems(number: i + 1, at: "\(at).attempts[\(i)]")
        }
        return out
    }
}

extension Attempt {
    func problems(number: Int, at: String) -> [String] {
        var out: [String] = []
        // Attempt numbers name log folders (attempt-<n>) and Jobs; they count 1, 2, 3… in order.
        if n != number { out.append("\(at).n: is \(n), expected \(number) (attempts are numbered 1, 2, 3… in order)") }
        if let startedAt, !Timestamp.isValid(startedAt) { out.append("\(at).started_at: \(quoted(startedAt)) is not an RFC 3339 date-time") }
        if let finishedAt, !Timestamp.isValid(finishedAt) { out.append("\(at).finished_at: \(quoted(finishedAt)) is not an RFC 3339 date-time") }
        if let venv = virtualenv, venv.utf8.count != 20 || !venv.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) {
            out.append("\(at).virtualenv: \(quoted(venv)) is not a virtualenv name (20 hex digits)")
        }
        for phase in (jobs ?? [:]).keys.sorted() {
            if Phase(rawValue: phase) == nil { out.append("\(at).jobs: \(quoted(phase)) is not a phase (build or run)") }
            if !isDNSLabel(jobs![phase]!) { out.append("\(at).jobs.\(phase): \(quoted(jobs![phase]!)) is not a Kubernetes Job name (a DNS label)") }
        }
        // A later run signals -pid, the child's process group: 0 or 1 would reach every process.
        if let pid, pid < 2 { out.append("\(at).pid: \(pid) is not a child process id") }
        return out
    }
}

/// A plan id must be a safe folder name and name this environment's plan of that version and commit
/// (the latter is checked only when both are valid): dbt plans are `<env>-v<version>-<10 hex>`, SQLMesh
/// plans (no version) `<env>-<10 hex>`, rollback plans `<env>-rollback-<10 hex>`; each may end in
/// `-<n>` (n ≥ 2) when an earlier plan took the id.
private func planIDProblems(_ id: String, environment env: String, version: String, commit: String, at: String) -> [String] {
    let rollbackPrefix = "\(env)-rollback-"
    let (expected, pattern): (String, String)
    if id.hasPrefix(rollbackPrefix) {
        (expected, pattern) = (rollbackPrefix + commit.prefix(10), "a rollback plan id of environment \(quoted(env)) (\(env)-rollback-<10 hex of the commit>[-<n>])")
    } else if version.isEmpty {
        (expected, pattern) = ("\(env)-\(commit.prefix(10))", "a SQLMesh plan id of environment \(quoted(env)) (\(env)-<10 hex of the commit>[-<n>])")
    } else {
        (expected, pattern) = ("\(env)-v\(version)-\(commit.prefix(10))", "a plan id of environment \(quoted(env)) (\(env)-v<version>-<10 hex of the commit>[-<n>])")
    }
    guard Names.isValidPlanID(id), id.hasPrefix("\(env)-") else { return ["\(at): \(quoted(id)) is not \(pattern)"] }
    // The parts are checked against the plan's own version and commit only when those are valid.
    guard isFullSHA(commit), version.isEmpty || Version(version) != nil else { return [] }
    let rest = id.hasPrefix(expected) ? id.dropFirst(expected.count) : nil
    guard let rest, rest.isEmpty || (rest.hasPrefix("-") && Int(rest.dropFirst()).map { $0 >= 2 } == true) else {
        return ["\(at): \(quoted(id)) does not match its version and commit (expected '\(expected)')"]
    }
    return []
}

/// SQLMesh's plan ids are hex (32 digits today); letters, digits and '_' up to 64 are accepted.
private func isSQLMeshPlanID(_ s: String) -> Bool {
    (1...64).contains(s.utf8.count) && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
}

/// RFC 1123 label, as Kubernetes object names of Jobs are: at most 63 of a-z, 0-9 and '-', alphanumeric at both ends.
func isDNSLabel(_ s: String) -> Bool {
    let b = Array(s.utf8)
    func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
    guard (1...63).contains(b.count), alnum(b.first!), alnum(b.last!) else { return false }
    return b.allSatisfy { alnum($0) || $0 == 45 }
}

private func isControl(_ s: Unicode.Scalar) -> Bool { s.value < 0x20 || s.value == 0x7f }

/// A value shown in single quotes with control characters (NUL, newlines, escapes) spelled out.
func quoted(_ s: String) -> String {
    "'" + String(s.debugDescription.dropFirst().dropLast()) + "'"
}
