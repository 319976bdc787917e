import DagctlPlanning
import Foundation

/// The local-process backend: a virtualenv cached by requirements, `dbt deps`, and `dbt build`, each
/// a child process whose output streams to the phase's log and the console.
public struct LocalBackend: Sendable {
    /// `<state-dir>/cache`, where virtualenvs are kept by the hash of their requirements.
    public let cacheDir: String
    /// When the phase these steps belong to must end (`backend.timeout_seconds`); nil for no limit.
    public let deadline: Date?

    public init(cacheDir: String, deadline: Date? = nil) {
        self.cacheDir = cacheDir
        self.deadline = deadline
    }

    /// Runs one step of the phase, within what is left of its time.
    func step(_ arguments: [String], _ what: String, environment: [String: String], log: FileHandle, sink: OutputSink) throws {
        let end = try LiveProcess.run(arguments, environment: environment, log: log, sink: sink,
                                      timeout: deadline.map { max(0, $0.timeIntervalSinceNow) })
        guard end.succeeded else { throw CommandError("\(what) failed: \(end.description)") }
    }

    /// The dbt executable for a build: from a virtualenv made from `requirements` (cached by the file's
    /// content and the Python version), else from PATH.
    public func dbtExecutable(requirements: String?, environment: [String: String], log: FileHandle, sink: OutputSink) throws -> String {
        guard let requirements else {
            do {
                let dbt = try Command.resolve("dbt")
                note("no requirements file: using \(dbt) from PATH", log, sink)
                return dbt
            } catch {
                throw CommandError("dbt is not on PATH and the project has no requirements file; install dbt or add requirements.txt")
            }
        }
        guard let content = FileManager.default.contents(atPath: requirements) else {
            throw CommandError("cannot read \(requirements)")
        }
        let python = try Command.run("python3", ["-c", "import sys; print(sys.version.split()[0])"])
        let pythonVersion = String(decoding: python.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let key = SHA256.hex(Array(content) + Array("\npython \(pythonVersion)".utf8))
        let venv = "\(cacheDir)/venvs/\(key.prefix(20))"
        let ready = venv + "/.dagctl-ready"
        if FileManager.default.fileExists(atPath: ready) {
            note("reusing the cached virtualenv \(venv) (requirements sha256 \(key.prefix(12)), python \(pythonVersion))", log, sink)
        } else {
            // A half-made virtualenv (a crash during pip) is never reused: only `.dagctl-ready` marks one done.
            try? FileManager.default.removeItem(atPath: venv)
            try FileManager.default.createDirectory(atPath: cacheDir + "/venvs", withIntermediateDirectories: true)
            note("creating a virtualenv in \(venv) for python \(pythonVersion)", log, sink)
            let started = Date()
            try step(["python3", "-m", "venv", venv], "python3 -m venv", environment: environment, log: log, sink: sink)
            try step([venv + "/bin/pip", "install", "--disable-pip-version-check", "-r", requirements], "pip install -r \(requirements)",
                     environment: environment, log: log, sink: sink)
            FileManager.default.createFile(atPath: ready, contents: Data("\(key)\n".utf8))
            note("virtualenv ready in \(formatDuration(Date().timeIntervalSince(started)))", log, sink)
        }
        let dbt = venv + "/bin/dbt"
        guard FileManager.default.isExecutableFile(atPath: dbt) else {
            throw CommandError("the requirements installed no dbt; add dbt-core and an adapter (e.g. dbt-duckdb) to \(requirements)")
        }
        return dbt
    }

    /// `dbt deps`, when the project declares packages.
    public func deps(dbt: String, projectDir: String, profilesDir: String?, environment: [String: String],
                     log: FileHandle, sink: OutputSink) throws {
        let declares = ["packages.yml", "dependencies.yml"].contains { FileManager.default.fileExists(atPath: "\(projectDir)/\($0)") }
        guard declares else { return }
        var args = [dbt, "deps", "--project-dir", projectDir]
        if let profilesDir { args += ["--profiles-dir", profilesDir] }
        try step(args, "dbt deps", environment: environment, log: log, sink: sink)
    }

    /// The run phase's full command line.
    public static func runCommand(dbt: String, scope: Scope, select: [String], target: String, projectDir: String,
                                  profilesDir: String?) -> [String]? {
        guard var command = Explain.dbtCommand(scope: scope, select: select, target: target) else { return nil }
        command[0] = dbt
        command += ["--project-dir", projectDir]
        if let profilesDir { command += ["--profiles-dir", profilesDir] }
        return command
    }

    func note(_ line: String, _ log: FileHandle, _ sink: OutputSink) {
        log.write(Data("dagctl: \(line)\n".utf8))
        sink.say(line)
    }
}

/// dbt's `run_results.json`, summarized by resource type.
public enum RunResults {
    public struct Summary: Sendable, Equatable {
        public var counts: [String: ResultCounts]
        /// Nodes that errored or failed, as `model.shop.customers`.
        public var failures: [String]
    }

    public static func summarize(_ data: Data) -> Summary? {
        guard let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let results = doc["results"] as? [[String: Any]] else { return nil }
        var counts: [String: ResultCounts] = [:]
        var failures: [String] = []
        for result in results {
            guard let id = result["unique_id"] as? String, let status = result["status"] as? String else { continue }
            let type = String(id.prefix { $0 != "." })
            let key: String
            switch type {
            case "model": key = "models"
            case "test", "unit_test": key = "tests"
            case "seed": key = "seeds"
            case "snapshot": key = "snapshots"
            default: key = type + "s"
            }
            var c = counts[key] ?? ResultCounts()
            switch status {
            case "success", "pass": c.success += 1
            case "error", "fail", "runtime error":
                c.error += 1
                failures.append(id)
            case "skipped", "no-op": c.skipped += 1
            case "warn": c.warned += 1
            default: break
            }
            counts[key] = c
        }
        return Summary(counts: counts, failures: failures)
    }
}
