import ArgumentParser
import DagctlEngine
import DagctlGit
import DagctlSpec

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Scaffold .dagctl/config.yaml in the repository and a desired-state directory; never overwrites a file.",
        discussion: """
            Finds the project at HEAD (where dbt_project.yml, or SQLMesh's config, is) and writes \
            .dagctl/config.yaml into the repository's work tree, and a desired-state directory with \
            members.yaml (the recent commit authors, commented out), environments/dev.yaml (unprotected), \
            environments/prod.yaml (protected, signed approvals) and, for dbt, profiles/profiles.yml. \
            Then it validates and prints the next steps.
            """)

    @OptionGroup var inputs: InputOptions

    @Option(help: "dbt or sqlmesh (default: what the repository holds).")
    var kind: ProjectConfig.Kind?

    func run() throws {
        let repo: GitRepository
        do { repo = try GitRepository.open(inputs.repo) } catch { throw Console.fail(error.description) }
        let outcome: Scaffold.Outcome
        do { outcome = try Scaffold(repo: repo, desired: inputs.desired).run(kind: kind) } catch { throw Console.fail("\(error)") }
        Console.out("a \(outcome.kind.rawValue) project in \(outcome.projectDir.isEmpty ? "the repository's root" : outcome.projectDir)\n")
        for note in outcome.notes { Console.out("note: \(note)\n") }
        for file in outcome.files { Console.out((file.written ? "wrote " : "kept   ") + file.path + (file.written ? "" : " (it exists)") + "\n") }
        let config = outcome.files.first { $0.path.hasSuffix(".dagctl/config.yaml") }?.path ?? ".dagctl/config.yaml"
        Console.out("""

            next steps:
              1. edit \(inputs.desired)/members.yaml: uncomment the people who deploy (prod's allowlist names \(outcome.approvers.joined(separator: " and "))), and add their ssh keys
              2. commit the config (dagctl reads the repository's commits, never its work tree):
                   git -C \(repo.workTree ?? inputs.repo) add .dagctl/config.yaml && git -C \(repo.workTree ?? inputs.repo) commit -m "dagctl"
              3. dagctl validate, then dagctl plan: each environment's first plan
            (\(config) and the files above are yours to change; docs/ in dagctl's repository explains every key)

            validate now:

            """)
        var validate = ValidateCommand()
        validate.inputs = inputs
        do { try validate.run() } catch {
            Console.out("(expected until step 1 and 2 are done)\n")
        }
    }
}

extension ProjectConfig.Kind: ExpressibleByArgument {}
