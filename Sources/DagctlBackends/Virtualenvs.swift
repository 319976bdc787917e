import DagctlPlanning
import Foundation

/// The tools of a local build: a virtualenv made from the project's requirements (cached by the file's
/// content and the Python version), or the tool from PATH; and the phase's steps, each a child process
/// whose output streams to the phase's log and the console, within what is left of the phase's time.
public struct Virtualenvs: Sendable {
    /// Where virtualenvs are kept, one folder per requirements hash.
    public let directory: String
    /// When the phase these steps belong to must end (`backend.timeout_seconds`); nil for no limit.
    public let deadline: Date?
    public let log: FileHandle
    public let sink: OutputSink

    public init(directory: String, deadline: Date? = nil, log: FileHandle, sink: OutputSink) {
        self.directory = directory
        self.deadline = deadline
        self.log = log
        self.sink = sink
    }

    /// Runs one step of the phase; throws when it does not succeed.
    public func step(_ arguments: [String], _ what: String, environment: [String: String]) throws {
        let end = try LiveProcess.run(arguments, environment: environment, log: log, sink: sink,
                                      timeout: deadline.map { max(0, $0.timeIntervalSinceNow) })
        guard end.succeeded else { throw CommandError("\(what) failed: \(end.description)") }
    }

    /// The executable `tool` (e.g. `dbt`) for a build: from a virtualenv made from `requirements`, else
    /// from PATH. Returns it and the virtualenv's folder name (its cache key), if one was used.
    public func tool(_ tool: String, requirements: String?, environment: [String: String]) throws -> (path: String, virtualenv: String?) {
        guard let requirements else {
            do {
                let path = try Command.resolve(tool)
                note("no virtualenv (no requirements file, or requirements: none): using \(path) from PATH")
                return (path, nil)
            } catch {
                throw CommandError("\(tool) is not on PATH and the project has no requirements file (or says requirements: none); install \(tool) or add requirements.txt")
            }
        }
        guard let content = FileManager.default.contents(atPath: requirements) else {
            throw CommandError("cannot read \(requirements)")
        }
        let python = try Command.run("python3", ["-c", "import sys; print(sys.version.split()[0])"])
        let pythonVersion = String(decoding: python.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let key = Hashing.sha256Hex(Array(content) + Array("\npython \(pythonVersion)".utf8))
        let name = String(key.prefix(20))
        let venv = "\(directory)/\(name)"
        let ready = venv + "/.dagctl-ready"
        if FileManager.default.fileExists(atPath: ready) {
            note("reusing the cached virtualenv \(venv) (requirements sha256 \(key.prefix(12)), python \(pythonVersion))")
        } else {
            // A half-made virtualenv (a crash during pip) is never reused: only `.dagctl-ready` marks one done.
            try? FileManager.default.removeItem(atPath: venv)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            note("creating a virtualenv in \(venv) for python \(pythonVersion)")
            let started = Date()
            try step(["python3", "-m", "venv", venv], "python3 -m venv", environment: environment)
            try step([venv + "/bin/pip", "install", "--disable-pip-version-check", "-r", requirements], "pip install -r \(requirements)",
                     environment: environment)
            FileManager.default.createFile(atPath: ready, contents: Data("\(key)\n".utf8))
            note("virtualenv ready in \(formatDuration(Date().timeIntervalSince(started)))")
        }
        let path = "\(venv)/bin/\(tool)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CommandError("the requirements installed no \(tool); add it (for dbt: dbt-core and an adapter, e.g. dbt-duckdb) to \(requirements)")
        }
        return (path, name)
    }

    /// A line of dagctl's own in the phase's log and on the console.
    public func note(_ line: String) {
        log.writeSafely("dagctl: \(line)\n")
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
