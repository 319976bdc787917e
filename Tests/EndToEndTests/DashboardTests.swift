import Foundation
import Testing
import TestSupport

/// A `dagctl serve` on a real repository and state, asked with curl.
final class ServedWorkspace: @unchecked Sendable {
    let ws = Workspace()
    let out = TemporaryDirectory("dagctl-serve")
    var server: BackgroundProcess?
    var url = ""

    var environment: [String: String] {
        ["DAGCTL_REPO": ws.repo.path, "DAGCTL_DESIRED": ws.desired, "DAGCTL_STATE": ws.statePath]
    }

    func start() throws {
        let process = startDagctl(["serve", "--listen", "127.0.0.1:0"], environment: environment, outputDir: out.path)
        server = process
        var found = ""
        #expect(eventually(within: 20) {
            found = (self.out.read("stdout") ?? "").components(separatedBy: "listening on ").dropFirst().first?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            return !found.isEmpty
        }, "serve started: \(out.read("stderr") ?? "")")
        url = found
    }

    deinit {
        if let server { kill(server.pid, SIGTERM); server.wait() }
    }

    /// (status, body) of a request.
    func get(_ path: String, method: String = "GET") -> (Int, String) {
        // HEAD with -I: `-X HEAD` would wait for a body that never comes.
        let r = run("curl", ["-s", "--max-time", "10"] + (method == "HEAD" ? ["-I"] : ["-X", method]) + ["-o", "-", "-w", "\n%{http_code}", url + path])
        let lines = r.stdout.components(separatedBy: "\n")
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }
}

@Suite("dagctl serve (HTTP, the real binary)", .serialized)
struct DashboardTests {
    /// A plan with hostile text everywhere it can come from: a file name, a commit message, an approval
    /// comment and a log line.
    func hostile() throws -> ServedWorkspace {
        let s = ServedWorkspace()
        s.ws.repo.write("docs/<img src=x onerror=alert(1)>.md", "x\n")
        s.ws.repo.write("models/a.sql", "select 1\n")
        s.ws.repo.setVersion("2")
        s.ws.repo.commit("<script>alert(1)</script> in a commit message", author: "alice")
        let doc = try #require(parseJSON(s.ws.dagctl("plan", "--env", "prod", "--output", "json").stdout))
        let plan = try #require((doc["environments"] as? [[String: Any]])?.first?["plan"] as? [String: Any])
        let id = try #require(plan["id"] as? String)
        #expect(s.ws.dagctl("approve", id, "--as", "bob", "--comment", "<script>alert(2)</script>").status == 0)
        return s
    }

    func planID(_ s: ServedWorkspace) throws -> String {
        let doc = try #require(parseJSON(s.ws.dagctl("plan", "--env", "prod", "--output", "json").stdout))
        return try #require(((doc["environments"] as? [[String: Any]])?.first?["plan"] as? [String: Any])?["id"] as? String)
    }

    @Test func pagesAnswerAndEscapeEverything() throws {
        let s = try hostile()
        #expect(s.ws.dagctl("reconcile", "--env", "dev").status != 2)  // records plans in the state file
        s.ws.dir.write("state/state.json", s.ws.dir.read("state/state.json") ?? "")
        try s.start()
        let (status, overview) = s.get("/")
        #expect(status == 200)
        #expect(overview.contains("id=\"env-dev\"") && overview.contains("id=\"env-prod\""), "every environment")
        #expect(!overview.contains("No state file at"))
        let id = try planID(s)
        // prod's plan is not recorded (only dev was reconciled): a dev plan is, with its files.
        let devID = try #require(((parseJSON(s.ws.dir.read("state/state.json") ?? "")?["environments"] as? [String: Any])?["dev"] as? [String: Any]).flatMap { ($0["plans"] as? [[String: Any]])?.last?["id"] as? String })
        let (planStatus, page) = s.get("/plans/\(devID)")
        #expect(planStatus == 200)
        #expect(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "file names are escaped")
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; in a commit message"), "commit messages are escaped")
        #expect(!page.contains("<script>alert") && !page.contains("<img src=x"))
        #expect(page.contains("<details>"), "diffs are collapsed")
        #expect(s.get("/plans/\(id)").0 == 404 || s.get("/plans/\(id)").0 == 200)
        #expect(s.get("/api/status").0 == 200)
        #expect(parseJSON(s.get("/api/status").1) != nil)
        #expect(s.get("/api/plans/\(devID)").0 == 200)
        #expect(s.get("/environments/dev/history").0 == 200)
    }

