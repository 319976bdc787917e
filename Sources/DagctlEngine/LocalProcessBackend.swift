import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// The local-process backend: build exports the plan's exact commit and prepares its tools (a cached
/// virtualenv or PATH, then the plan kind's own preparation); run starts the kind's command as a child
/// in its own process group, streaming its output and recording its pid. A phase lives and dies with
/// the dagctl run doing it, so a plan found in progress is recovered as interrupted.
final class LocalProcessBackend: Backend {
    let repo: GitRepository
    let desired: DesiredState
    let layout: StateLayout
    let console: FileHandle
    /// The workspace each attempt's build made, for its run phase in the same dagctl run.
    private var workspaces: [String: Workspace] = [:]

    init(repo: GitRepository, desired: DesiredState, layout: StateLayout, console: FileHandle) {
        self.repo = repo
        self.desired = desired
        self.layout = layout
        self.console = console
    }

    func advance(_ phase: Attempt.Phase, _ attempt: AttemptContext) throws -> PhaseResult {
        switch phase {
        case .build: return try build(attempt)
        case .run: return try run(attempt)
        }
    }

    /// Stops a child left running by the dagctl that died (if that very process is still alive: a
    /// SIGKILLed dagctl leaves dbt running, and DuckDB allows one writer).
    func recover(_ plan: Plan, env: EnvironmentSpec) -> Recovery {
        guard let attempt = plan.attempts.last, attempt.outcome == .running, let pid = attempt.pid,
              LiveProcess.stopOrphan(pid: pid, startedAt: attempt.pidStart) else { return .interrupt(note: nil) }
        return .interrupt(note: "stopped process group \(pid) left running by the dagctl run that died")
    }

    func manifests(for plan: Plan, env: EnvironmentSpec, kind: PlanKind) -> [String] { [] }

