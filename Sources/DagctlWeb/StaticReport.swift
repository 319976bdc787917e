import DagctlState
import Foundation

/// `dagctl report --html DIR`: the dashboard's pages as files with relative links, for a cron job to
/// publish. Written into a sibling folder and renamed into place, so a half-written report is never
/// what DIR holds.
public enum StaticReport {
    public static func write(_ site: Site, to dir: String, now: Date = Date()) throws -> Int {
        let state = try site.state()
        let target = URL(fileURLWithPath: dir).standardizedFileURL.path
        let parent = (target as NSString).deletingLastPathComponent
        let fresh = "\(parent)/.\((target as NSString).lastPathComponent).new-\(getpid())"
        let fm = FileManager.default
        try? fm.removeItem(atPath: fresh)
        var pages = 0
        func put(_ relative: String, _ html: String) throws {
            let path = "\(fresh)/\(relative)"
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(html.utf8).write(to: URL(fileURLWithPath: path))
            pages += 1
        }
        try put("index.html", Pages.overview(site, state, links: Links(.report, depth: 0), now: now))
        for env in site.environments(state) {
            try put("environments/\(env.name)/history.html",
                    Pages.history(env.name, plans: site.history(env.name), links: Links(.report, depth: 2), now: now))
            for plan in site.history(env.name) + env.state.plans {
                try put("plans/\(plan.id).html", Pages.plan(site, plan, env, links: Links(.report, depth: 1)))
                for attempt in plan.attempts {
                    for phase in ["build", "run"] {
                        let log = "\(site.store.layout.logs(plan.id, attempt: attempt.n))/\(phase).log"
                        guard let tail = Site.logTail(log) else { continue }
                        try put("plans/\(plan.id)/attempts/\(attempt.n)/\(phase).html",
                                Pages.log(plan, attempt: attempt, phase: phase, tail: tail, links: Links(.report, depth: 4)))
                    }
                }
            }
        }
        // Swap in: the old report is moved aside, the new one renamed into its place, the old removed.
        let old = "\(parent)/.\((target as NSString).lastPathComponent).old-\(getpid())"
        try? fm.removeItem(atPath: old)
        if fm.fileExists(atPath: target) { try fm.moveItem(atPath: target, toPath: old) }
        guard rename(fresh, target) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: target]) }
        try? fm.removeItem(atPath: old)
        return pages
    }
}
