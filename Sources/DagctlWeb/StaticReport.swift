import DagctlState
import Foundation

/// `dagctl report --html DIR`: the dashboard's pages as files with relative links, for a cron job to
/// publish. Written into a sibling folder and swapped into place in one step, so DIR always holds a
/// whole report, the old or the new.
public enum StaticReport {
    public struct Refused: Error, CustomStringConvertible { public var description: String }

    public static func write(_ site: Site, to dir: String, now: Date = Date()) throws -> Int {
        let target = URL(fileURLWithPath: dir).standardizedFileURL.path
        let parent = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        var info = stat()
        if lstat(target, &info) == 0 && (info.st_mode & S_IFMT) != S_IFDIR {
            let what = (info.st_mode & S_IFMT) == S_IFLNK ? "a symbolic link" : "not a folder"
            throw Refused(description: "\(target) is \(what); the report replaces a folder whole. Give a folder path (or one that does not exist yet); to publish through a link, point the link at the report folder")
        }
        let fm = FileManager.default
        // Leftovers of a run that was killed: nobody else writes these names.
        for stale in (try? fm.contentsOfDirectory(atPath: parent)) ?? [] where stale.hasPrefix(".\(name).new-") || stale.hasPrefix(".\(name).old-") {
            try? fm.removeItem(atPath: "\(parent)/\(stale)")
        }
        let state = try site.state()
        let fresh = "\(parent)/.\(name).new-\(getpid())"
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
                        let log = site.store.layout.log(plan.id, attempt: attempt.n, phase: phase)
                        guard let tail = Site.logTail(log, root: site.store.layout.logs) else { continue }
                        try put("plans/\(plan.id)/attempts/\(attempt.n)/\(phase).html",
                                Pages.log(plan, attempt: attempt, phase: phase, tail: tail, links: Links(.report, depth: 4)))
                    }
                }
            }
        }
        // Swap in: exchanged with the old report in one rename (DIR is never missing), or renamed into
        // place the first time; then the old one, now at the fresh name, is removed.
        if exchange(fresh, target) {
            try? fm.removeItem(atPath: fresh)
        } else if errno == ENOENT && rename(fresh, target) == 0 {
        } else if (errno == EINVAL || errno == ENOSYS) && swapInTwoSteps(fresh, target, old: "\(parent)/.\(name).old-\(getpid())") {
        } else {
            let reason = String(cString: strerror(errno))
            try? fm.removeItem(atPath: fresh)
            throw Refused(description: "cannot put the report in place at \(target): \(reason)")
        }
        return pages
    }

    /// Where the file system cannot exchange: the old report moved aside, the new one renamed in.
    static func swapInTwoSteps(_ fresh: String, _ target: String, old: String) -> Bool {
        guard rename(target, old) == 0 else { return false }
        guard rename(fresh, target) == 0 else { rename(old, target); return false }
        try? FileManager.default.removeItem(atPath: old)
        return true
    }

    /// renameat2(RENAME_EXCHANGE): glibc has it, but its header declares it only under _GNU_SOURCE.
    static func exchange(_ a: String, _ b: String) -> Bool {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(nil, "renameat2") else { errno = ENOSYS; return false }
        return unsafeBitCast(symbol, to: RenameAt2.self)(AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) == 0
    }
}
