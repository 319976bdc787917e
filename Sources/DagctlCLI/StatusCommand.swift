import ArgumentParser
import DagctlEngine
import DagctlBackends
import DagctlPlanning
import DagctlSpec
import DagctlState

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what is deployed where and each environment's newest plan, from the state file (and whether a rollback file pins it).")

    @OptionGroup var inputs: InputOptions

    @OptionGroup var filter: EnvironmentFilter

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "text or json.")
    var output: Format = .text

    @Flag(help: "Also list each environment's finished plans (from the history files).")
    var history = false

    func run() throws {
        let store = StateStore(path: inputs.state)
        let state: StateFile
        do { state = try store.load() } catch { throw Console.fail(error.description) }
        if !store.exists && output == .text { Console.err("no state file at \(store.path) yet: nothing has been reconciled") }
        let names = filter.names.isEmpty ? state.environments.keys.sorted() : filter.names
        // A pin is in the desired state, not the state file; shown when the directory is here to read.
        let desired = DesiredState.load(inputs.desired, only: Set(names))
        let reports = names.map { name -> EnvironmentReport in
            var report = EnvironmentReport(name: name)
            guard let env = state.environments[name] else {
                report.errors.append("no environment '\(name)' in \(store.path)")
                return report
            }
            report.ref = env.ref
            report.head = env.head
            report.deployed = env.deployed
            report.plan = env.plans.last
            report.waitingFor = Lifecycle.waitingFor(env.plans)
            if let plan = env.plans.last, plan.rollback == nil, let head = env.head, head != plan.commit {
                report.actions.append("head \(String(head.prefix(10))) differs from the plan's commit")
            }
            if let spec = desired.environment(name) {
                report.show(desired.pin(spec, plans: store.history(name) + env.plans, verify: SSHSignatures.verify))
            }
            return report
        }
        var past: [String: [Plan]] = [:]
        if history {
            for name in names {
                let read = store.readHistory(name)
                past[name] = read.plans
                for warning in read.warnings { Console.err("warning: \(warning)") }
            }
        }
        switch output {
        case .json:
            if history {
                let byEnv = names.map { name in
                    (name, JSONValue.array((past[name] ?? []).map { ReportJSON.plan($0, EnvironmentReport(name: name)) }))
                }
                Console.out(ReportJSON.document(reports, extra: [("history", .object(byEnv)), ("notifications", OutboxStatus.json(state))]))
            } else {
                Console.out(ReportJSON.document(reports, extra: [("notifications", OutboxStatus.json(state))]))
            }
        default:
            Console.out(reports.isEmpty ? "no environments in \(store.path)\n" : ReportText.render(reports))
            for name in names where history {
                Console.out("\nhistory of \(name) (\(past[name]?.count ?? 0) finished plan\(past[name]?.count == 1 ? "" : "s"))\n")
                for plan in past[name] ?? [] {
                    let attempts = plan.attempts.map { "#\($0.n) \($0.outcome.rawValue)" }.joined(separator: ", ")
                    Console.out("  \(plan.id)  \(plan.status.rawValue)  \(plan.scope.rawValue)  \(plan.createdAt ?? "")  \(attempts)\n")
                }
            }
            Console.out(OutboxStatus.text(state))
        }
        if reports.contains(where: { !$0.errors.isEmpty }) { throw ExitCode(1) }
    }
}
