import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// dbt plans (SPEC §3): a version bump in `.dagctl/config.yaml` triggers one; it is explained by
/// diffing the deployed commit against the new one and categorizing paths with dbt_project.yml's
/// settings; its run phase is `dbt build [--select …]`.
public struct DbtPlans: PlanKind {
    public let repo: GitRepository
    public let members: Members

    public init(repo: GitRepository, members: Members) {
        self.repo = repo
        self.members = members
    }

    public var tool: String { "dbt" }
    public var confirmsByAsking: Bool { false }
    public var buildsImage: Bool { true }
    public var runName: String { "dbt build" }
    /// run_results.json names the failed nodes instead.
    public func failureDetail(log: String) -> String? { nil }

    public func trigger(env: EnvironmentSpec, head: ObjectID, state: EnvironmentState, label: String) throws -> NextPlanDecision {
        let issues = env.keysNotFor(.dbt)
        if !issues.isEmpty { throw EngineError(issues.map(\.description).joined(separator: "\n")) }
        return NextPlanDecision.decide(headVersion: try version(at: head, label: label), plans: state.plans)
    }

    /// The version at `commit` (a dbt project always has one).
    func version(at commit: ObjectID, label: String) throws -> Version {
        guard let version = try config(at: commit, label: label).version else {
            throw EngineError("\(label):\(ProjectConfig.path) has no version; a dbt project needs one, e.g. 'version: 1'")
        }
        return version
    }

    public func explain(env: EnvironmentSpec, head: ObjectID, base: String?, label: String, context: ExplainContext) throws -> Plan? {
        try explain(env: env, commit: head, config: try config(at: head, label: label), base: base, label: label)
    }

    public func check(env: EnvironmentSpec, head: ObjectID, label: String) throws {
        let issues = env.keysNotFor(.dbt)
        if !issues.isEmpty { throw EngineError(issues.map(\.description).joined(separator: "\n")) }
        let config = try config(at: head, label: label)
        try checkRequirements(config, at: head, label: label)
        _ = try explain(env: env, commit: head, config: config, base: head.hex, label: label)
    }

    /// A `requirements:` file named in the config must exist at the commit (a build would fail on it).
    func checkRequirements(_ config: ProjectConfig, at commit: ObjectID, label: String) throws {
        guard let file = config.requirements, try !repo.blobExists(file, at: commit) else { return }
        throw EngineError("\(label):\(ProjectConfig.path): 'requirements': \(file) does not exist at \(label) (commit \(commit.short)); commit it, fix the path, or write 'requirements: none' to use the tool from PATH")
    }

    public func project(at commit: ObjectID) throws -> ProjectConfig {
        try config(at: commit, label: commit.short)
    }

    public func hasRunPhase(_ plan: Plan) -> Bool { plan.scope != .buildOnly }

    public func prepare(_ workspace: Workspace, step: StepRunner) throws {
        let declares = ["packages.yml", "dependencies.yml"].contains { FileManager.default.fileExists(atPath: "\(workspace.projectDir)/\($0)") }
        guard declares else { return }
        var args = [workspace.tool, "deps", "--project-dir", workspace.projectDir]
        if let profiles = workspace.profilesDir { args += ["--profiles-dir", profiles] }
        try step(args, "dbt deps", workspace.environment)
    }

    public func runCommand(_ plan: Plan, env: EnvironmentSpec, in workspace: Workspace) -> [String] {
        var command = displayCommand(plan, env: env) ?? ["dbt", "build", "--target", env.target]
        command[0] = workspace.tool
        command += ["--project-dir", workspace.projectDir]
        if let profiles = workspace.profilesDir { command += ["--profiles-dir", profiles] }
        return command
    }

    public func results(in workspace: Workspace) -> (summary: RunResults.Summary, file: String)? {
        guard let dir = workspace.outputDir else { return nil }
        let file = "\(dir)/run_results.json"
        guard let data = FileManager.default.contents(atPath: file), let summary = RunResults.summarize(data) else { return nil }
        return (summary, file)
    }

