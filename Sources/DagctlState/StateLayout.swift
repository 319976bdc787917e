import DagctlSpec

/// Where everything lives beside the state file: the one place that knows the state folder's layout.
///
/// ```
/// <dir>/state.json                          the state file (any name)
/// <dir>/state.json.lock                     the run lock
/// <dir>/history/<env>.jsonl                 finished plans
/// <dir>/logs/<plan>/attempt-<n>/            build.log, run.log, run_results.json
/// <dir>/builds/<plan>/attempt-<n>/          project/ (the export), dbt-target/, dbt-logs/
/// <dir>/cache/venvs/<key>/                  virtualenvs by requirements and Python version
/// <dir>/cache/projects/<env>                a link to the dbt project of the environment's current build
/// <dir>/logs/explain/<env>.log              what a SQLMesh explain printed, the last time
/// <dir>/manifests/<env>/                  the last deploy's manifest.json, partial_parse.msgpack, index.json
/// <dir>/outbox/dropped.jsonl                notifications given up (undelivered ones are in the state file)
/// ```
/// Plan ids and environment names are checked before they get here (`Names`), so no part leaves `dir`.
public struct StateLayout: Sendable, Equatable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var history: String { "\(directory)/history" }
    public func history(_ env: String) -> String { "\(history)/\(env).jsonl" }
    public var logs: String { "\(directory)/logs" }
    public func logs(_ plan: String) -> String { "\(logs)/\(plan)" }
    public func logs(_ plan: String, attempt: Int) -> String { "\(logs(plan))/attempt-\(attempt)" }
    public func log(_ plan: String, attempt: Int, phase: String) -> String { "\(logs(plan, attempt: attempt))/\(phase).log" }
    public var builds: String { "\(directory)/builds" }
    public func build(_ plan: String) -> String { "\(builds)/\(plan)" }
    public func build(_ plan: String, attempt: Int) -> String { "\(build(plan))/attempt-\(attempt)" }
    public var virtualenvs: String { "\(directory)/cache/venvs" }
    /// The path dbt is given as `--project-dir` for an environment's local builds: a link to the
    /// current attempt's project. dbt records absolute paths in its partial-parse file, so a stable
    /// path is what lets the next deploy reuse it (a seed found at a pruned build folder would fail).
    public func currentProject(_ env: String) -> String { "\(directory)/cache/projects/\(env)" }
    /// Where a plan kind's helper looks at a commit (an export removed right after).
    public func inspection(_ env: String) -> String { "\(directory)/cache/explain/\(env)" }
    /// What the helper printed on stderr the last time it looked for `env`.
    public func explainLog(_ env: String) -> String { "\(logs)/explain/\(env).log" }
    public func manifests(_ env: String) -> String { "\(directory)/manifests/\(env)" }
    public var outbox: String { "\(directory)/outbox" }
    public var droppedEvents: String { "\(outbox)/dropped.jsonl" }
}

extension StateStore {
    public var layout: StateLayout { StateLayout(directory: directory) }
}
