import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// SQLMesh plans: SQLMesh's own state is the trigger. When the ref's commit moves, dagctl asks SQLMesh
/// (through its Python API, with a helper it ships) what `sqlmesh plan <environment>` would do; no
/// changes means in sync, changes make a plan whose run phase is `sqlmesh plan … --auto-apply`.
/// Before applying, SQLMesh is asked again (a stale plan is never applied), and after, once more (the
/// environment must then be in sync).
public struct SQLMeshPlans: PlanKind {
    public let repo: GitRepository
    public let members: Members

    public init(repo: GitRepository, members: Members) {
        self.repo = repo
        self.members = members
    }

    public var tool: String { "sqlmesh" }
    public var confirmsByAsking: Bool { true }
    public var buildsImage: Bool { false }
    public var runName: String { "sqlmesh plan" }

    /// sqlmesh ends a failed plan with `Error: …` ("Cannot generate plan due to failing test(s)…",
    /// "Plan application failed.") and names failed audits on lines before it.
    public func failureDetail(log: String) -> String? {
        let lines = log.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let error = lines.last(where: { $0.hasPrefix("Error:") }) else { return nil }
        let audit = lines.last { $0.localizedCaseInsensitiveContains("audit") && $0.localizedCaseInsensitiveContains("fail") && !$0.hasPrefix("Error:") }
        return ([audit, error].compactMap { $0 }).joined(separator: "; ")
    }

    /// No Python unless the head moved: the newest plan, the deployment or the last in-sync answer is
    /// at this commit already.
    public func trigger(env: EnvironmentSpec, head: ObjectID, state: EnvironmentState, label: String) throws -> NextPlanDecision {
        try checkEnvironment(env)
        if let newest = state.plans.last, newest.commit == head.hex { return .keep(newest) }
        // Nothing waits for approval or a run, and SQLMesh already answered for this commit.
        let settled = state.plans.last.map { $0.status.isFinal || $0.status == .failed } ?? true
        if settled, head.hex == state.inSync || head.hex == state.deployed?.commit {
            return state.plans.last.map { .keep($0) } ?? .nothingDue
        }
        return .create(supersede: state.plans.filter { $0.status == .pending }.map(\.id))
    }

    public func explain(env: EnvironmentSpec, head: ObjectID, base: String?, label: String, context: ExplainContext) throws -> Plan? {
        try checkEnvironment(env)
        let answer = try ask(env, at: head, context)
        guard answer.hasChanges else { return nil }
        let models = answer.models
        let author = try repo.commitInfo(head)
        return Plan(id: Plan.sqlmeshID(environment: env.name, commit: head.hex, taken: context.taken),
                    environment: env.name, version: "", commit: head.hex, base: answer.planID,
                    author: members.member(withEmail: author.authorEmail)?.name, changes: [], scope: .sqlmesh,
                    select: models.compactMap(\.selectEntry).sorted(), models: models, warnings: [])
    }

    /// Without Python: the keys, and a project folder that holds SQLMesh's config.
    public func check(env: EnvironmentSpec, head: ObjectID, label: String) throws {
        try checkEnvironment(env)
        let config = try project(at: head)
        try DbtPlans(repo: repo, members: members).checkRequirements(config, at: head, label: label)
        let dir = config.projectDir
        let found = try ["config.yaml", "config.yml", "config.py"].contains { try repo.blobExists((dir.isEmpty ? "" : dir + "/") + $0, at: head) }
        if !found {
            throw EngineError("\(label):\(dir.isEmpty ? "." : dir) holds no SQLMesh config (config.yaml or config.py); set project_dir in \(ProjectConfig.path)")
        }
    }

    public func project(at commit: ObjectID) throws -> ProjectConfig {
        try DbtPlans(repo: repo, members: members).config(at: commit, label: commit.short)
    }

    public func hasRunPhase(_ plan: Plan) -> Bool { true }

    public func prepare(_ workspace: Workspace, step: StepRunner) throws {}

    public func runCommand(_ plan: Plan, env: EnvironmentSpec, in workspace: Workspace) -> [String] {
        var command = [workspace.tool, "--paths", workspace.projectDir]
        // sqlmesh writes its log files into the working directory unless told where.
        if let scratch = workspace.scratchDir { command += ["--log-file-dir", "\(scratch)/sqlmesh-logs"] }
        if let gateway = env.gateway { command += ["--gateway", gateway] }
        return command + ["plan", env.sqlmeshEnvironment, "--auto-apply", "--no-prompts"]
    }

    public func results(in workspace: Workspace) -> (summary: RunResults.Summary, file: String)? { nil }

    /// Asked again after the apply: the environment must now be in sync with the plan's commit.
    public func confirm(_ plan: Plan, env: EnvironmentSpec, context: ExplainContext) throws -> String? {
        let answer = try ask(env, at: ObjectID(hex: plan.commit), context)
        guard answer.hasChanges else { return nil }
        return "after the apply SQLMesh still plans changes for \(env.sqlmeshEnvironment): " + Self.describe(answer.models)
    }

    /// Asked right before applying: SQLMesh's answer must be the approved one.
    public func staleness(_ plan: Plan, env: EnvironmentSpec, context: ExplainContext) throws -> String? {
        let answer = try ask(env, at: ObjectID(hex: plan.commit), context)
        if answer.planID != plan.base {
            return "the SQLMesh environment \(env.sqlmeshEnvironment) moved since this plan was explained (its plan id is \(answer.planID ?? "none"), not \(plan.base ?? "none")); a fresh plan is explained"
        }
        // Backfill that only grew because time passed does not count.
        func shape(_ models: [ModelChange]) -> [String] { models.map { "\($0.change.rawValue):\($0.model):\($0.category ?? "")" }.sorted() }
        if shape(answer.models) != shape(plan.models ?? []) {
            return "SQLMesh's changes for \(env.sqlmeshEnvironment) differ from the approved plan's (now: \(Self.describe(answer.models))); a fresh plan is explained"
        }
        return nil
    }

