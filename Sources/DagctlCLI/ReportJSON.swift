import DagctlEngine
import DagctlPlanning
import DagctlState

/// The `--output json` document of SPEC §6, built from reports.
enum ReportJSON {
    static func document(_ reports: [EnvironmentReport], extra: [(String, JSONValue)] = []) -> String {
        JSONValue.object([("environments", .array(reports.map(environment)))] + extra).rendered() + "\n"
    }

    static func environment(_ r: EnvironmentReport) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("name", .string(r.name)),
            ("ref", .string(r.ref)),
            ("head", .string(r.head)),
            ("deployed", r.deployed.map(deployment) ?? .null),
            ("errors", .strings(r.errors)),
            ("plan", r.plan.map { plan($0, r) } ?? .null),
        ]
        if let spec = r.spec {
            fields.append(("protected", .bool(spec.protected)))
            fields.append(("backend", .string(spec.backend.kindName)))
        }
        if let pin = r.pin {
            fields.append(("pinned", .object([("file", .string(pin.name)), ("to", .string(pin.to)), ("by", .string(pin.by)),
                                               ("valid", .bool(pin.isValid)), ("problem", .string(pin.problem)),
                                               ("unpin", .string("delete \(pin.name)"))])))
        }
        if let inSync = r.inSync { fields.append(("in_sync", .string(inSync))) }
        if let preview = r.preview { fields.append(("preview", .string(preview))) }
        if !r.actions.isEmpty { fields.append(("actions", .strings(r.actions))) }
        if !r.notes.isEmpty { fields.append(("notes", .strings(r.notes))) }
        if !r.next.isEmpty { fields.append(("next", .strings(r.next))) }
        return .object(fields)
    }

    static func deployment(_ d: Deployment) -> JSONValue {
        .object([("commit", .string(d.commit)), ("version", d.version.isEmpty ? .null : .string(d.version)), ("plan", .string(d.plan)),
                 ("deployed_at", .string(d.deployedAt))])
    }

    static func plan(_ p: Plan, _ r: EnvironmentReport) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("id", .string(p.id)),
            ("status", .string(p.status.rawValue)),
            ("version", p.version.isEmpty ? .null : .string(p.version)),
            ("base", .string(p.base)),
            ("commit", .string(p.commit)),
            ("author", .string(p.author)),
            ("commits_behind", .int(r.commitsBehind)),
            ("changes", .array(p.scope == .sqlmesh ? (p.models ?? []).map(model) : p.changes.map(change))),
            ("scope", .string(p.scope.rawValue)),
            ("select", .strings(p.select)),
            ("scope_mode", p.scope == .sqlmesh ? .null : .string(p.scopeMode ?? "paths")),
            ("command", r.command.map(JSONValue.strings) ?? .null),
            ("required_approvals", .int(r.spec?.requiredApprovals ?? r.approvals?.required ?? 1)),
            ("approvals", .array((r.approvals?.verdicts ?? []).map(approval))),
            ("attempts", .array(p.attempts.map(attempt))),
            ("warnings", .strings(p.warnings)),
            ("environment", .string(p.environment)),
            ("new", .bool(r.isNewPlan)),
            ("status_reason", .string(p.statusReason)),
            ("created_at", .string(p.createdAt)),
            ("rollback", p.rollback.map { .object([("to", .string($0.to)), ("by", .string($0.by))]) } ?? .null),
        ]
        if let reasons = p.reasons {
            fields.append(("reasons", .object(reasons.keys.sorted().map { ($0, .strings(reasons[$0]!)) })))
        }
        if let manifest = p.manifest { fields.append(("manifest", .string(manifest))) }
        if let review = r.approvals {
            fields.append(("approval", .object([
                ("outcome", .string(review.outcome.rawValue)),
                ("valid_approvals", .int(review.validApprovals)),
                ("missing", .int(review.missing)),
                ("eligible", .strings(review.eligible)),
                ("signature_required", .bool(review.signatureRequired)),
            ])))
        }
        if r.spec?.backend.kindName == "kubernetes" {
            fields.append(("manifests", .array(r.manifests.map { JSONValue(jsonText: $0) })))
        }
        if !r.supersedes.isEmpty { fields.append(("supersedes", .strings(r.supersedes))) }
        if !r.waitingFor.isEmpty { fields.append(("waiting_for", .strings(r.waitingFor))) }
        return .object(fields)
    }

    static func change(_ c: Change) -> JSONValue {
        .object([("path", .string(c.path)), ("old_path", .string(c.oldPath)),
                 ("change", .string(c.change.rawValue)), ("category", .string(c.category.rawValue))])
    }

    static func model(_ m: ModelChange) -> JSONValue {
        .object([("model", .string(m.model)), ("change", .string(m.change.rawValue)), ("category", .string(m.category)),
                 ("backfill", .array(m.backfill.map(JSONValue.strings)))])
    }

    static func approval(_ v: ApprovalVerdict) -> JSONValue {
        .object([("by", .string(v.by)), ("decision", .string(v.decision?.rawValue)), ("valid", .bool(v.valid)),
                 ("reason", .string(v.reason)), ("file", .string(v.file)), ("comment", .string(v.comment))])
    }

    static func attempt(_ a: Attempt) -> JSONValue {
        let summary = a.summary.keys.sorted().map { key -> (String, JSONValue) in
            let c = a.summary[key]!
            return (key, .object([("success", .int(c.success)), ("error", .int(c.error)),
                                  ("skipped", .int(c.skipped)), ("warned", .int(c.warned))]))
        }
        return .object([("n", .int(a.n)), ("outcome", .string(a.outcome.rawValue)), ("phase", .string(a.phase.rawValue)),
                        ("summary", .object(summary)), ("reason", .string(a.reason)),
                        ("started_at", .string(a.startedAt)), ("finished_at", .string(a.finishedAt))])
    }
}