    /// A dbt plan's exit status says it all.
    public func staleness(_ plan: Plan, env: EnvironmentSpec, context: ExplainContext) throws -> String? { nil }
    public func confirm(_ plan: Plan, env: EnvironmentSpec, context: ExplainContext) throws -> String? { nil }

    public func displayCommand(_ plan: Plan, env: EnvironmentSpec) -> [String]? {
        Explain.dbtCommand(scope: plan.scope, select: plan.select, target: env.target)
    }

    /// `.dagctl/config.yaml` at `commit`; `label` (a ref name) makes errors read like `main:.dagctl/config.yaml:3`.
    public func config(at commit: ObjectID, label: String) throws -> ProjectConfig {
        let file = "\(label):\(ProjectConfig.path)"
        guard let data = try repo.file(ProjectConfig.path, at: commit) else {
            throw EngineError("\(file) does not exist (commit \(commit.short)); add it with a version, e.g. 'version: 1'")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw EngineError("\(file) is not UTF-8 text") }
        do { return try ProjectConfig.parse(text, file: file) } catch { throw EngineError(error.description) }
    }

    /// Explains the plan for `env` at `commit` against `base` (the last successful deployment, or nil).
    public func explain(env: EnvironmentSpec, commit: ObjectID, config: ProjectConfig, base: String?,
                        label: String) throws -> Plan {
        let dbtFile = config.projectDir.isEmpty ? "dbt_project.yml" : "\(config.projectDir)/dbt_project.yml"
        guard let dbtData = try repo.file(dbtFile, at: commit) else {
            throw EngineError("\(label):\(dbtFile) does not exist (commit \(commit.short)); set project_dir in \(ProjectConfig.path) to the folder holding dbt_project.yml")
        }
        let paths: DbtPaths
        do { paths = try DbtPaths.parse(String(decoding: dbtData, as: UTF8.self), file: "\(label):\(dbtFile)") } catch {
            throw EngineError(error.description)
        }
        let categorizer = Categorizer(projectDir: config.projectDir, paths: paths)

        let situation: BaseSituation
        var baseCommit: ObjectID?
        if let base {
            let id = ObjectID(hex: base)
            if isFullSHA(base) && repo.hasCommit(id) {
                situation = .known
                baseCommit = id
            } else {
                situation = .missing(base)
            }
        } else {
            situation = .firstDeploy
        }

        let changes: [Change]
        if case .missing = situation {
            changes = []
        } else {
            changes = try repo.diff(from: baseCommit, to: commit).map {
                Explain.categorize(path: $0.path, oldPath: $0.oldPath, kind: ChangeKind(rawValue: $0.kind.rawValue)!, using: categorizer)
            }
        }
        // A bare name also selects a folder (at any depth) or the project of that name.
        var otherNames = try repo.folderNames(under: config.projectDir, at: commit)
        if let name = paths.projectName { otherNames.insert(name) }
        let decision = Explain.scope(of: changes, base: situation, categorizer: categorizer, selectDownstream: env.selectDownstream,
                                     otherNames: otherNames)
        guard let version = config.version else { throw EngineError("\(label):\(ProjectConfig.path) has no version") }
        return Plan(id: Plan.id(environment: env.name, version: version, commit: commit.hex),
                    environment: env.name, version: version.text, commit: commit.hex, base: base,
                    author: try author(from: baseCommit, to: commit), createdAt: nil, changes: changes,
                    scope: decision.scope, select: decision.select, warnings: decision.warnings)
    }

    /// The member who authored the newest commit in `base..commit` that changed the version.
    func author(from base: ObjectID?, to commit: ObjectID) throws -> String? {
        func version(_ data: Data?) -> Version? {
            guard let data, let text = String(data: data, encoding: .utf8) else { return nil }
            return try? ProjectConfig.parse(text, file: ProjectConfig.path).version
        }
        let bump = try repo.newestCommit(changing: ProjectConfig.path, from: base, to: commit) { old, new in
            version(old) != version(new)
        }
        guard let bump else { return nil }
        return members.member(withEmail: bump.authorEmail)?.name
    }
}

public struct EngineError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