    /// Exports the commit into a fresh folder, prepares its tools as a build does, runs the command and
    /// returns its stdout; what it prints on stderr goes to `logs/explain/<env>.log` and the console.
    func inspect(_ commit: ObjectID, env: EnvironmentSpec, kind: PlanKind, command: (Workspace) -> [String]) throws -> Data {
        let folder = URL(fileURLWithPath: layout.inspection(env.name)).standardizedFileURL.path
        let logPath = layout.explainLog(env.name)
        try FileManager.default.createDirectory(atPath: (logPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(logPath)
        let fd = open(logPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw EngineError("cannot write \(logPath): \(String(cString: strerror(errno)))") }
        let log = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer {
            try? log.close()
            try? FileManager.default.removeItem(atPath: folder)
        }
        let sink = OutputSink(prefix: "[\(env.name) explain] ", console: console)
        let tools = Virtualenvs(directory: layout.virtualenvs, deadline: nil, log: log, sink: sink)
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let exportDir = "\(folder)/project"
        _ = try repo.export(commit, to: exportDir)
        let project = try kind.project(at: commit)
        let projectDir = project.projectDir.isEmpty ? exportDir : "\(exportDir)/\(project.projectDir)"
        var environment = Self.environment(for: env)
        environment["DBT_TARGET_PATH"] = "\(folder)/dbt-target"
        let tool = try tools.tool(kind.tool, requirements: project.requirementsFile(in: exportDir), environment: environment)
        let workspace = Workspace(projectDir: projectDir, tool: tool.path, profilesDir: profilesDir(env), environment: environment)
        let arguments = command(workspace)
        try Interruption.check(before: "asking \(kind.tool) about \(commit.short)")
        // In dagctl's working directory, as the run phase: relative warehouse paths name the same file.
        let result = try Command.run(arguments[0], Array(arguments.dropFirst()), environment: environment)
        log.writeSafely(result.stderr)
        guard result.status == 0 else {
            let last = result.stderr.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
            throw EngineError("\(kind.tool) could not explain commit \(commit.short) (exit \(result.status)): \(last) (log: \(logPath))")
        }
        return result.stdout
    }

    private func key(_ attempt: AttemptContext) -> String { "\(attempt.plan.id)/\(attempt.n)" }

    /// The attempt's folder: `project/` (the export), `dbt-target/` and `dbt-logs/` (the tool's output,
    /// where dagctl decides rather than where the repository's files or links say).
    private func folder(_ attempt: AttemptContext) -> String {
        URL(fileURLWithPath: layout.build(attempt.plan.id, attempt: attempt.n)).standardizedFileURL.path
    }

    private func deadline(_ attempt: AttemptContext, from start: Date) -> Date? {
        attempt.env.backend.timeoutSeconds.map { start.addingTimeInterval(TimeInterval($0)) }
    }

    private func build(_ attempt: AttemptContext) throws -> PhaseResult {
        let start = Date()
        let (log, sink) = try attempt.phaseLog(.build)
        defer { try? log.close() }
        let folder = folder(attempt)
        let exportDir = "\(folder)/project"
        let tools = Virtualenvs(directory: layout.virtualenvs, deadline: deadline(attempt, from: start), log: log, sink: sink)
        var environment = Self.environment(for: attempt.env)
        environment["DBT_TARGET_PATH"] = "\(folder)/dbt-target"
        environment["DBT_LOG_PATH"] = "\(folder)/dbt-logs"
        do {
            try? FileManager.default.removeItem(atPath: folder)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            tools.note("exporting commit \(attempt.plan.commit) into \(exportDir)")
            let exported = try repo.export(ObjectID(hex: attempt.plan.commit), to: exportDir)
            for path in exported.skippedSubmodules { tools.note("skipped submodule \(path) (submodules are not exported)") }
            for link in exported.droppedLinks {
                tools.note("left out the symbolic link \(link.path) -> \(link.target): it leads outside the project")
            }
            let project = try attempt.kind.project(at: ObjectID(hex: attempt.plan.commit))
            var projectDir = project.projectDir.isEmpty ? exportDir : "\(exportDir)/\(project.projectDir)"
            if attempt.kind.buildsImage {
                // dbt sees the project at one path per environment (a link to this export), so the
                // last deploy's partial-parse file, made at the same path, is reused (warm parsing).
                let stable = URL(fileURLWithPath: layout.currentProject(attempt.env.name)).standardizedFileURL.path
                try Self.link(stable, to: projectDir)
                projectDir = stable
                let kept = layout.manifests(attempt.env.name)
                let root = try? String(contentsOfFile: "\(kept)/partial_parse.root", encoding: .utf8)
                if root == stable, FileManager.default.fileExists(atPath: "\(kept)/partial_parse.msgpack") {
                    try FileManager.default.createDirectory(atPath: "\(folder)/dbt-target", withIntermediateDirectories: true)
                    if (try? FileManager.default.copyItem(atPath: "\(kept)/partial_parse.msgpack", toPath: "\(folder)/dbt-target/partial_parse.msgpack")) != nil {
                        tools.note("reusing the partial-parse file of the last deploy (\(kept)/partial_parse.msgpack)")
                    }
                }
            }
            let tool = try tools.tool(attempt.kind.tool, requirements: project.requirementsFile(in: exportDir), environment: environment)
            if let venv = tool.virtualenv { try attempt.update { $0.virtualenv = venv } }
            let workspace = Workspace(projectDir: projectDir, tool: tool.path, profilesDir: profilesDir(attempt.env),
                                      outputDir: environment["DBT_TARGET_PATH"], environment: environment, scratchDir: folder)
            try attempt.kind.prepare(workspace) { arguments, what, environment in
                try tools.step(arguments, what, environment: environment)
            }
            workspaces[key(attempt)] = workspace
        } catch let stop as InterruptedError {
            return .interrupted(stop.description)
        } catch {
            return .failed("\(error)")
        }
        attempt.notes.append("built attempt \(attempt.n) in \(formatDuration(Date().timeIntervalSince(start)))")
        return .succeeded
    }

    private func run(_ attempt: AttemptContext) throws -> PhaseResult {
        guard let workspace = workspaces[key(attempt)] else {
            return .failed("the run phase started without its build in this dagctl run")
        }
        let start = Date()
        let command = attempt.kind.runCommand(attempt.plan, env: attempt.env, in: workspace)
        let (log, sink) = try attempt.phaseLog(.run)
        defer { try? log.close() }
        log.writeSafely("dagctl: \(command.joined(separator: " "))\n")
        sink.say(command.joined(separator: " "))
        let ended: ProcessEnd
        do {
            ended = try LiveProcess.run(command, environment: workspace.environment, log: log, sink: sink,
                                        timeout: attempt.env.backend.timeoutSeconds.map(TimeInterval.init)) { pid in
                try? attempt.update {
                    $0.pid = pid
                    $0.pidStart = LiveProcess.startTime(of: pid)
                }
            }
        } catch let stop as InterruptedError {
            return .interrupted(stop.description)
        } catch {
            return .failed("\(error)")
        }
        let results = attempt.kind.results(in: workspace)
        if let results {
            try? FileManager.default.removeItem(atPath: "\(attempt.logDir)/\((results.file as NSString).lastPathComponent)")
            try? FileManager.default.copyItem(atPath: results.file, toPath: "\(attempt.logDir)/\((results.file as NSString).lastPathComponent)")
        }
        try attempt.update {
            $0.pid = nil
            $0.pidStart = nil
            if let results {
                $0.summary = results.summary.counts
                $0.failedNodes = results.summary.failures.isEmpty ? nil : results.summary.failures
            }
        }
        switch ended {
        case .interrupted(let sig):
            return .interrupted("dagctl received \(Interruption.name(sig)) and stopped \(attempt.kind.tool)")
        case _ where !ended.succeeded:
            var reason = "\(attempt.kind.runName): \(ended.description)"
            if case .timedOut = ended { reason += " (backend.timeout_seconds); its processes were stopped" }
            if let failures = results?.summary.failures, !failures.isEmpty { reason += "; failed: " + failures.joined(separator: ", ") }
            if let text = try? String(contentsOfFile: "\(attempt.logDir)/run.log", encoding: .utf8),
               let detail = attempt.kind.failureDetail(log: String(text.suffix(20_000))) {
                reason += "; \(detail)"
            }
            return .failed(reason)
        default:
            let shown = attempt.kind.displayCommand(attempt.plan, env: attempt.env) ?? command
            attempt.notes.append("ran \(shown.joined(separator: " ")) in \(formatDuration(Date().timeIntervalSince(start)))")
            return .succeeded
        }
    }

    /// Points the link at `path` to `target`, replacing it in one rename.
    static func link(_ path: String, to target: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temporary = "\(path).tmp-\(getpid())"
        unlink(temporary)
        guard symlink(target, temporary) == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw EngineError("cannot point \(path) at \(target): \(reason)")
        }
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
