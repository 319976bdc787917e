import DagctlEngine
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Every text shown goes through here: model names, commit messages, log lines and comments come from
/// people and repositories.
func esc(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// Where pages link to: absolute paths when served, relative file names in a static report.
public struct Links: Sendable {
    public enum Mode: Sendable { case server, report }
    public let mode: Mode
    /// How deep the page is in the report (`plans/x.html` is 1), for relative links.
    public var depth = 0

    public init(_ mode: Mode, depth: Int = 0) {
        self.mode = mode
        self.depth = depth
    }

    var root: String { mode == .server ? "/" : String(repeating: "../", count: depth) }
    public var overview: String { mode == .server ? "/" : root + "index.html" }
    public func plan(_ id: String) -> String { root + "plans/" + id + (mode == .report ? ".html" : "") }
    public func log(_ id: String, _ n: Int, _ phase: String) -> String {
        root + "plans/\(id)/attempts/\(n)/\(phase)" + (mode == .report ? ".html" : "")
    }
    public func history(_ env: String) -> String { root + "environments/\(env)/history" + (mode == .report ? ".html" : "") }
    public var live: Bool { mode == .server }
}

/// The dashboard's pages: plain HTML and CSS, a few lines of script for live updates (no framework,
/// nothing fetched from elsewhere), readable on a laptop and a phone.
///
/// Built in Swift rather than with swift-mustache templates: the pages are loops and conditionals over
/// typed values, and doing it here lets the compiler check every field and keeps one escaping function
/// that every value passes through (a template's `{{{ }}}` would be one typo from unescaped HTML).
public enum Pages {
    static let css = """
        :root{--ok:#1a7f37;--wait:#9a6700;--run:#0969da;--fail:#cf222e;--muted:#656d76;--line:#d0d7de}
        *{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
        header{background:#24292f;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
        header a{color:#fff;text-decoration:none;font-weight:600}main{padding:1rem;max-width:1100px;margin:auto}
        h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
        .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}
        .card{background:#fff;border:1px solid var(--line);border-left:6px solid var(--muted);border-radius:6px;padding:.7rem .9rem}
        .card.ok{border-left-color:var(--ok)}.card.wait{border-left-color:var(--wait)}.card.run{border-left-color:var(--run)}.card.fail{border-left-color:var(--fail)}
        .badge{display:inline-block;font-size:.8rem;padding:.05rem .45rem;border-radius:1rem;color:#fff;background:var(--muted)}
        .badge.ok{background:var(--ok)}.badge.wait{background:var(--wait)}.badge.run{background:var(--run)}.badge.fail{background:var(--fail)}
        .muted{color:var(--muted)}code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
        pre{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.6rem;overflow-x:auto;white-space:pre}
        table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
        details{background:#fff;border:1px solid var(--line);border-radius:6px;margin:.3rem 0;padding:.3rem .6rem}summary{cursor:pointer}
        .cmd{display:flex;gap:.4rem;align-items:center;flex-wrap:wrap}.cmd code{background:#fff;border:1px solid var(--line);border-radius:4px;padding:.2rem .4rem;overflow-x:auto;max-width:100%}
        .ok-t{color:var(--ok)}.fail-t{color:var(--fail)}.warn-t{color:var(--wait);font-weight:600}ul{padding-left:1.2rem}
        .del{color:var(--fail)}.add{color:var(--ok)}.hunk{color:var(--run)}
        """

    static func page(_ title: String, _ body: String, links: Links, script: String = "") -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <title>\(esc(title)) · dagctl</title><style>\(css)</style></head>
        <body><header><a href="\(links.overview)">dagctl</a><span>\(esc(title))</span></header><main>
        \(body)
        </main>\(script.isEmpty ? "" : "<script>\(script)</script>")</body></html>
        """
    }

    /// The colour of an environment at a glance: deployed and idle, waiting for approval, running, failed.
    static func tone(_ plan: Plan?, deployed: Bool = true) -> (String, String) {
        if plan == nil && !deployed { return ("", "nothing deployed yet") }
        switch plan?.status {
        case .pending?: return ("wait", "waiting for approval")
        case .approved?, .building?, .running?: return ("run", plan!.status == .approved ? "approved, due to run" : plan!.status.rawValue)
        case .failed?: return ("fail", "failed")
        case .rejected?: return ("fail", "rejected")
        default: return ("ok", "deployed, idle")
        }
    }

    static func ago(_ timestamp: String?, now: Date) -> String {
        guard let timestamp, let date = try? Date(timestamp, strategy: .iso8601) else { return "" }
        let s = Int(now.timeIntervalSince(date))
        if s < 90 { return "\(max(s, 0))s ago" }
        if s < 5400 { return "\(s / 60)m ago" }
        if s < 172_800 { return "\(s / 3600)h ago" }
        return "\(s / 86400)d ago"
    }

    static func short(_ sha: String?) -> String { sha.map { String($0.prefix(10)) } ?? "—" }

    static func commandBox(_ line: String) -> String { "<div class=\"cmd\"><code>\(esc(line))</code></div>" }

    // MARK: overview

    public static func overview(_ site: Site, _ state: StateFile, links: Links, now: Date = Date()) -> String {
        var cards = ""
        for env in site.environments(state) {
            let report = site.report(env)
            let (tone, label) = tone(report.plan, deployed: env.state.deployed != nil)
            var card = "<section class=\"card \(tone)\" id=\"env-\(esc(env.name))\"><h2 style=\"margin-top:0\">\(esc(env.name)) <span class=\"badge \(tone)\">\(esc(label))</span></h2>"
            if let spec = env.spec {
                card += "<div class=\"muted\">\(spec.protected ? "protected" : "unprotected"), \(esc(spec.backend.kindName)), \(esc(spec.ref))</div>"
            } else {
                card += "<div class=\"fail-t\">its environment file is missing or invalid</div>"
            }
            if let pin = report.pin {
                card += "<p class=\"\(pin.isValid ? "warn-t" : "fail-t")\">\(esc(pin.summary))</p>"
            }
            if let d = env.state.deployed {
                card += "<p>deployed <a href=\"\(links.plan(d.plan))\">\(esc(d.plan))</a>\(d.version.isEmpty ? "" : " version \(esc(d.version))") · \(esc(short(d.commit))) · \(esc(ago(d.deployedAt, now: now)))</p>"
            } else {
                card += "<p class=\"muted\">nothing deployed yet</p>"
            }
            if let plan = report.plan {
                let age = ago(plan.createdAt, now: now)
                card += "<p>newest plan <a href=\"\(links.plan(plan.id))\">\(esc(plan.id))</a> <b>\(esc(plan.status.rawValue))</b> · \(esc(plan.scope.rawValue))\(age.isEmpty ? "" : " · " + esc(age))</p>"
                if let review = report.approvals, review.outcome == .waiting { card += "<p>\(esc(review.waitingSummary))</p>" }
                if plan.status.isInProgress, let a = plan.attempts.last {
                    card += "<p>attempt \(a.n) is in its \(a.phase.rawValue) phase: <a href=\"\(links.log(plan.id, a.n, a.phase.rawValue))\">follow the log</a></p>"
                }
                if plan.status == .failed, let line = report.next.last { card += "<p>failed: \(esc(plan.statusReason ?? ""))</p>" + commandBox(line) }
            }
            if let sync = env.state.inSync { card += "<p class=\"muted\">SQLMesh: in sync at \(esc(short(sync)))</p>" }
            card += "<p><a href=\"\(links.history(env.name))\">history</a></p></section>"
            cards += card
        }
        let script = links.live ? "new EventSource('/events').addEventListener('change',()=>location.reload());" : ""
        // As `dagctl status` says: a missing state file is not an empty one (a wrong --state, or a first run).
        let missing = site.store.exists ? ""
            : "<p class=\"muted\">No state file at <code>\(esc(site.store.path))</code> yet: nothing has been reconciled. If something has, check <code>--state</code>.</p>"
        return page("environments", "<h1>Environments</h1>\(missing)<div class=\"cards\">\(cards)</div>", links: links, script: script)
    }

    // MARK: plan

    public static func plan(_ site: Site, _ plan: Plan, _ env: Site.Environment, links: Links) -> String {
        let report = site.report(env, plan: plan)
        let (tone, label) = tone(plan)
        var b = "<h1>\(esc(plan.id)) <span class=\"badge \(tone)\">\(esc(plan.status.rawValue))</span></h1>"
        b += "<p class=\"muted\">\(esc(label)) · environment <a href=\"\(links.history(env.name))\">\(esc(env.name))</a> · commit \(esc(short(plan.commit)))"
        b += plan.base.map { " · base \(esc(short($0)))" } ?? " · first deploy"
        b += plan.author.map { " · author \(esc($0))" } ?? ""
        b += "</p>"
        if let rollback = plan.rollback {
            b += "<p>a rollback to <a href=\"\(links.plan(rollback.to))\">\(esc(rollback.to))</a>, asked by \(esc(rollback.by))</p>"
        }
        if let summary = site.summary(of: plan.commit) { b += "<p>commit message: <q>\(esc(summary))</q></p>" }
        if let reason = plan.statusReason { b += "<p>\(esc(reason))</p>" }
        b += "<h2>Scope</h2><p><b>\(esc(plan.scope.rawValue))</b>\(plan.select.isEmpty ? "" : ": " + plan.select.map { "<code>\(esc($0))</code>" }.joined(separator: " "))</p>"
        if let command = report.command { b += commandBox(command.joined(separator: " ")) }
        b += changes(site, plan)
        b += "<h2>Approvals</h2>"
        if let review = report.approvals {
            b += "<p>\(review.validApprovals) of \(review.required)\(review.outcome == .waiting ? ": " + esc(review.waitingSummary) : "")</p><ul>"
            for v in review.verdicts {
                b += v.valid ? "<li class=\"ok-t\">✓ \(esc(v.by)) \(esc(v.decision?.rawValue ?? ""))\(v.comment.map { ": " + esc($0) } ?? "")</li>"
                    : "<li class=\"fail-t\">✗ \(esc(v.by)): \(esc(v.reason ?? ""))</li>"
            }
            b += "</ul>"
        } else {
            b += "<p class=\"muted\">\(plan.status == .pending ? "no approvals yet" : esc(plan.statusReason ?? plan.status.rawValue))</p>"
        }
        if !report.next.isEmpty {
            b += "<h2>\(plan.status == .failed ? "Logs and a retry" : "Approve")</h2>" + report.next.map(commandBox).joined()
        }
        b += "<h2>Attempts</h2>"
        if plan.attempts.isEmpty { b += "<p class=\"muted\">none yet</p>" }
        for a in plan.attempts {
            let counts = a.summary.keys.sorted().map { k in "\(k) \(a.summary[k]!.success) ok\(a.summary[k]!.error > 0 ? ", \(a.summary[k]!.error) error" : "")" }
            b += "<p><b>#\(a.n)</b> \(esc(a.outcome.rawValue)) in \(esc(a.phase.rawValue))\(counts.isEmpty ? "" : " · " + esc(counts.joined(separator: "; ")))"
            b += " · logs: <a href=\"\(links.log(plan.id, a.n, "build"))\">build</a>"
            if a.phase == .run { b += " <a href=\"\(links.log(plan.id, a.n, "run"))\">run</a>" }
            b += "</p>"
            if let reason = a.reason { b += "<pre>\(esc(reason))</pre>" }
        }
        if !plan.warnings.isEmpty { b += "<h2>Warnings</h2><ul>" + plan.warnings.map { "<li>\(esc($0))</li>" }.joined() + "</ul>" }
        return page(plan.id, b, links: links)
    }

    /// Changed files by category, each with its diff, collapsed; a SQLMesh plan's models.
    static func changes(_ site: Site, _ plan: Plan) -> String {
        if let models = plan.models {
            var b = "<h2>Models</h2><table><tr><th>change</th><th>model</th><th>category</th><th>backfill</th></tr>"
            for kind in ModelChange.Kind.allCases {
                for m in models where m.change == kind {
                    b += "<tr><td>\(esc(kind.rawValue))</td><td><code>\(esc(m.model))</code></td><td>\(esc(m.category ?? ""))</td><td>\(esc(m.backfill.map { $0.joined(separator: " – ") }.joined(separator: ", ")))</td></tr>"
                }
            }
            return b + "</table>"
        }
        var b = "<h2>Changed files (\(plan.changes.count))</h2>"
        if plan.changes.isEmpty { return b + "<p class=\"muted\">none</p>" }
        for category in Category.allCases {
            let group = plan.changes.filter { $0.category == category }
            guard !group.isEmpty else { continue }
            b += "<h3>\(esc(category.rawValue)) (\(group.count))</h3>"
            for c in group {
                let name = c.oldPath.map { "\(esc($0)) → \(esc(c.path))" } ?? esc(c.path)
                b += "<details><summary>\(esc(c.change.rawValue)) <code>\(name)</code></summary><pre>\(colour(site.diff(c, plan: plan)))</pre></details>"
            }
        }
        return b
    }

    /// Diff lines coloured by their first character, escaped first.
    static func colour(_ diff: String) -> String {
        diff.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let text = esc(String(line))
            if line.hasPrefix("@@") { return "<span class=\"hunk\">\(text)</span>" }
            if line.hasPrefix("+") && !line.hasPrefix("+++") { return "<span class=\"add\">\(text)</span>" }
            if line.hasPrefix("-") && !line.hasPrefix("---") { return "<span class=\"del\">\(text)</span>" }
            return text
        }.joined(separator: "\n")
    }

    // MARK: log, history

    public static func log(_ plan: Plan, attempt: Attempt, phase: String, tail: Site.LogTail, links: Links) -> String {
        let live = links.live && attempt.outcome == .running && phase == attempt.phase.rawValue
        var b = "<h1>\(esc(plan.id)) · attempt \(attempt.n) · \(esc(phase))</h1>"
        b += "<p><a href=\"\(links.plan(plan.id))\">back to the plan</a> · <span id=\"state\">\(live ? "following the log live…" : "attempt \(esc(attempt.outcome.rawValue))")</span></p>"
        if tail.skipped > 0 {
            b += "<p class=\"muted\">the first \(tail.skipped) bytes are not shown; <code>dagctl logs \(esc(plan.id)) --attempt \(attempt.n) --phase \(esc(phase))</code> prints the whole log</p>"
        }
        b += "<pre id=\"log\">\(esc(tail.text))</pre>"
        let script = live ? """
            const log=document.getElementById('log'),state=document.getElementById('state');
            const src=new EventSource(location.pathname+'/stream?from='+\(tail.size));
            src.addEventListener('line',e=>{log.appendChild(document.createTextNode(e.data+'\\n'));});
            src.addEventListener('end',e=>{state.textContent='the phase ended: '+e.data;src.close();});
            """ : ""
        return page("\(plan.id) \(phase) log", b, links: links, script: script)
    }

    public static func history(_ env: String, plans: [Plan], links: Links, now: Date = Date()) -> String {
        var b = "<h1>\(esc(env)): history</h1><table><tr><th>plan</th><th>status</th><th>scope</th><th>created</th><th>decided</th></tr>"
        for plan in plans.reversed() {
            b += "<tr><td><a href=\"\(links.plan(plan.id))\">\(esc(plan.id))</a></td><td>\(esc(plan.status.rawValue))</td><td>\(esc(plan.scope.rawValue))</td>"
            b += "<td>\(esc(plan.createdAt ?? "")) <span class=\"muted\">\(esc(ago(plan.createdAt, now: now)))</span></td><td>\(esc(plan.statusReason ?? ""))</td></tr>"
        }
        if plans.isEmpty { b += "<tr><td colspan=\"5\" class=\"muted\">no finished plans yet</td></tr>" }
        return page("\(env) history", b + "</table>", links: links)
    }
}

