import ArgumentParser
import DagctlEngine
import DagctlGit
import DagctlSpec

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the desired-state files and each environment's .dagctl/config.yaml; list every problem.")

    @OptionGroup var inputs: InputOptions

    func run() throws {
        let state = DesiredState.load(inputs.desired)
        var problems = state.issues.map(\.description)
        problems += state.decisionFileIssues().map(\.description)
        do {
            let git = try GitRepository.open(inputs.repo)
            let cycle = EnvironmentCycle(repo: git, desired: state, verify: { _, _, _ in nil })
            for env in state.environments {
                do {
                    let head = try git.resolveRef(env.ref)
                    try cycle.kind(at: head, label: env.ref).check(env: env, head: head, label: env.ref)
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
