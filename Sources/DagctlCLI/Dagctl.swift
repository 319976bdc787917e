import ArgumentParser
import DagctlBackends
import Foundation

/// The `dagctl` command line.
public struct Dagctl: ParsableCommand {
    public static let version = "0.5.0"

    public static let configuration = CommandConfiguration(
        commandName: "dagctl",
        abstract: "A one-shot, file-based, declarative reconciler that deploys dbt and SQLMesh projects.",
        discussion: """
            Inputs: --repo (the project's git repository, env DAGCTL_REPO, default .), --desired (the \
            desired-state directory, env DAGCTL_DESIRED, default ./desired) and --state (the state file, \
            env DAGCTL_STATE, default ./state/state.json). Every command takes all three.

            Exit codes: 0 nothing failed (a plan waiting for approval is not a failure); 1 a plan failed \
            or an error was reported; 2 usage error; 75 another run holds the lock (reconcile only).

            Documentation: docs/ in dagctl's repository (start with docs/README.md).
            """,
        version: version,
        subcommands: [InitCommand.self, ValidateCommand.self, PlanCommand.self, ReconcileCommand.self, StatusCommand.self,
                      ApproveCommand.self, RetryCommand.self, RollbackCommand.self, LogsCommand.self, ServeCommand.self, ReportCommand.self,
                      NotifyCommand.self, CompletionsCommand.self])

    public init() {}
}

public enum DagctlMain {
    /// Runs the command line; usage errors exit 2 (SPEC §6), not ArgumentParser's 64.
    public static func run() async -> Never {
        // A closed stdout (`dagctl … | head`) or a child that stops reading must not kill dagctl with
        // SIGPIPE: writes fail with EPIPE instead, and are handled.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try Dagctl.parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand { try await asynchronous.run() } else { try command.run() }
            Foundation.exit(0)
        } catch {
            let code = Dagctl.exitCode(for: error)
            if code.rawValue == 64 {
                FileHandle.standardError.writeSafely(Dagctl.fullMessage(for: error) + "\n")
                Foundation.exit(2)
            }
            Dagctl.exit(withError: error)
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, markdown
}

/// Where dagctl reads from. Flags win over the DAGCTL_* variables, which win over the defaults.
enum Defaults {
    static let repo = ProcessInfo.processInfo.environment["DAGCTL_REPO"] ?? "."
    static let desired = ProcessInfo.processInfo.environment["DAGCTL_DESIRED"] ?? "desired"
    static let state = ProcessInfo.processInfo.environment["DAGCTL_STATE"] ?? "state/state.json"
}

/// Every command takes all three inputs (a command that does not need one ignores it), so one shell
/// alias serves them all.
struct InputOptions: ParsableArguments {
    @Option(help: "The dbt project's git repository (env DAGCTL_REPO).")
    var repo: String = Defaults.repo

    @Option(help: "The desired-state directory (env DAGCTL_DESIRED).")
    var desired: String = Defaults.desired

    @Option(help: "The JSON state file (env DAGCTL_STATE).")
    var state: String = Defaults.state
}

/// `--env NAME`, repeatable: the environments a command looks at (all when none is named).
struct EnvironmentFilter: ParsableArguments {
    @Option(name: .customLong("env"), help: "Only this environment (repeatable).")
    var names: [String] = []
}

/// A failure already explained to the user: exit with `code`, print nothing more.
struct Failure: Error, CustomStringConvertible {
    var message: String
    var code: Int32 = 1
    var description: String { message }
}

enum Console {
    static func out(_ text: String) {
        FileHandle.standardOutput.writeSafely(text)
    }

    static func err(_ text: String) {
        FileHandle.standardError.writeSafely(text.hasSuffix("\n") ? text : text + "\n")
    }

    /// Prints `message` as an error and exits.
    static func fail(_ message: String, code: Int32 = 1) -> ExitCode {
        err("error: " + message)
        return ExitCode(code)
    }
}