    @Test func readOnlyAndNoPathsFromURLs() throws {
        let s = try hostile()
        try s.start()
        for method in ["POST", "PUT", "DELETE", "PATCH"] { #expect(s.get("/", method: method).0 == 405, "\(method)") }
        #expect(s.get("/", method: "HEAD").0 == 200)
        #expect(s.get("/").1.contains("No state file at"), "nothing reconciled yet is said, as status says it")
        for path in ["/plans/..%2F..%2Fetc%2Fpasswd", "/plans/../../etc/passwd", "/plans/nope", "/environments/..%2Fstate/history",
                     "/environments/nope/history", "/plans/x/attempts/1/run", "/api/plans/%2e%2e", "/nope"] {
            #expect(s.get(path).0 == 404, "\(path)")
        }
    }

    /// A log page follows a file that grows, within 2 s, and says when the phase ends.
    @Test func aRunningPhasesLogIsFollowedLive() throws {
        let s = ServedWorkspace()
        let head = s.ws.repo.git("rev-parse", "HEAD")
        let id = "dev-v1-\(head.prefix(10))"
        func state(_ outcome: String) -> String {
            """
            {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "\(head)", "plans": [{"id": "\(id)", "environment": "dev",
              "version": "1", "commit": "\(head)", "changes": [], "scope": "all", "select": [], "warnings": [],
              "status": "\(outcome == "running" ? "running" : "succeeded")",
              "attempts": [{"n": 1, "outcome": "\(outcome)", "phase": "run", "summary": {}}]}]}}}
            """
        }
        s.ws.dir.write("state/state.json", state("running"))
        s.ws.dir.write("state/logs/\(id)/attempt-1/run.log", "first line\n")
        try s.start()
        #expect(s.get("/plans/\(id)/attempts/1/run").1.contains("following the log live"))
        let stream = spawn(["/usr/bin/curl", "-s", "-N", s.url + "/plans/\(id)/attempts/1/run/stream?from=11"], environment: [:],
                           stdout: s.out.file("stream"), stderr: s.out.file("stream.err"))
        usleep(500_000)
        let handle = try #require(FileHandle(forWritingAtPath: s.ws.dir.file("state/logs/\(id)/attempt-1/run.log")))
        handle.seekToEndOfFile()
        handle.write(Data("second line <b>\n".utf8))
        let started = Date()
        #expect(eventually(within: 5) { (s.out.read("stream") ?? "").contains("data: second line <b>") })
        #expect(Date().timeIntervalSince(started) < 2.5, "within 2 s")
        s.ws.dir.write("state/state.json", state("succeeded"))
        #expect(eventually(within: 5) { (s.out.read("stream") ?? "").contains("event: end") }, "the phase's end is said")
        #expect(!(s.out.read("stream") ?? "").contains("first line"), "from the offset the page had")
        kill(stream.pid, SIGTERM)
        stream.wait()
    }

    /// While a reconcile holds the lock and replaces the state file again and again (a new file, then
    /// a rename, as every run writes it), every page still answers 200 with a whole state.
    @Test func pagesAnswerWhileAReconcileRewritesTheState() throws {
        let s = ServedWorkspace()
        let head = s.ws.repo.git("rev-parse", "HEAD")
        @Sendable func state(_ v: Int) -> String {
            let plan = """
                {"id": "dev-v\(v)-\(head.prefix(10))", "environment": "dev", "version": "\(v)", "commit": "\(head)", "changes": [], "scope": "all", "select": [], "warnings": [], "status": "running", "attempts": [{"n": 1, "outcome": "running", "phase": "run", "summary": {}}]}
                """
            return "{\"schema_version\": 1, \"environments\": {\"dev\": {\"ref\": \"main\", \"head\": \"\(head)\", \"plans\": [\(plan)]}}}"
        }
        s.ws.dir.write("state/state.json", state(1))
        try s.start()
        let lock = open(s.ws.statePath + ".lock", O_CREAT | O_RDWR, 0o644)
        #expect(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0, "the test holds the run lock")
        defer { close(lock) }
        let done = ManagedAtomicFlag()
        let stopped = DispatchSemaphore(value: 0)
        let writer = Thread {
            defer { stopped.signal() }
            var v = 2
            while !done.isSet {
                s.ws.dir.write("state/state.json.new", state(v) + String(repeating: " ", count: 50_000))
                rename(s.ws.statePath + ".new", s.ws.statePath)
                v += 1
            }
        }
        writer.start()
        var answers: [Int] = []
        for i in 0..<60 {
            let (status, body) = s.get(i % 2 == 0 ? "/api/status" : "/")
            answers.append(status)
            if i % 2 == 0 { #expect(parseJSON(body) != nil, "a whole state: \(body.prefix(200))") }
        }
        done.set()
        stopped.wait()
        #expect(answers.allSatisfy { $0 == 200 }, "\(answers)")
    }

    /// A log page shows the end of a long log, and bytes that are not UTF-8 do not hide it.
    @Test func aLongLogWithBadBytesShowsItsEnd() throws {
        let s = ServedWorkspace()
        let head = s.ws.repo.git("rev-parse", "HEAD")
        let id = "dev-v1-\(head.prefix(10))"
        s.ws.dir.write("state/state.json", """
            {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "\(head)", "plans": [{"id": "\(id)", "environment": "dev", "version": "1", "commit": "\(head)", "changes": [], "scope": "all", "select": [], "warnings": [], "status": "failed", "attempts": [{"n": 1, "outcome": "failed", "phase": "run", "summary": {}}]}]}}}
            """)
        var log = Data(String(repeating: "an early line of output\n", count: 100_000).utf8)  // 2.4 MB
        log.append(contentsOf: [0x66, 0xFF, 0xFE, 0x0A])  // "f", two bytes that are not UTF-8
        log.append(Data("the last line\n".utf8))
        s.ws.dir.write("state/logs/\(id)/attempt-1/run.log", "")
        try log.write(to: URL(fileURLWithPath: s.ws.dir.file("state/logs/\(id)/attempt-1/run.log")))
        try s.start()
        let (status, page) = s.get("/plans/\(id)/attempts/1/run")
        #expect(status == 200)
        #expect(page.contains("the last line"), "the end of the log is shown")
        #expect(page.contains("bytes are not shown") && page.contains("dagctl logs \(id) --attempt 1 --phase run"))
        #expect(page.utf8.count < 1_200_000, "at most about 1 MiB of log in a page: \(page.utf8.count)")
    }

    /// A log that is a symbolic link (or under a linked folder) is not followed out of the logs folder,
    /// and a state file that cannot be read is explained on the page.
    @Test func linkedLogsAreNotFollowedAndABadStateIsExplained() throws {
        let s = ServedWorkspace()
        let head = s.ws.repo.git("rev-parse", "HEAD")
        let id = "dev-v1-\(head.prefix(10))"
        s.ws.dir.write("state/state.json", """
            {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "\(head)", "plans": [{"id": "\(id)", "environment": "dev", "version": "1", "commit": "\(head)", "changes": [], "scope": "all", "select": [], "warnings": [], "status": "failed", "attempts": [{"n": 1, "outcome": "failed", "phase": "run", "summary": {}}, {"n": 2, "outcome": "failed", "phase": "run", "summary": {}}]}]}}}
            """)
        s.ws.dir.write("secret/run.log", "a secret outside the logs\n")
        s.ws.dir.write("state/logs/\(id)/attempt-1/build.log", "")
        #expect(symlink(s.ws.dir.file("secret/run.log"), s.ws.dir.file("state/logs/\(id)/attempt-1/run.log")) == 0)
        #expect(symlink(s.ws.dir.file("secret"), s.ws.dir.file("state/logs/\(id)/attempt-2")) == 0)
        try s.start()
        for n in [1, 2] {
            #expect(!s.get("/plans/\(id)/attempts/\(n)/run").1.contains("a secret"), "attempt \(n)")
            #expect(!s.get("/plans/\(id)/attempts/\(n)/run/stream?from=0").1.contains("a secret"), "attempt \(n) stream")
        }
        s.ws.dir.write("state/state.json", "garbage{{{")
        let (status, body) = s.get("/")
        #expect(status == 500)
        #expect(body.contains("not valid JSON") && body.contains("dagctl status"), "\(body)")
    }

    /// The report refuses a path that is a file or a link, and clears leftovers of a killed run.
    @Test func theReportRefusesAFileOrALinkAndClearsLeftovers() throws {
        let s = ServedWorkspace()
        s.ws.dir.write("out/afile", "keep me\n")
        #expect(s.ws.dagctl("report", "--html", s.ws.dir.file("out/afile")).status == 1)
        #expect(s.ws.dir.read("out/afile") == "keep me\n")
        #expect(symlink(s.ws.dir.file("out/target"), s.ws.dir.file("out/link")) == 0)
        let linked = s.ws.dagctl("report", "--html", s.ws.dir.file("out/link"))
        #expect(linked.status == 1 && linked.stderr.contains("symbolic link"), "\(linked.stderr)")
        s.ws.dir.write("out/.site.new-99999/index.html", "half")
        #expect(s.ws.dagctl("report", "--html", s.ws.dir.file("out/site")).status == 0)
        #expect(s.ws.dagctl("report", "--html", s.ws.dir.file("out/site")).status == 0, "replaces an existing report")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.ws.dir.file("out")).sorted() == ["afile", "link", "site"])
    }

    /// History is kept decoded between requests; an appended plan must still show on the next one.
    @Test func theHistoryPageFollowsItsFile() throws {
        let s = ServedWorkspace()
        let head = s.ws.repo.git("rev-parse", "HEAD")
        func plan(_ v: Int) -> String {
            """
            {"id": "dev-v\(v)-\(head.prefix(10))", "environment": "dev", "version": "\(v)", "commit": "\(head)", "changes": [], "scope": "all", "select": [], "warnings": [], "status": "succeeded", "attempts": []}
            """
        }
        s.ws.dir.write("state/state.json", """
            {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "\(head)", "plans": [\(plan(9))]}}}
            """)
        s.ws.dir.write("state/history/dev.jsonl", plan(1) + "\n")
        try s.start()
        let before = s.get("/environments/dev/history").1
        #expect(before.contains("dev-v1-") && !before.contains("dev-v2-"))
        s.ws.dir.write("state/history/dev.jsonl", plan(1) + "\n" + plan(2) + "\n")
        let after = s.get("/environments/dev/history").1
        #expect(after.contains("dev-v1-") && after.contains("dev-v2-"), "the appended plan is shown")
        #expect(s.get("/plans/dev-v2-\(head.prefix(10))").0 == 200)
    }

    @Test func aStaticReportIsWrittenWholeWithRelativeLinks() throws {
        let s = try hostile()
        #expect(s.ws.dagctl("reconcile", "--env", "dev").status != 2)
        let dir = s.ws.dir.file("site")
        let out = s.ws.dagctl("report", "--html", dir)
        #expect(out.status == 0, "\(out.stderr)")
        let index = try #require(s.ws.dir.read("site/index.html"))
        #expect(!index.contains("href=\"/"), "links are relative")
        #expect(index.contains("href=\"plans/"))
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir)
        #expect(files.contains { $0.hasPrefix("plans/") && $0.hasSuffix(".html") })
        #expect(files.contains("environments/dev/history.html"))
        // Rewritten in place: no leftovers beside it.
        #expect(s.ws.dagctl("report", "--html", dir).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.ws.dir.path).filter { $0.hasPrefix(".site") }.isEmpty)
    }
}

/// The dashboard in a real browser: headless Chromium driven by Selenium (Tests/Fixtures/browser).
/// Screenshots of the overview, a plan and a log are kept in `.build/dashboard-screenshots`.
@Suite("dagctl serve in a real browser", .serialized)
struct BrowserTests {
    @Test func overviewPlanDiffAndALiveLog() throws {
        let s = ServedWorkspace()
        s.ws.repo.write("models/orders.sql", "select 1 as id\n")
        s.ws.repo.setVersion("2")
        let head = s.ws.repo.commit("orders", author: "bob")
        let id = "dev-v2-\(head.prefix(10))"
        let base = s.ws.repo.git("rev-parse", "HEAD~1")
        s.ws.dir.write("state/state.json", """
            {"schema_version": 1, "environments": {"dev": {"ref": "main", "head": "\(head)", "plans": [{"id": "\(id)", "environment": "dev",
              "version": "2", "commit": "\(head)", "base": "\(base)", "author": "bob",
              "changes": [{"path": "models/orders.sql", "change": "added", "category": "model"}, {"path": ".dagctl/config.yaml", "change": "modified", "category": "other"}],
              "scope": "selective", "select": ["orders"], "warnings": [], "status": "running",
              "attempts": [{"n": 1, "outcome": "running", "phase": "run", "summary": {}}]}]}}}
            """)
        s.ws.dir.write("state/logs/\(id)/attempt-1/run.log", "dbt build --select orders\n")
        try s.start()
        let shots = packageRoot + "/.build/dashboard-screenshots"
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let browser = run(packageRoot + "/.venv/bin/python", [packageRoot + "/Tests/Fixtures/browser/check_dashboard.py", s.url, id,
                                                              s.ws.dir.file("state/logs/\(id)/attempt-1/run.log"), s.ws.statePath,
                                                              shots, "dev", "prod"])
        #expect(browser.status == 0, "\(browser.stdout)\n\(browser.stderr)")
        #expect(browser.stdout.contains("log: the appended line showed after"), "\(browser.stdout)")
        #expect(browser.stdout.contains("overview: the plan's success showed after"), "\(browser.stdout)")
        print(browser.stdout)
    }
}

/// A flag one thread sets and another reads.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
