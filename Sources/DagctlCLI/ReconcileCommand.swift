import ArgumentParser
import DagctlEngine
import DagctlNotify
import DagctlSpec
import DagctlState
import Foundation

struct ReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Move every environment one step closer to the desired state: explain, approve, build, run, record.")

    @OptionGroup var inputs: InputOptions

    @OptionGroup var filter: EnvironmentFilter

    @Flag(help: "Only show what would be done (the same as `dagctl plan`).")
    var dryRun = false

    @Flag(inversion: .prefixedNo, help: "Follow Kubernetes Jobs until they finish (default), or submit and return.")
    var wait = true

    @Option(help: "text, json or markdown.")
    var output: OutputFormat = .text

    @Flag(help: "For cron: print nothing when nothing happened, otherwise one line per action (errors on stderr); no live logs (they are kept in the state folder).")
    var quiet = false

    func run() throws {
        if dryRun {
            return try PlanCommand.preview(inputs: inputs, environments: filter.names, ref: nil, base: nil, output: output)
        }
        let store = StateStore(path: inputs.state)
        let lock: StateLock
        do { lock = try StateLock.acquire(store, command: "dagctl reconcile") } catch {
            // 75 (EX_TEMPFAIL) means only "another run holds the lock"; any other failure is an error.
            if case .locked = error { throw Console.fail("\(error)", code: 75) }
            throw Console.fail("\(error)")
        }
        defer { withExtendedLifetime(lock) {} }
        for path in store.removeStaleTemporaryFiles() { Console.err("removed \(path), left by a dagctl run that was killed while writing") }
        let session = try Session.open(inputs, environments: filter.names)
        if !session.repairs.isEmpty {
            for repair in session.repairs { Console.err("repaired the state file: \(repair)") }
            do { try session.store.save(session.state) } catch { throw Console.fail("\(error)") }
        }
        // Live output goes to stdout for people, to stderr when stdout carries a document, nowhere when quiet.
        let console = quiet ? FileHandle(forWritingAtPath: "/dev/null")! : output == .text ? FileHandle.standardOutput : FileHandle.standardError
        for issue in session.desired.notificationIssues {
            Console.err("warning: \(issue) (no notifications are recorded until \(NotificationsSpec.fileName) is fixed; deploys go on)")
        }
        let delivery = NotificationClock.delivery(session)
        let heartbeat = ProcessInfo.processInfo.environment["DAGCTL_HEARTBEAT_SECONDS"].flatMap(TimeInterval.init) ?? 15
        let reconciler = Reconciler(planner: session.planner, store: session.store, console: console, heartbeat: heartbeat,
                                    wait: wait, delivery: delivery, onReport: { [quiet, output] report in
            if quiet {
                for action in report.actions where action != "nothing to do" { Console.out("\(report.name): \(action)\n") }
                for error in report.errors { Console.err("error: \(report.name): \(error)") }
            } else if output == .text {
                Console.out(ReportText.render([report]) + "\n")
            }
        })
        reconciler.now = NotificationClock.now
        let reports = reconciler.run(environments: filter.names)
        switch output {
        case _ where quiet: break  // quiet wins: the action lines above are all there is
        case .json: Console.out(ReportJSON.document(reports))
        case .markdown: Console.out(ReportMarkdown.render(reports, title: "reconcile"))
        case .text: break
        }
        if !quiet {
            let line = Self.summary(reports)
            if output == .text { Console.out(line + "\n") } else { Console.err(line) }
        }
        if reports.contains(where: { !$0.errors.isEmpty || $0.failed }) { throw ExitCode(1) }
    }

    /// `dagctl: N environments, M plans explained, K deployed, F failed, P waiting for approval`.
    static func summary(_ reports: [EnvironmentReport]) -> String {
        func count(_ n: Int, _ one: String, _ many: String) -> String { "\(n) \(n == 1 ? one : many)" }
        let explained = reports.filter(\.isNewPlan).count
        let deployed = reports.map { $0.actions.filter { $0.hasPrefix("deployed ") }.count }.reduce(0, +)
        let failed = reports.filter { $0.failed || !$0.errors.isEmpty }.count
        let waiting = reports.filter { $0.plan?.status == .pending }.count
        return "dagctl: " + [count(reports.count, "environment", "environments"), count(explained, "plan explained", "plans explained"),
                             "\(deployed) deployed", "\(failed) failed", "\(waiting) waiting for approval"].joined(separator: ", ")
    }
}

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print the saved logs of a plan's attempt (the newest by default).")

    @Argument(help: "The plan id.")
    var planID: String

    @Option(help: "The attempt number (default: the newest).")
    var attempt: Int?

    @Option(help: "build or run (default: both).")
    var phase: Phase?

    @OptionGroup var inputs: InputOptions

    enum Phase: String, ExpressibleByArgument { case build, run }

    func run() throws {
        guard Names.isValidPlanID(planID) else { throw Console.fail("'\(planID)' is not a plan id") }
        let store = StateStore(path: inputs.state)
        let planDir = store.layout.logs(planID)
        let attempts = ((try? FileManager.default.contentsOfDirectory(atPath: planDir)) ?? [])
            .compactMap { $0.hasPrefix("attempt-") ? Int($0.dropFirst(8)) : nil }.sorted()
        guard let newest = attempts.last else { throw Console.fail("no logs for \(planID) in \(planDir)") }
        let n = attempt ?? newest
        guard attempts.contains(n) else {
            throw Console.fail("\(planID) has no attempt \(n); attempts with logs: \(attempts.map(String.init).joined(separator: ", "))")
        }
        let phases = phase.map { [$0.rawValue] } ?? ["build", "run"]
        var printed = false
        for p in phases {
            let path = store.layout.log(planID, attempt: n, phase: p)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            if phase == nil { Console.out("==> \(planID) attempt \(n) \(p) (\(path)) <==\n") }
            FileHandle.standardOutput.writeSafely(data)
            printed = true
        }
        if !printed { throw Console.fail("\(planID) attempt \(n) has no \(phase?.rawValue ?? "") log") }
    }
}
