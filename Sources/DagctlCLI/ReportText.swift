import DagctlEngine
import DagctlPlanning
import DagctlState

/// Compact, human output: per environment, what is deployed, what changed (by category), the scope
/// and exact command, who may approve and what is missing, and what the run did.
enum ReportText {
    static let maxPathsPerCategory = 15

    static func render(_ reports: [EnvironmentReport]) -> String {
        reports.map(environment).joined(separator: "\n")
    }

    static func short(_ sha: String?) -> String { sha.map { String($0.prefix(10)) } ?? "-" }

    static func environment(_ r: EnvironmentReport) -> String {
        var lines: [String] = []
        var title = r.name
        if let spec = r.spec {
            title += spec.protected ? "  (protected" : "  (unprotected"
            title += ", \(spec.backend.kindName)"
            if let ref = r.ref { title += ", \(ref)" }
            if let head = r.head { title += " @ \(short(head))" }
            title += ")"
        }
        lines.append(title)
        // A value over several lines (an error listing several problems, a comment) keeps its indent.
        let indent = String(repeating: " ", count: 13)
        func indented(_ text: String) -> String { text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n" + indent) }
        func row(_ label: String, _ text: String) { lines.append("  " + label.padding(toLength: 11, withPad: " ", startingAt: 0) + indented(text)) }
        func more(_ text: String) { lines.append(indent + indented(text)) }

        if let d = r.deployed {
            row("deployed", "\(d.plan)" + (d.version.isEmpty ? "" : "  version \(d.version)") + "  commit \(short(d.commit))")
        } else if r.spec != nil {
            row("deployed", "nothing yet")
        }
        if let pin = r.pin, pin.isValid {
            row("pinned", "by \(pin.name) at \(pin.to ?? "?") (asked by \(pin.by ?? "?"))")
            more("new versions are explained but not deployed; delete \(pin.name) to unpin")
        }
        if let preview = r.preview { row("preview", preview) }
        if let inSync = r.inSync { row("sqlmesh", "in sync at \(short(inSync))") }
        for note in r.notes { row("note", note) }
        if let p = r.plan {
            var text = "\(p.id)  \(p.status.rawValue)"
            if r.isNewPlan { text += "  (new)" }
            if let author = p.author { text += "  author \(author)" }
            row("plan", text)
            if let rollback = p.rollback { more("a rollback to \(rollback.to), asked by \(rollback.by)") }
            if r.commitsBehind > 0 {
                more("\(r.ref ?? "head") is \(r.commitsBehind) commit\(r.commitsBehind == 1 ? "" : "s") ahead of this plan"
                     + (p.scope == .sqlmesh ? "" : "; bump the version to plan them"))
            }
            // A failed plan's reason is on its attempt's line (and the run's error).
            if let reason = p.statusReason, p.status != .failed { more(reason) }
            if !r.supersedes.isEmpty { more("supersedes \(r.supersedes.joined(separator: ", "))") }
            if !r.waitingFor.isEmpty { more("waits for \(r.waitingFor.joined(separator: ", ")) to finish") }
            if p.scope == .sqlmesh { models(p, r, row: row, more: more) } else { changes(p, r, row: row, more: more) }
            switch p.scope {
            case .selective: row("scope", "selective: \(p.select.joined(separator: " "))")
            case .all: row("scope", "all")
            case .buildOnly: row("scope", "build_only (build phase only, no dbt run)")
            case .sqlmesh: row("scope", "sqlmesh" + (p.base.map { ", on SQLMesh plan \($0.prefix(12))" } ?? ", first plan of the SQLMesh environment"))
            }
            if p.scopeMode != nil {
                more("precise scope" + (p.manifest.map { ", from the \($0)" } ?? ""))
                let reasons = p.reasons ?? [:]
                for entry in reasons.keys.sorted().prefix(20) { more("  \(entry): \(reasons[entry]!.joined(separator: "; "))") }
                if reasons.count > 20 { more("  … and \(reasons.count - 20) more (--output json lists them all)") }
            }
            if let command = r.command { row("command", command.joined(separator: " ")) }
            approvals(r, row: row, more: more)
            for a in p.attempts {
                var text = "#\(a.n) \(a.outcome.rawValue) in \(a.phase.rawValue)"
                let counts = a.summary.keys.sorted().map { k in
                    let c = a.summary[k]!
                    return "\(k) \(c.success) ok" + (c.error > 0 ? ", \(c.error) error" : "") + (c.skipped > 0 ? ", \(c.skipped) skipped" : "") + (c.warned > 0 ? ", \(c.warned) warned" : "")
                }
                if !counts.isEmpty { text += ": " + counts.joined(separator: "; ") }
                if let reason = a.reason { text += " — \(reason)" }
                row("attempt", text)
            }
            for (i, w) in p.warnings.enumerated() { i == 0 ? row("warnings", w) : more(w) }
        } else if r.errors.isEmpty && r.spec != nil {
            row("plan", "none")
        }
        for (i, a) in r.actions.enumerated() { i == 0 ? row("did", a) : more(a) }
        for (i, e) in r.errors.enumerated() { i == 0 ? row("error", e) : more(e) }
        for (i, n) in r.next.enumerated() { i == 0 ? row("next", n) : more(n) }
        return lines.joined(separator: "\n") + "\n"
    }

    static func changes(_ p: Plan, _ r: EnvironmentReport, row: (String, String) -> Void, more: (String) -> Void) {
        let since = p.base.map { "since \(short($0))" } ?? "(first deploy)"
        if p.changes.isEmpty {
            row("changes", p.base == nil ? "none" : "none \(since)")
            return
        }
        let files = "\(p.changes.count) file\(p.changes.count == 1 ? "" : "s") \(since)"
        // A finished plan seen again needs only the counts; the paths are for deciding.
        if !r.isNewPlan && !r.isLive {
            let counts = Category.allCases.compactMap { c -> String? in
                let n = p.changes.filter { $0.category == c }.count
                return n == 0 ? nil : "\(n) \(c.rawValue)"
            }
            row("changes", files + ": " + counts.joined(separator: ", "))
            return
        }
        row("changes", files)
        for category in Category.allCases {
            let group = p.changes.filter { $0.category == category }
            guard !group.isEmpty else { continue }
            for (i, c) in group.prefix(maxPathsPerCategory).enumerated() {
                let label = i == 0 ? category.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) : String(repeating: " ", count: 9)
                let mark: String
                switch c.change {
                case .added: mark = "A \(c.path)"
                case .modified: mark = "M \(c.path)"
                case .deleted: mark = "D \(c.path)"
                case .renamed: mark = "R \(c.oldPath ?? "?") -> \(c.path)"
                }
                more("\(label) \(mark)")
            }
            if group.count > maxPathsPerCategory {
                more("\(String(repeating: " ", count: 9)) … and \(group.count - maxPathsPerCategory) more")
            }
        }
    }

