import DagctlEngine
import DagctlPlanning

/// The same report as a pull-request comment.
enum ReportMarkdown {
    /// Past this many changed files the table folds into a collapsed section.
    static let longList = 20

    static func render(_ reports: [EnvironmentReport], title: String) -> String {
        var out = "## dagctl \(title)\n"
        for r in reports { out += "\n" + environment(r) }
        return out
    }

    static func code(_ s: String) -> String { "`" + s.replacingOccurrences(of: "`", with: "'") + "`" }
    static func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }

    static func environment(_ r: EnvironmentReport) -> String {
        var out = "### \(code(r.name))"
        if let spec = r.spec { out += spec.protected ? " (protected)" : " (unprotected)" }
        out += "\n\n| | |\n|---|---|\n"
        if let ref = r.ref { out += "| ref | \(code(ref))\(r.head.map { " @ " + code(ReportText.short($0)) } ?? "") |\n" }
        if let preview = r.preview { out += "| preview | \(cell(preview)) |\n" }
        if let inSync = r.inSync { out += "| sqlmesh | in sync at \(code(ReportText.short(inSync))) |\n" }
        if let d = r.deployed {
            out += "| deployed | \(code(d.plan))\(d.version.isEmpty ? "" : ", version \(d.version)"), commit \(code(ReportText.short(d.commit))) |\n"
        } else {
            out += "| deployed | nothing yet |\n"
        }
        if let pin = r.pin, pin.isValid {
            out += "| pinned | by \(code(pin.name)) at \(code(pin.to ?? "?")) (asked by \(pin.by ?? "?")): new versions are explained but not deployed; delete the file to unpin |\n"
        }
        if let p = r.plan {
            out += "| plan | \(code(p.id)) **\(p.status.rawValue)**\(r.isNewPlan ? " (new)" : "")\(p.author.map { ", author \($0)" } ?? "") |\n"
            if let rollback = p.rollback { out += "| rollback | to \(code(rollback.to)), asked by \(rollback.by) |\n" }
            switch p.scope {
            case .selective: out += "| scope | selective: \(p.select.map(code).joined(separator: " ")) |\n"
            case .all: out += "| scope | all |\n"
            case .buildOnly: out += "| scope | build_only (no dbt run) |\n"
            case .sqlmesh: out += "| scope | sqlmesh\(p.base.map { " on SQLMesh plan " + code(String($0.prefix(12))) } ?? "") |\n"
            }
            if let reasons = p.reasons, !reasons.isEmpty {
                let lines = reasons.keys.sorted().map { "\(code($0)): \(reasons[$0]!.joined(separator: "; "))" }
                out += "| why | \(lines.joined(separator: "<br>")) |\n"
            }
            if let command = r.command { out += "| command | \(code(command.joined(separator: " "))) |\n" }
            if let review = r.approvals {
                let text: String
                switch review.outcome {
                case .approved: text = "approved (\(review.validApprovals) of \(review.required))"
                case .rejected: text = "rejected"
                case .waiting: text = "\(review.validApprovals) of \(review.required): \(review.waitingSummary)"
                }
                out += "| approvals | \(cell(text)) |\n"
            }
            if r.commitsBehind > 0 { out += "| behind | head is \(r.commitsBehind) commit(s) ahead of this plan |\n" }
            if let review = r.approvals, !review.verdicts.isEmpty {
                out += "\n"
                for v in review.verdicts {
                    out += v.valid ? "- ✅ \(v.by) \(v.decision?.rawValue ?? "")\n" : "- ❌ \(v.by): \(cell(v.reason ?? ""))\n"
                }
            }
            if let models = p.models, !models.isEmpty {
                out += "\n| change | model | category | backfill |\n|---|---|---|---|\n"
                for kind in ModelChange.Kind.allCases {
                    for m in models where m.change == kind {
                        out += "| \(kind.rawValue) | \(code(m.model)) | \(m.category ?? "") | \(cell(m.backfill.map { $0.joined(separator: " – ") }.joined(separator: ", "))) |\n"
                    }
                }
            }
            if !p.changes.isEmpty {
                // The order of the text output: by category (model, test, …), then by path.
                let ordered = Category.allCases.flatMap { category in p.changes.filter { $0.category == category } }
                var table = "| category | change | path |\n|---|---|---|\n"
                for c in ordered {
                    let path = c.oldPath.map { "\(code($0)) → \(code(c.path))" } ?? code(c.path)
                    table += "| \(c.category.rawValue) | \(c.change.rawValue) | \(path) |\n"
                }
                if ordered.count <= longList {
                    out += "\n" + table
                } else {
                    let counts = Category.allCases.compactMap { c -> String? in
                        let n = p.changes.filter { $0.category == c }.count
                        return n == 0 ? nil : "\(n) \(c.rawValue)"
                    }
                    out += "\n\(ordered.count) changed files: \(counts.joined(separator: ", "))\n"
                    out += "\n<details><summary>all \(ordered.count) changed files</summary>\n\n" + table + "\n</details>\n"
                }
            }
            if !p.warnings.isEmpty { out += "\n" + p.warnings.map { "> ⚠️ \(cell($0))\n" }.joined() }
        }
        if !r.notes.isEmpty { out += "\n" + r.notes.map { "> ℹ️ \(cell($0))\n" }.joined() }
        if !r.actions.isEmpty { out += "\n" + r.actions.map { "- \(cell($0))\n" }.joined() }
        if !r.errors.isEmpty { out += "\n" + r.errors.map { "> ❗ \(cell($0))\n" }.joined() }
        if !r.next.isEmpty {
            let what = r.plan?.status == .failed ? "To look at the logs and ask for a retry" : "To approve (any one of these; each is a member who may)"
            out += "\n\(what):\n\n```sh\n" + r.next.joined(separator: "\n") + "\n```\n"
        }
        return out
    }
}
