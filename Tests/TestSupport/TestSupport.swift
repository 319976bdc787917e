import Foundation

/// A folder under the system's temporary directory, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ prefix: String = "dagctl-test") {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ relative: String) -> String { path + "/" + relative }

    public func write(_ relative: String, _ content: String) {
        let full = file(relative)
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! content.write(toFile: full, atomically: true, encoding: .utf8)
    }

    public func read(_ relative: String) -> String? { try? String(contentsOfFile: file(relative), encoding: .utf8) }
}

public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program with arguments (no shell) and waits for it.
@discardableResult
public func run(_ executable: String, _ arguments: [String], in directory: String? = nil,
                environment: [String: String] = [:], stdin: String? = nil) -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : "/usr/bin/env")
    process.arguments = executable.contains("/") ? arguments : [executable] + arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try! process.run()
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)); try? input.fileHandleForWriting.close() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessOutput(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// A real git repository in a temporary folder, driven by the `git` command line.
public final class GitFixture: @unchecked Sendable {
    public let dir: TemporaryDirectory
    public var path: String { dir.path }

    public init() {
        dir = TemporaryDirectory("dagctl-repo")
        git("init", "-q", "-b", "main")
        git("config", "user.name", "Test")
        git("config", "user.email", "test@example.com")
        git("config", "commit.gpgsign", "false")
    }

    @discardableResult
    public func git(_ args: String..., author: String? = nil) -> String {
        var env = ["GIT_CONFIG_NOSYSTEM": "1"]
        if let author {
            env["GIT_AUTHOR_NAME"] = author
            env["GIT_AUTHOR_EMAIL"] = "\(author)@example.com"
        }
        let result = run("git", args, in: path, environment: env)
        precondition(result.status == 0, "git \(args.joined(separator: " ")) failed: \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func write(_ relative: String, _ content: String) { dir.write(relative, content) }

    public func remove(_ relative: String) { git("rm", "-q", "-r", relative) }

    public func move(_ from: String, _ to: String) {
        try! FileManager.default.createDirectory(atPath: (dir.file(to) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        git("mv", from, to)
    }

    /// Commits everything; `author` is a name whose email is `<name>@example.com`. Returns the full sha.
    @discardableResult
    public func commit(_ message: String, author: String? = nil) -> String {
        git("add", "-A")
        git("commit", "-q", "--allow-empty", "-m", message, author: author)
        return git("rev-parse", "HEAD")
    }

    /// Writes `.dagctl/config.yaml` with `version` (and `project_dir` when given).
    public func setVersion(_ version: String, projectDir: String? = nil) {
        write(".dagctl/config.yaml", "version: \(version)\n" + (projectDir.map { "project_dir: \($0)\n" } ?? ""))
    }

    /// A minimal dbt project: dbt_project.yml, two models, a macro, a seed, a test.
    public func writeDbtProject(in folder: String = "", extra: String = "") {
        let p = folder.isEmpty ? "" : folder + "/"
        write("\(p)dbt_project.yml", "name: shop\nversion: '1.0'\nprofile: shop\n\(extra)")
        write("\(p)models/staging/stg_orders.sql", "select 1 as id\n")
        write("\(p)models/marts/orders.sql", "select * from {{ ref('stg_orders') }}\n")
        write("\(p)models/schema.yml", "version: 2\nmodels:\n  - name: orders\n")
        write("\(p)macros/cents.sql", "{% macro cents(x) %}{{ x }} / 100{% endmacro %}\n")
        write("\(p)seeds/raw.csv", "id\n1\n")
        write("\(p)tests/assert_positive.sql", "select 1 where false\n")
    }
}

/// The package root, found from this file's location.
public let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The built `dagctl` binary next to the test bundle.
public let dagctlBinary: String = {
    let candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("dagctl").path,
                      Bundle.main.bundleURL.appendingPathComponent("dagctl").path,
                      packageRoot + "/.build/debug/dagctl"]
    for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
    for bundle in Bundle.allBundles {
        let c = bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("dagctl").path
        if FileManager.default.isExecutableFile(atPath: c) { return c }
    }
    return packageRoot + "/.build/debug/dagctl"
}()

/// Runs the real `dagctl` binary.
@discardableResult
public func dagctl(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:], stdin: String? = nil) -> ProcessOutput {
    run(dagctlBinary, arguments, in: directory, environment: environment, stdin: stdin)
}

/// Parses JSON output into Foundation values.
public func parseJSON(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

/// A `dagctl` started in the background with posix_spawn, so a test can SIGKILL it and reap it
/// itself (Foundation's Process may wait for grandchildren that keep its output open).
public struct BackgroundProcess: Sendable {
    public let pid: pid_t

    public init(pid: pid_t) { self.pid = pid }

    /// Waits for the process and returns its raw wait status.
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}

/// Starts a program in the background (no shell) with its output in two files. The child gets an
/// empty signal mask: test threads block signals, and a child would inherit that and ignore SIGTERM.
public func spawn(_ argv: [String], environment: [String: String], stdout: String, stderr: String) -> BackgroundProcess {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let cargs = argv.map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (cargs + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cargs, envp)
    precondition(rc == 0, "cannot start \(argv[0]): \(rc)")
    return BackgroundProcess(pid: pid)
}

/// Starts the real `dagctl` binary without waiting; its output goes to files in `outputDir`.
public func startDagctl(_ arguments: [String], environment: [String: String], outputDir: String) -> BackgroundProcess {
    spawn([dagctlBinary] + arguments, environment: environment, stdout: outputDir + "/stdout", stderr: outputDir + "/stderr")
}

/// Polls `condition` every 100 ms until it holds or `seconds` pass; returns whether it held.
public func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(100_000)
    }
    return condition()
}

/// PATH with the project's virtualenv (dbt) first, as `.ci/test` sets it up.
public let pathWithVenv: String = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return "\(packageRoot)/.venv/bin:\(path)"
}()

/// Checks a state file (and the history files beside it) against `state/schema.json` with Python's
/// jsonschema (installed by `.ci/setup`). Returns jsonschema's complaints; empty when valid.
public func stateSchemaProblems(_ statePath: String) -> String {
    let script = """
        import json, os, sys, glob
        import jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        problems = [f"state: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2])))]
        plan = dict(schema["$defs"]["plan"], **{"$defs": schema["$defs"]})
        for path in glob.glob(os.path.join(os.path.dirname(sys.argv[2]), "history", "*.jsonl")):
            for n, line in enumerate(open(path), 1):
                problems += [f"{path}:{n}: {e.message}" for e in jsonschema.Draft202012Validator(plan).iter_errors(json.loads(line))]
        print("\\n".join(problems))
        """
    let out = run(packageRoot + "/.venv/bin/python", ["-c", script, packageRoot + "/state/schema.json", statePath])
    return out.status == 0 ? out.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : "jsonschema failed: \(out.stderr)"
}

/// examples/webhook-receiver.py on 127.0.0.1, a real HTTP server: every request it got is a line of
/// its log. `answer(_:)` changes how it answers ("500", "404 no such hook", "delay 12"; nil: 200).
public final class WebhookReceiver: @unchecked Sendable {
    public let dir = TemporaryDirectory("dagctl-receiver")
    public private(set) var port = 0
    private var process: BackgroundProcess?
    public let secret: String?

    public init(secret: String? = nil) {
        self.secret = secret
        start()
    }

    deinit { stop() }

    public var url: String { "http://127.0.0.1:\(port)/hook" }

    /// Starts it (again, on the same port after a `stop`).
    public func start() {
        try? FileManager.default.removeItem(atPath: dir.file("port"))
        var argv = ["/usr/bin/env", "python3", packageRoot + "/examples/webhook-receiver.py", "--port", String(port),
                    "--port-file", dir.file("port"), "--log", dir.file("log.jsonl"), "--answer-file", dir.file("answer")]
        if let secret { argv += ["--secret", secret] }
        process = spawn(argv, environment: [:], stdout: dir.file("stdout"), stderr: dir.file("stderr"))
        _ = eventually(within: 10) { dir.read("port").flatMap { Int($0) } != nil }
        port = dir.read("port").flatMap { Int($0) } ?? 0
    }

    public func stop() {
        guard let process else { return }
        kill(process.pid, SIGKILL)
        process.wait()
        self.process = nil
    }

    public func answer(_ how: String?) {
        if let how { dir.write("answer", how + "\n") } else { try? FileManager.default.removeItem(atPath: dir.file("answer")) }
    }

    /// Every request, oldest first.
    public var requests: [[String: Any]] {
        (dir.read("log.jsonl") ?? "").split(separator: "\n").compactMap { parseJSON(String($0)) }
    }

    /// Bodies of requests answered 2xx, without repeats of an event id at a path (what a receiver that
    /// drops duplicates keeps; one event goes to each webhook that wants it).
    public var events: [[String: Any]] {
        var seen = Set<String>()
        return requests.filter { ($0["answered"] as? Int ?? 0) < 300 && seen.insert("\($0["path"] ?? "") \($0["id"] ?? "")").inserted }
            .compactMap { $0["body"] as? [String: Any] }
    }
}
