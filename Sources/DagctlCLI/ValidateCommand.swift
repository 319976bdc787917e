import ArgumentParser
import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check every input file and what is on disk for the current plans; list every problem.",
        discussion: """
            Checks members.yaml, environments/*.yaml and every approvals/, retries/ and rollbacks/ file; at each \
            environment's ref, .dagctl/config.yaml, the requirements file it names, and dbt_project.yml \
            (a dbt project: its path settings, and that a plan can be explained) or SQLMesh's config; and, \
            for each environment's current plan (the newest in the state file, or the one a version bump \
            would explain), its approval and retry files judged as reconcile would: a self-approval on a \
            protected environment, a signature that does not verify, a copy under another name, … each \
            with its reason; and rollbacks/<env>.yaml judged the same way. Runs neither dbt nor SQLMesh. \
            Prints every problem as file:line: 'key': what is wrong, and exits 1 if there is any.
            """)

    @OptionGroup var inputs: InputOptions

    func run() throws {
        let desired = DesiredState.load(inputs.desired)
        var problems = desired.issues.map(\.description)
        let fileIssues = desired.decisionFileIssues()
        problems += fileIssues.map(\.description)
        let store = StateStore(path: inputs.state)
        let state: StateFile
        do { state = try store.load() } catch {
            problems.append(error.description)
            state = StateFile()
        }
        do {
            let git = try GitRepository.open(inputs.repo)
            let planner = Planner(repo: git, desired: desired, state: state, layout: store.layout, history: store.history,
                                  verify: SSHSignatures.verify)
            var sqlmeshTargets: [String: [EnvironmentSpec]] = [:]
            for env in desired.environments {
                do {
                    let head = try git.resolveRef(env.ref)
                    let kind = try planner.cycle.kind(at: head, label: env.ref)
                    if !kind.buildsImage { sqlmeshTargets["\(env.gateway ?? "")/\(env.sqlmeshEnvironment)", default: []].append(env) }
                    try kind.check(env: env, head: head, label: env.ref)
                    // A file already reported above (a misnamed one, say) is not reported twice.
                    problems += decisionProblems(env, kind: kind, planner: planner, skipping: Set(fileIssues.map(\.file)))
                } catch {
                    problems.append("\(env.file): environment '\(env.name)': \(error)")
                }
            }
            // Two environments applying to one SQLMesh environment would each see the other's applies as drift.
            for (_, envs) in sqlmeshTargets.sorted(by: { $0.key < $1.key }) where envs.count > 1 {
                for env in envs {
                    problems.append("\(env.file): 'sqlmesh_environment': environments \(envs.map(\.name).joined(separator: " and ")) all plan and apply SQLMesh environment '\(env.sqlmeshEnvironment)'; give each its own")
                }
            }
        } catch {
            problems.append("\(error)")
        }
        // Variables are read where dagctl runs (cron), which may not be here: said, not counted.
        for webhook in desired.notifications?.webhooks ?? [] {
            var missing: [String] = []
            if case .failure(let error) = webhook.resolveURL() { missing.append(error.description) }
            if case .failure(let error) = webhook.resolveSecret() { missing.append(error.description) }
            for text in missing {
                Console.out("warning: \(desired.root)/\(NotificationsSpec.fileName)\(webhook.line.map { ":\($0)" } ?? ""): webhook '\(webhook.name)': \(text)\n")
            }
        }
        if problems.isEmpty {
            Console.out("ok: \(desired.environments.count) environment\(desired.environments.count == 1 ? "" : "s") (\(desired.environments.map(\.name).joined(separator: ", "))), \(desired.members.all.count) members\n")
            return
        }
        for p in problems { Console.out(p + "\n") }
        Console.out("\(problems.count) problem\(problems.count == 1 ? "" : "s") found\n")
        throw ExitCode(1)
    }

    /// The decision files of the environment's current plan that reconcile would not count, with why.
    /// A dbt plan due at the head is explained (cheap, from git); a SQLMesh plan only from the state
    /// file (explaining one would start Python).
    func decisionProblems(_ env: EnvironmentSpec, kind: PlanKind, planner: Planner, skipping: Set<String>) -> [String] {
        var plans = planner.state.environments[env.name]?.plans ?? []
        let preview = kind.buildsImage ? planner.selectedEnvironments([env.name]).first.map({ planner.preview($0) }) : nil
        if let preview, let plan = preview.plan, preview.isNewPlan {
            plans.append(plan)
        }
        let judgement = planner.cycle.judge(env, plans: plans)
        var out = (judgement.review?.verdicts ?? []).filter { !$0.valid && !skipping.contains($0.file) }.map { "\($0.file): does not count for the plan: \($0.reason ?? "invalid")" }
        if let ignored = judgement.retryIgnored { out.append(ignored) }
        // The preview judged the rollback file already; a SQLMesh environment has it judged here.
        let pin = preview.map(\.pin) ?? planner.cycle.pin(env, plans: planner.history(env.name) + plans)
        if let pin, let problem = pin.problem, !skipping.contains(pin.file) {
            out.append("\(pin.file): refused, so it holds '\(env.name)' (nothing new is deployed) until it is fixed or deleted: \(problem)")
        }
        return out
    }
}