    public func displayCommand(_ plan: Plan, env: EnvironmentSpec) -> [String]? {
        var command = ["sqlmesh"]
        if let gateway = env.gateway { command += ["--gateway", gateway] }
        return command + ["plan", env.sqlmeshEnvironment, "--auto-apply", "--no-prompts"]
    }

    static func describe(_ models: [ModelChange]) -> String {
        models.isEmpty ? "none" : models.map { "\($0.model) \($0.change.rawValue)" }.joined(separator: ", ")
    }

    /// dbt-only keys in a SQLMesh environment are errors at their line.
    func checkEnvironment(_ env: EnvironmentSpec) throws {
        let issues = env.keysNotFor(.sqlmesh)
        if !issues.isEmpty { throw EngineError(issues.map(\.description).joined(separator: "\n")) }
    }

    // MARK: asking SQLMesh

    struct Answer {
        var planID: String?
        var hasChanges: Bool
        var models: [ModelChange]
    }

    /// Runs the helper where the commit's project is prepared, and reads its last line of output.
    func ask(_ env: EnvironmentSpec, at commit: ObjectID, _ context: ExplainContext) throws -> Answer {
        let output = try context.inspect(commit) { workspace in
            [Self.python(of: workspace.tool), "-c", Self.helper, workspace.projectDir, env.sqlmeshEnvironment, env.gateway ?? ""]
        }
        let text = String(decoding: output, as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).last,
              let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let hasChanges = json["has_changes"] as? Bool, let items = json["models"] as? [[String: Any]] else {
            throw EngineError("SQLMesh's answer for \(env.sqlmeshEnvironment) at \(commit.short) could not be read: \(text.suffix(300))")
        }
        let models = try items.map { item -> ModelChange in
            guard let model = item["model"] as? String, let change = (item["change"] as? String).flatMap(ModelChange.Kind.init(rawValue:)) else {
                throw EngineError("SQLMesh's answer lists a model dagctl cannot read: \(item)")
            }
            let backfill = (item["backfill"] as? [[String]]) ?? []
            return ModelChange(model: model, change: change, category: item["category"] as? String, backfill: backfill)
        }
        return Answer(planID: json["plan_id"] as? String, hasChanges: hasChanges, models: models)
    }

    /// The Python of an installed `sqlmesh`: the interpreter its script starts with (`#!…/python`), so
    /// the helper imports the very sqlmesh the run phase uses; `python3` in a pod's image.
    static func python(of tool: String) -> String {
        guard tool.hasPrefix("/"), let handle = FileHandle(forReadingAtPath: tool),
              let head = try? handle.read(upToCount: 512) else { return "python3" }
        try? handle.close()
        let first = String(decoding: head, as: UTF8.self).split(separator: "\n").first ?? ""
        guard first.hasPrefix("#!/") else { return "python3" }
        let interpreter = first.dropFirst(2).split(separator: " ").first.map(String.init) ?? "python3"
        return FileManager.default.isExecutableFile(atPath: interpreter) ? interpreter : "python3"
    }

    /// The helper dagctl ships: what `sqlmesh plan <environment>` would do, as one JSON line on stdout,
    /// without applying anything. Arguments: project folder, environment, gateway ("" for the default).
    static let helper = #"""
import json
import sys
from datetime import datetime, timezone

from sqlmesh import Context

project, environment, gateway = sys.argv[1], sys.argv[2], sys.argv[3] or None
context = Context(paths=project, gateway=gateway)
current = context.state_reader.get_environment(environment)
plan = context.plan_builder(environment, skip_tests=True).build()
diff = plan.context_diff
DAY = 86400000


def stamp(ms):
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d") if moment.time() == datetime.min.time() else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def span(start, end):
    # As sqlmesh prints it: whole days as [first day, last day], otherwise [start, end) in UTC.
    return [stamp(start), stamp(end - DAY)] if start % DAY == 0 and end % DAY == 0 else [stamp(start), stamp(end)]


backfill = {m.snapshot_id.name: [span(s, e) for s, e in m.merged_intervals] for m in plan.missing_intervals}


def category(snapshot):
    if snapshot is None:
        return None
    if snapshot.is_forward_only:
        return "forward_only"
    return snapshot.change_category.name.lower() if snapshot.change_category is not None else None


def display(name):
    # As sqlmesh plan prints it: schema.name, no quotes, no catalog.
    return ".".join(part.strip('"') for part in name.split(".")[-2:])


ORDER = ["added", "removed", "directly_modified", "indirectly_modified", "metadata"]
models = {}


def add(name, change, snapshot):
    known = models.get(name)
    if known is not None and ORDER.index(known["change"]) <= ORDER.index(change):
        return
    models[name] = {"model": display(name), "change": change, "category": category(snapshot),
                    "backfill": backfill.get(name, [])}


for snapshot_id in diff.added:
    add(snapshot_id.name, "added", diff.snapshots.get(snapshot_id))
for snapshot_id in diff.removed_snapshots:
    add(snapshot_id.name, "removed", None)
for name, (new, _old) in diff.modified_snapshots.items():
    if diff.directly_modified(name):
        add(name, "directly_modified", new)
    elif diff.indirectly_modified(name):
        add(name, "indirectly_modified", new)
    else:
        add(name, "metadata", new)

print(json.dumps({"environment": environment, "plan_id": current.plan_id if current else None,
                  "has_changes": bool(diff.has_changes), "models": sorted(models.values(), key=lambda m: m["model"])},
                 sort_keys=True))
"""#
}
