import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Runs one attempt of an approved plan on the local backend: build (export the exact commit, prepare
/// dbt, `dbt deps`), then run (`dbt build`), recording every status change through `record`.
struct LocalExecutor {
    let repo: GitRepository
    let desired: DesiredState
    let stateDir: String
    let console: FileHandle
    let heartbeat: TimeInterval

    /// Where the attempt's logs go: `<state-dir>/logs/<plan-id>/attempt-<n>/`.
    static func logDir(stateDir: String, plan: String, attempt: Int) -> String {
        "\(stateDir)/logs/\(plan)/attempt-\(attempt)"
    }

    /// Runs the next attempt; `record` saves the plan (and the state) at each change. Returns the plan as
    /// it ended and a one-line account of each step.
    func execute(_ plan: Plan, env: EnvironmentSpec, record: (Plan) throws -> Void) throws -> (Plan, [String]) {
        var plan = plan
        var notes: [String] = []
        plan.startAttempt(at: Timestamp.now())
        let n = plan.attempts.count
        try record(plan)

        let logs = Self.logDir(stateDir: stateDir, plan: plan.id, attempt: n)
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        func end(_ error: Error) throws -> (Plan, [String]) {
            if let stop = error as? InterruptedError {
                plan.interruptAttempt(at: Timestamp.now(), reason: stop.description)
            } else {
                plan.failAttempt("\(error)", at: Timestamp.now())
            }
            try record(plan)
            notes.append("\(plan.statusReason!) (logs: \(logs))")
            return (plan, notes)
        }
        let timeout = env.backend.timeoutSeconds.map(TimeInterval.init)
        let attemptDir = URL(fileURLWithPath: "\(stateDir)/builds/\(plan.id)/attempt-\(n)").standardizedFileURL.path
        let exportDir = "\(attemptDir)/project"
        // dbt's own output goes where dagctl decides, never where the repository's files or links say.
        var environment = Self.environment(for: env)
        environment["DBT_TARGET_PATH"] = "\(attemptDir)/dbt-target"
        environment["DBT_LOG_PATH"] = "\(attemptDir)/dbt-logs"

        // Build.
        let buildStart = Date()
        let buildLog = try PhaseLog.create("\(logs)/build.log")
        let buildSink = OutputSink(prefix: "[\(env.name) build] ", console: console, heartbeat: heartbeat)
        let dbt: String, projectDir: String
        do {
            try? FileManager.default.removeItem(atPath: attemptDir)
            try FileManager.default.createDirectory(atPath: attemptDir, withIntermediateDirectories: true)
            func say(_ line: String) {
                buildLog.write(Data("dagctl: \(line)\n".utf8))
                buildSink.say(line)
            }
            say("exporting commit \(plan.commit) into \(exportDir)")
            let exported = try repo.export(ObjectID(hex: plan.commit), to: exportDir)
            for path in exported.skippedSubmodules { say("skipped submodule \(path) (submodules are not exported)") }
            for link in exported.droppedLinks {
                say("left out the symbolic link \(link.path) -> \(link.target): it leads outside the project")
            }
            let config = try Explainer(repo: repo, members: desired.members).config(at: ObjectID(hex: plan.commit), label: plan.commit.prefix(10).description)
            projectDir = config.projectDir.isEmpty ? exportDir : "\(exportDir)/\(config.projectDir)"
            let requirements = config.requirements.map { "\(exportDir)/\($0)" } ?? "\(exportDir)/requirements.txt"
            let hasRequirements = config.requirements != nil || FileManager.default.fileExists(atPath: requirements)
            let backend = LocalBackend(cacheDir: "\(stateDir)/cache", deadline: timeout.map { buildStart.addingTimeInterval($0) })
            dbt = try backend.dbtExecutable(requirements: hasRequirements ? requirements : nil, environment: environment,
                                            log: buildLog, sink: buildSink)
            try backend.deps(dbt: dbt, projectDir: projectDir, profilesDir: profilesDir(env), environment: environment,
                             log: buildLog, sink: buildSink)
        } catch {
            try? buildLog.close()
            return try end(error)
        }
        try? buildLog.close()
        notes.append("built attempt \(n) in \(formatDuration(Date().timeIntervalSince(buildStart)))")

        guard let command = LocalBackend.runCommand(dbt: dbt, scope: plan.scope, select: plan.select, target: env.target,
                                                    projectDir: projectDir, profilesDir: profilesDir(env)) else {
            plan.succeedAttempt(at: Timestamp.now())
            try record(plan)
            notes.append("build_only: no dbt run")
            return (plan, notes)
        }
        do { try Interruption.check(before: "the run phase") } catch { return try end(error) }

        // Run.
        plan.status = .running
        plan.attempts[n - 1].phase = .run
        try record(plan)
        let runStart = Date()
        let runLog = try PhaseLog.create("\(logs)/run.log")
        let runSink = OutputSink(prefix: "[\(env.name) run] ", console: console, heartbeat: heartbeat)
        runLog.write(Data("dagctl: \(command.joined(separator: " "))\n".utf8))
        runSink.say(command.joined(separator: " "))
        let ended: ProcessEnd
        do {
            ended = try LiveProcess.run(command, environment: environment, log: runLog, sink: runSink, timeout: timeout) { pid in
                plan.attempts[n - 1].pid = pid
                plan.attempts[n - 1].pidStart = LiveProcess.startTime(of: pid)
                try? record(plan)
            }
        } catch {
            try? runLog.close()
            return try end(error)
        }
        try? runLog.close()
        plan.attempts[n - 1].pid = nil
        plan.attempts[n - 1].pidStart = nil

        var summary: RunResults.Summary?
        if let data = FileManager.default.contents(atPath: "\(attemptDir)/dbt-target/run_results.json") {
            _ = FileManager.default.createFile(atPath: "\(logs)/run_results.json", contents: data)
            summary = RunResults.summarize(data)
            plan.attempts[n - 1].summary = summary?.counts ?? [:]
        }
        if case .interrupted(let sig) = ended {
            plan.interruptAttempt(at: Timestamp.now(), reason: "dagctl received \(Interruption.name(sig)) and stopped dbt")
            try record(plan)
            notes.append("\(plan.statusReason!) (logs: \(logs))")
            return (plan, notes)
        }
        guard ended.succeeded else {
            var reason = "dbt build: \(ended.description)"
            if case .timedOut = ended { reason += " (backend.timeout_seconds); its processes were stopped" }
            if let failures = summary?.failures, !failures.isEmpty { reason += "; failed: " + failures.joined(separator: ", ") }
            return try end(CommandError(reason))
        }
        plan.succeedAttempt(at: Timestamp.now())
        try record(plan)
        notes.append("ran \(Explain.dbtCommand(scope: plan.scope, select: plan.select, target: env.target)!.joined(separator: " ")) in \(formatDuration(Date().timeIntervalSince(runStart)))")
        return (plan, notes)
    }

    func profilesDir(_ env: EnvironmentSpec) -> String? {
        desired.profilesDir(for: env).map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    /// dagctl's environment plus the environment's `env`. Unless set otherwise, dbt is told not to send
    /// usage statistics (which also keeps it from writing `.user.yml` into the desired state's profiles
    /// folder) and not to colour its output.
    static func environment(for env: EnvironmentSpec) -> [String: String] {
        var result = ProcessInfo.processInfo.environment
        result["DBT_SEND_ANONYMOUS_USAGE_STATS"] = result["DBT_SEND_ANONYMOUS_USAGE_STATS"] ?? "false"
        // Logs are files first: no colour codes in them.
        result["DBT_USE_COLORS"] = result["DBT_USE_COLORS"] ?? "false"
        result.merge(env.env) { $1 }
        return result
    }
}

/// A phase's log file, created empty (a later observation of the same attempt starts it afresh).
enum PhaseLog {
    static func create(_ path: String) throws -> FileHandle {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw EngineError("cannot write \(path)") }
        return handle
    }
}