    /// A SQLMesh plan's models, grouped by change type like dbt plans' files by category.
    static func models(_ p: Plan, _ r: EnvironmentReport, row: (String, String) -> Void, more: (String) -> Void) {
        let models = p.models ?? []
        row("changes", models.isEmpty ? "none" : "\(models.count) model\(models.count == 1 ? "" : "s")")
        for kind in ModelChange.Kind.allCases {
            let group = models.filter { $0.change == kind }
            for (i, m) in group.prefix(maxPathsPerCategory).enumerated() {
                let label = (i == 0 ? kind.rawValue : "").padding(toLength: 19, withPad: " ", startingAt: 0)
                var text = "\(label) \(m.model)"
                if let category = m.category { text += "  \(category)" }
                if !m.backfill.isEmpty { text += "  backfill " + m.backfill.map { $0.count == 2 && $0[0] == $0[1] ? $0[0] : $0.joined(separator: "..") }.joined(separator: ", ") }
                more(text)
            }
            if group.count > maxPathsPerCategory { more("\(String(repeating: " ", count: 19)) … and \(group.count - maxPathsPerCategory) more") }
        }
    }

    static func approvals(_ r: EnvironmentReport, row: (String, String) -> Void, more: (String) -> Void) {
        guard let review = r.approvals else { return }
        switch review.outcome {
        case .approved: row("approvals", "approved (\(review.validApprovals) of \(review.required))")
        case .rejected:
            let by = review.verdicts.filter { $0.valid && $0.decision == .reject }.map(\.by).joined(separator: ", ")
            row("approvals", "rejected by \(by)")
        case .waiting: row("approvals", "\(review.validApprovals) of \(review.required): \(review.waitingSummary)")
        }
        for v in review.verdicts {
            let decision = v.decision?.rawValue ?? "?"
            if v.valid { more("✓ \(v.by) \(decision)" + (v.comment.map { ": \($0)" } ?? "")) }
            else { more("✗ \(v.by) \(decision) (invalid): \(v.reason ?? "")") }
        }
    }
}
