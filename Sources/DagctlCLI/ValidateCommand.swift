import ArgumentParser
import DagctlEngine
import DagctlGit
import DagctlSpec

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the desired-state files and each environment's .dagctl/config.yaml; list every problem.")

    @Option(help: "The dbt project's git repository (env DAGCTL_REPO).")
    var repo: String = Defaults.repo

    @Option(help: "The desired-state directory (env DAGCTL_DESIRED).")
    var desired: String = Defaults.desired

    func run() throws {
        let state = DesiredState.load(desired)
        var problems = state.issues.map(\.description)
        problems += state.decisionFileIssues().map(\.description)
        do {
            let git = try GitRepository.open(repo)
            let explainer = Explainer(repo: git, members: state.members)
            for env in state.environments {
                do {
                    let head = try git.resolveRef(env.ref)
                    let config = try explainer.config(at: head, label: env.ref)
                    _ = try explainer.explain(env: env, commit: head, config: config, base: head.hex, label: env.ref)
                } catch {
                    problems.append("\(env.file): environment '\(env.name)': \(error)")
                }
            }
        } catch {
            problems.append(error.description)
        }
        if problems.isEmpty {
            Console.out("ok: \(state.environments.count) environment\(state.environments.count == 1 ? "" : "s") (\(state.environments.map(\.name).joined(separator: ", "))), \(state.members.all.count) members\n")
            return
        }
        for p in problems { Console.out(p + "\n") }
        Console.err("\(problems.count) problem\(problems.count == 1 ? "" : "s") found")
        throw ExitCode(1)
    }
}
