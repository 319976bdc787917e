import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Where a plan's project sits for one attempt, as the backend running it sees it.
public struct Workspace: Sendable {
    /// The project folder (absolute on this machine; relative to the image's working directory in a pod).
    public var projectDir: String
    /// The tool the run phase calls (`dbt` from a virtualenv, from PATH, or in the image).
    public var tool: String
    /// The profiles folder the tool reads, when dagctl passes one.
    public var profilesDir: String?
    /// Where the tool writes its artifacts (dbt's target path), when dagctl decides it.
    public var outputDir: String?
    /// The environment the tool runs with.
    public var environment: [String: String]
    /// A folder of dagctl's for what else the tool writes (SQLMesh's log files), so that nothing lands
    /// in dagctl's working directory; nil in a pod, whose files go with it.
    public var scratchDir: String?

    public init(projectDir: String, tool: String, profilesDir: String? = nil, outputDir: String? = nil, environment: [String: String] = [:],
                scratchDir: String? = nil) {
        self.projectDir = projectDir
        self.tool = tool
        self.profilesDir = profilesDir
        self.outputDir = outputDir
        self.environment = environment
        self.scratchDir = scratchDir
    }
}

/// Runs one step of a phase (a child process whose output goes to the phase's log), or throws.
public typealias StepRunner = (_ arguments: [String], _ what: String, _ environment: [String: String]) throws -> Void

/// What explaining and checking a plan may use besides git: the plan ids the environment already
/// used, and a way to run a short helper of the plan kind where the commit's project is prepared (the
/// environment's backend does it: an export and its tools locally, a Job on Kubernetes).
public struct ExplainContext {
    public var taken: Set<String>
    /// Runs `command` (built for the prepared workspace) for the project at the commit; returns its stdout.
    public var inspect: (ObjectID, (Workspace) -> [String]) throws -> Data
    /// Where deploys' manifests are kept (precise scope reads them).
    public var manifests: ManifestStore?
    /// Whether a manifest made by `dbt parse` is kept for later explains (reconcile: yes; a preview
    /// writes nothing).
    public var keepsParsedManifests = false
    /// The base commit's index as given (`plan --manifest FILE`), used instead of a kept one.
    public var givenIndex: DependencyIndex?
    /// Like `inspect`, but always on this machine (in the environment's virtualenv), whatever the
    /// environment's backend: `dbt parse` of a base commit for precise scope.
    public var inspectHere: ((ObjectID, (Workspace) -> [String]) throws -> Data)?
    /// Why the warehouse may not match the deployed commit (a rollback that ran part way): a dbt plan
    /// then builds everything.
    public var unsettled: String?

    public init(taken: Set<String> = [], manifests: ManifestStore? = nil, keepsParsedManifests: Bool = false, givenIndex: DependencyIndex? = nil,
                inspect: @escaping (ObjectID, (Workspace) -> [String]) throws -> Data = { _, _ in Data() }) {
        self.taken = taken
        self.manifests = manifests
        self.keepsParsedManifests = keepsParsedManifests
        self.givenIndex = givenIndex
        self.inspect = inspect
    }
}

/// A kind of plan: what triggers a new one, how it is explained, what its run phase runs and how its
/// success is confirmed. dbt and SQLMesh plans are the kinds; the engine and the backends know plans
/// only through this.
public protocol PlanKind: Sendable {
    /// The tool the run phase calls (`dbt`, `sqlmesh`), from the project's virtualenv or PATH.
    var tool: String { get }
    /// The run phase in two words for reasons (`dbt build`, `sqlmesh plan`).
    var runName: String { get }
    /// Whether the Kubernetes build phase makes an image of the project (dbt, with Kaniko); otherwise
    /// Jobs run on the environment's existing image in a clone of the repository at the plan's commit.
    var buildsImage: Bool { get }
    /// From a failed run's log, the tool's own one-line account of what went wrong, if it gives one.
    func failureDetail(log: String) -> String?
    /// Decides from the head commit and the environment's state whether a new plan is due. `label`
    /// names `head` in error messages (the ref).
    func trigger(env: EnvironmentSpec, head: ObjectID, state: EnvironmentState, label: String) throws -> NextPlanDecision
    /// Explains the plan for `env` at `head` against `base` (the deployed commit; nil on a first
    /// deploy); nil when there is nothing to do (the environment is in sync).
    func explain(env: EnvironmentSpec, head: ObjectID, base: String?, label: String, context: ExplainContext) throws -> Plan?
    /// What `dagctl validate` checks at the head without running anything: the environment's keys for
    /// this kind, and the project's own files.
    func check(env: EnvironmentSpec, head: ObjectID, label: String) throws
    /// How the project at `commit` is built: its folder, requirements file and Dockerfile.
    func project(at commit: ObjectID) throws -> ProjectConfig
    /// Whether the plan has a run phase (a dbt `build_only` plan has not).
    func hasRunPhase(_ plan: Plan) -> Bool
    /// Makes an exported, tooled workspace ready to run (dbt: `dbt deps` when packages are declared).
    func prepare(_ workspace: Workspace, step: StepRunner) throws
    /// The run phase's command in `workspace`.
    func runCommand(_ plan: Plan, env: EnvironmentSpec, in workspace: Workspace) -> [String]
    /// What a finished run left behind (dbt: run_results.json), summarized; nil when nothing is there.
    func results(in workspace: Workspace) -> (summary: RunResults.Summary, file: String)?
    /// Right before an approved plan runs: why it is stale (and must not run), or nil.
    func staleness(_ plan: Plan, env: EnvironmentSpec, context: ExplainContext) throws -> String?
    /// Whether `confirm` asks the tool what is deployed (SQLMesh), so that it can also tell, after a
    /// crash, that an interrupted run had in fact finished; dbt's answer is only its exit status.
    var confirmsByAsking: Bool { get }
    /// After a run that exited well: why it still did not succeed, or nil when it did.
    func confirm(_ plan: Plan, env: EnvironmentSpec, context: ExplainContext) throws -> String?
    /// The command shown for review (`plan`, reports): the run command without backend paths; nil
    /// without a run phase.
    func displayCommand(_ plan: Plan, env: EnvironmentSpec) -> [String]?
}
