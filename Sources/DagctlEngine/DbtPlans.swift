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
        return NextPlanDecision.decide(headVersion: try version(at: head, label: label), plans: state.plans, deployedVersion: state.deployed?.version)
    }

    /// The version at `commit` (a dbt project always has one).
    func version(at commit: ObjectID, label: String) throws -> Version {
        guard let version = try config(at: commit, label: label).version else {
            throw EngineError("\(label):\(ProjectConfig.path) has no version; a dbt project needs one, e.g. 'version: 1'")
        }
        return version
    }

    public func explain(env: EnvironmentSpec, head: ObjectID, base: String?, label: String, context: ExplainContext) throws -> Plan? {
        try explain(env: env, commit: head, config: try config(at: head, label: label), base: base, label: label, context: context)
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
                        label: String, context: ExplainContext? = nil) throws -> Plan {
        let dbtFile = config.projectDir.isEmpty ? "dbt_project.yml" : "\(config.projectDir)/dbt_project.yml"
        guard let dbtData = try repo.file(dbtFile, at: commit) else {
            throw EngineError("\(label):\(dbtFile) does not exist (commit \(commit.short)); set project_dir in \(ProjectConfig.path) to the folder holding dbt_project.yml")
        }
        let paths: DbtPaths
        do { paths = try DbtPaths.parse(String(decoding: dbtData, as: UTF8.self), file: "\(label):\(dbtFile)") } catch {
            throw EngineError(error.description)
        }
        let baseID = base.flatMap { isFullSHA($0) && repo.hasCommit(ObjectID(hex: $0)) ? ObjectID(hex: $0) : nil }
        let categorizer = Categorizer(projectDir: config.projectDir, paths: paths,
                                      localPackages: try localPackages(config, at: [commit] + (baseID.map { [$0] } ?? [])))

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
        var decision = Explain.scope(of: changes, base: situation, categorizer: categorizer, selectDownstream: env.selectDownstream,
                                     otherNames: otherNames)
        guard let version = config.version else { throw EngineError("\(label):\(ProjectConfig.path) has no version") }
        var plan = Plan(id: Plan.id(environment: env.name, version: version, commit: commit.hex, taken: context?.taken ?? []),
                        environment: env.name, version: version.text, commit: commit.hex, base: base,
                        author: try author(from: baseCommit, to: commit), createdAt: nil, changes: changes,
                        scope: decision.scope, select: decision.select, warnings: decision.warnings)
        if env.scopeMode == .precise, baseCommit != nil, context != nil { plan.scopeMode = EnvironmentSpec.ScopeMode.precise.rawValue }
        if let unsettled = context?.unsettled {
            // A rollback ran part way: what the warehouse holds is not what any diff says.
            plan.scope = .all
            plan.select = []
            plan.warnings.insert("\(unsettled); planning a full build", at: 0)
        } else if env.scopeMode == .precise, let baseCommit, let context {
            // Precise scope narrows what the path rules would build whole; a first deploy or a missing
            // base builds all either way.
            let precise = preciseScope(changes: changes, env: env, config: config, categorizer: categorizer, base: baseCommit,
                                       head: commit, otherNames: otherNames, context: context)
            plan.manifest = precise.manifest
            switch precise.outcome {
            case .success(let d) where d.scope == .all:
                decision.warnings.append("precise scope: \(d.allBecause ?? "a change dagctl cannot map"); planning a full build")
                plan.scope = .all
                plan.select = []
            case .success(let d):
                plan.scope = d.scope
                plan.select = d.select
                plan.reasons = d.reasons
            case .failure(let why):
                decision.warnings.append("precise scope: \(why); planning a full build")
                plan.scope = .all
                plan.select = []
            }
            plan.warnings = decision.warnings
        }
        return plan
    }

    /// The base commit's dependency index (kept by its deploy, or made with `dbt parse`), then the
    /// precise selection; the reason when there is no index to trust.
    func preciseScope(changes: [Change], env: EnvironmentSpec, config: ProjectConfig, categorizer: Categorizer, base: ObjectID,
                      head: ObjectID, otherNames: Set<String>, context: ExplainContext)
        -> (outcome: Result<PreciseScope.Decision, PreciseFailure>, manifest: String?) {
        let index: DependencyIndex
        switch context.givenIndex.map({ Result<DependencyIndex, StateError>.success($0) }) ?? context.manifests?.index(env.name) {
        case .success(let given)? where context.givenIndex != nil:
            index = given
        case .failure(let error)?:
            return (.failure(PreciseFailure("the kept manifest cannot be used: \(error)")), nil)
        case .success(let kept)? where kept.commit == base.hex:
            index = kept
        default:
            do {
                index = try parsedIndex(env: env, config: config, base: base, context: context)
            } catch {
                return (.failure(PreciseFailure("no manifest of the deployed commit \(base.short): \(error)")), nil)
            }
        }
        let scope = PreciseScope(index: index, categorizer: categorizer, read: { path, side in
            (try? repo.file(path, at: side == .base ? base : head)).flatMap { $0.flatMap { String(data: $0, encoding: .utf8) } }
        }, selectDownstream: env.selectDownstream, otherNames: otherNames)
        let source = index.source.isEmpty ? "" : " (\(index.source))"
        return (.success(scope.decide(changes)), "manifest of \(base.short)\(source)")
    }

    public struct PreciseFailure: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// `dbt parse` of an export of the base commit, in the environment's virtualenv; kept when the
    /// context keeps manifests (a reconcile), so the next explain does not parse again.
    func parsedIndex(env: EnvironmentSpec, config: ProjectConfig, base: ObjectID, context: ExplainContext) throws -> DependencyIndex {
        // dbt's own output goes to stderr (the explain log); stdout carries the manifest.
        let script = """
            cd "$1" || exit 1
            shift
            if [ -f packages.yml ] || [ -f dependencies.yml ]; then "$0" deps "$@" >&2 || exit 1; fi
            "$0" parse "$@" >&2 && cat "${DBT_TARGET_PATH:-target}/manifest.json"
            """
        let manifest = try (context.inspectHere ?? context.inspect)(base) { workspace in
            var args = ["/bin/sh", "-c", script, workspace.tool, workspace.projectDir, "--target", env.target]
            if let profiles = workspace.profilesDir { args += ["--profiles-dir", profiles] }
            return args
        }
        let index = try DependencyIndex.build(manifest: manifest, commit: base.hex, source: "dbt parse")
        if context.keepsParsedManifests { try? context.manifests?.keep(env.name, index: index, manifest: manifest, partialParse: nil) }
        return index
    }

    /// Whether none of the plan's changed files is one dbt reads (a README at the top, CI files): then
    /// the base's manifest is still true of the plan's commit.
    public func touchesNothingDbtReads(_ plan: Plan) -> Bool {
        let commit = ObjectID(hex: plan.commit)
        guard let config = try? config(at: commit, label: commit.short) else { return false }
        let file = config.projectDir.isEmpty ? "dbt_project.yml" : "\(config.projectDir)/dbt_project.yml"
        guard let data = try? repo.file(file, at: commit), let paths = try? DbtPaths.parse(String(decoding: data, as: UTF8.self), file: file) else {
            return false
        }
        guard let locals = try? localPackages(config, at: [commit]) else { return false }
        let categorizer = Categorizer(projectDir: config.projectDir, paths: paths, localPackages: locals)
        return plan.changes.allSatisfy { !categorizer.dbtReads($0.path) && !($0.oldPath.map(categorizer.dbtReads) ?? false) }
    }

    /// The `local:` package folders that `packages.yml` or `dependencies.yml` name at any of `commits`.
    func localPackages(_ config: ProjectConfig, at commits: [ObjectID]) throws -> [String] {
        var out: [String] = []
        for name in ["packages.yml", "dependencies.yml"] {
            let path = config.projectDir.isEmpty ? name : "\(config.projectDir)/\(name)"
            for commit in commits {
                if let data = try repo.file(path, at: commit) { out += Categorizer.localPackages(in: String(decoding: data, as: UTF8.self)) }
            }
        }
        return out
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
