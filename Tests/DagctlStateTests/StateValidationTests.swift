import DagctlPlanning
import DagctlState
import Foundation
import Testing
import TestSupport

/// Hand-edited state files whose values would become paths outside the state folder or odd process
/// arguments: each is refused like a corrupt file, with its JSON location, and left byte for byte.
@Suite("state file validation")
struct StateValidationTests {
    static let sha = String(repeating: "a", count: 40)

    /// A state that passes every check: one deployed plan and one pending selective plan.
    static func valid() -> [String: Any] {
        func plan(_ v: Int, _ status: String, attempts: [[String: Any]]) -> [String: Any] {
            ["id": "prod-v\(v)-aaaaaaaaaa", "environment": "prod", "version": "\(v)", "commit": sha, "base": sha, "author": "alice",
             "created_at": "2024-05-01T11:00:00Z", "changes": [["path": "models/orders.sql", "change": "modified", "category": "model"]],
             "scope": "selective", "select": ["orders+"], "warnings": [], "status": status, "attempts": attempts]
        }
        let attempt: [String: Any] = ["n": 1, "outcome": "succeeded", "phase": "run", "started_at": "2024-05-01T11:59:00Z",
                                      "finished_at": "2024-05-01T12:00:00.5+02:00", "summary": [:], "jobs": ["build": "prod-v1-aaaaaaaaaa-build-1"], "pid": 4242]
        let event: [String: Any] = ["id": "evt-0123456789abcdef0123456789abcdef", "event": "plan_pending", "environment": "prod",
                                    "plan": "prod-v2-aaaaaaaaaa", "status": "pending", "reason": NSNull(), "scope": "selective",
                                    "select": ["orders+"], "commit": sha, "author": "alice", "approvers_needed": 1, "url": NSNull(),
                                    "at": "2024-05-01T11:00:00Z", "may_approve": ["bob"], "approve_command": "dagctl approve prod-v2-aaaaaaaaaa --as bob"]
        return ["schema_version": 1,
                "outbox": [["event": event, "deliveries": [["webhook": "slack", "attempts": 2, "next_attempt_at": "2024-05-01T11:02:00Z",
                                                            "last_error": "connection refused"]]]],
                "webhooks": ["slack": ["last_error": "connection refused", "last_error_at": "2024-05-01T11:01:00Z"]],
                "environments": ["prod": [
            "ref": "main", "head": sha,
            "deployed": ["commit": sha, "version": "1", "plan": "prod-v1-aaaaaaaaaa", "deployed_at": "2024-05-01T10:00:01Z"],
            "plans": [plan(1, "succeeded", attempts: [attempt]), plan(2, "pending", attempts: [])],
        ] as [String: Any]]]
    }

    struct Hostile: CustomTestStringConvertible, Sendable {
        let name: String
        /// The JSON location and the words the refusal must contain.
        let expected: String
        /// Whether state/schema.json can say it too (patterns cannot compare two fields).
        let schemaSaysSo: Bool
        let edit: @Sendable (inout [String: Any]) -> Void
        var testDescription: String { name }
    }

    static func editPlan(_ i: Int, _ f: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (inout [String: Any]) -> Void {
        { state in
            var envs = state["environments"] as! [String: Any]
            var env = envs["prod"] as! [String: Any]
            var plans = env["plans"] as! [[String: Any]]
            f(&plans[i])
            env["plans"] = plans
            envs["prod"] = env
            state["environments"] = envs
        }
    }

    static func editEnv(_ f: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (inout [String: Any]) -> Void {
        { state in
            var envs = state["environments"] as! [String: Any]
            var env = envs["prod"] as! [String: Any]
            f(&env)
            envs["prod"] = env
            state["environments"] = envs
        }
    }

    static func editAttempt(_ f: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (inout [String: Any]) -> Void {
        editPlan(0) { plan in
            var attempts = plan["attempts"] as! [[String: Any]]
            f(&attempts[0])
            plan["attempts"] = attempts
        }
    }

    static func editOutbox(_ f: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (inout [String: Any]) -> Void {
        { state in
            var outbox = state["outbox"] as! [[String: Any]]
            f(&outbox[0])
            state["outbox"] = outbox
        }
    }

    static func renameEnv(_ key: String) -> @Sendable (inout [String: Any]) -> Void {
        { state in
            var envs = state["environments"] as! [String: Any]
            envs[key] = ["plans": []]
            state["environments"] = envs
        }
    }

    static let hostile: [Hostile] = [
        Hostile(name: "path traversal in a plan id", expected: "environments.prod.plans[1].id: '../../../escape-v1-abc' is not a plan id of environment 'prod'",
                schemaSaysSo: true, edit: editPlan(1) { $0["id"] = "../../../escape-v1-abc" }),
        Hostile(name: "NUL in a plan id", expected: "environments.prod.plans[1].id: 'prod-v2-aaaa\\0aaaaa' is not a plan id",
                schemaSaysSo: true, edit: editPlan(1) { $0["id"] = "prod-v2-aaaa\0aaaaa" }),
        Hostile(name: "slash in an environment key", expected: "environments['a/b']: 'a/b' is not an environment name",
                schemaSaysSo: true, edit: renameEnv("a/b")),
        Hostile(name: "dot-dot as an environment key", expected: "environments['..']: '..' is not an environment name",
                schemaSaysSo: true, edit: renameEnv("..")),
        Hostile(name: "NUL in an environment key", expected: "environments['dev\\0x']: 'dev\\0x' is not an environment name",
                schemaSaysSo: true, edit: renameEnv("dev\0x")),
        Hostile(name: "non-hex commit", expected: "environments.prod.plans[1].commit: '\(String(repeating: "z", count: 40))' is not a full 40-hex commit id",
                schemaSaysSo: true, edit: editPlan(1) { $0["commit"] = String(repeating: "z", count: 40) }),
        Hostile(name: "short deployed commit", expected: "environments.prod.deployed.commit: 'abc' is not a full 40-hex commit id",
                schemaSaysSo: true, edit: editEnv { env in
                    var d = env["deployed"] as! [String: Any]; d["commit"] = "abc"; env["deployed"] = d }),
        Hostile(name: "ref as a base", expected: "environments.prod.plans[1].base: 'HEAD~1' is not a full 40-hex commit id",
                schemaSaysSo: true, edit: editPlan(1) { $0["base"] = "HEAD~1" }),
        Hostile(name: "branch as the head", expected: "environments.prod.head: 'main' is not a full 40-hex commit id",
                schemaSaysSo: true, edit: editEnv { $0["head"] = "main" }),
        Hostile(name: "deployed plan outside the folder", expected: "environments.prod.deployed.plan: '../x' is not a plan id of environment 'prod'",
                schemaSaysSo: true, edit: editEnv { env in
                    var d = env["deployed"] as! [String: Any]; d["plan"] = "../x"; env["deployed"] = d }),
        Hostile(name: "mismatched environment", expected: "environments.prod.plans[1].environment: 'dev' is not the environment it is filed under, 'prod'",
                schemaSaysSo: false, edit: editPlan(1) { $0["environment"] = "dev" }),
        Hostile(name: "another environment's plan id", expected: "environments.prod.plans[1].id: 'dev-v2-aaaaaaaaaa' is not a plan id of environment 'prod'",
                schemaSaysSo: false, edit: editPlan(1) { $0["id"] = "dev-v2-aaaaaaaaaa" }),
        Hostile(name: "id of another commit", expected: "environments.prod.plans[1].id: 'prod-v2-bbbbbbbbbb' does not match its version and commit (expected 'prod-v2-aaaaaaaaaa')",
                schemaSaysSo: false, edit: editPlan(1) { $0["id"] = "prod-v2-bbbbbbbbbb" }),
        Hostile(name: "duplicate plan id", expected: "environments.prod.plans[1].id: 'prod-v1-aaaaaaaaaa' is there twice",
                schemaSaysSo: false, edit: editPlan(1) { $0["id"] = "prod-v1-aaaaaaaaaa"; $0["version"] = "1" }),
        Hostile(name: "version with a path", expected: "environments.prod.plans[1].version: '2/../../x' is not a version",
                schemaSaysSo: true, edit: editPlan(1) { $0["version"] = "2/../../x" }),
        Hostile(name: "attempts out of order", expected: "environments.prod.plans[0].attempts[0].n: is 3, expected 1",
                schemaSaysSo: false, edit: editAttempt { $0["n"] = 3 }),
        Hostile(name: "job name that is an option", expected: "environments.prod.plans[0].attempts[0].jobs.build: '--kubeconfig=/tmp/x' is not a Kubernetes Job name",
                schemaSaysSo: true, edit: editAttempt { $0["jobs"] = ["build": "--kubeconfig=/tmp/x"] }),
        Hostile(name: "job of an unknown phase", expected: "environments.prod.plans[0].attempts[0].jobs: 'deploy' is not a phase",
                schemaSaysSo: true, edit: editAttempt { $0["jobs"] = ["deploy": "x"] }),
        Hostile(name: "pid 1", expected: "environments.prod.plans[0].attempts[0].pid: 1 is not a child process id",
                schemaSaysSo: true, edit: editAttempt { $0["pid"] = 1 }),
        Hostile(name: "select entry that is an option", expected: "environments.prod.plans[1].select[0]: '--profiles-dir=/tmp' is not a model selector",
                schemaSaysSo: true, edit: editPlan(1) { $0["select"] = ["--profiles-dir=/tmp"] }),
        Hostile(name: "newline in a select entry", expected: "environments.prod.plans[1].select[0]: 'a\\nb' is not a model selector",
                schemaSaysSo: true, edit: editPlan(1) { $0["select"] = ["a\nb"] }),
        Hostile(name: "selective plan selecting nothing", expected: "environments.prod.plans[1].select: a selective plan selects at least one model",
                schemaSaysSo: true, edit: editPlan(1) { $0["select"] = [] }),
        Hostile(name: "author that is not a name", expected: "environments.prod.plans[1].author: '../bob' is not a member name",
                schemaSaysSo: true, edit: editPlan(1) { $0["author"] = "../bob" }),
        Hostile(name: "time that is not RFC 3339", expected: "environments.prod.plans[0].attempts[0].started_at: 'yesterday' is not an RFC 3339 date-time",
                schemaSaysSo: false, edit: editAttempt { $0["started_at"] = "yesterday" }),
        Hostile(name: "event id that is not one", expected: "outbox[0].event.id: 'x\\r\\nX-Evil: 1' is not an event id",
                schemaSaysSo: true, edit: editOutbox { entry in
                    var e = entry["event"] as! [String: Any]; e["id"] = "x\r\nX-Evil: 1"; entry["event"] = e }),
        Hostile(name: "event of a plan outside the folder", expected: "outbox[0].event.plan: '../../x' is not a plan id",
                schemaSaysSo: true, edit: editOutbox { entry in
                    var e = entry["event"] as! [String: Any]; e["plan"] = "../../x"; entry["event"] = e }),
        Hostile(name: "delivery to a webhook that is not a name", expected: "outbox[0].deliveries[0].webhook: 'Slack/x' is not a webhook name",
                schemaSaysSo: true, edit: editOutbox { $0["deliveries"] = [["webhook": "Slack/x", "attempts": 0]] }),
        Hostile(name: "a test event", expected: "outbox[0].event.event: 'test' events are never recorded",
                schemaSaysSo: true, edit: editOutbox { entry in
                    var e = entry["event"] as! [String: Any]; e["event"] = "test"; entry["event"] = e }),
        Hostile(name: "event commit that is not one", expected: "outbox[0].event.commit: 'x; rm -rf /' is not a full 40-hex commit id",
                schemaSaysSo: true, edit: editOutbox { entry in
                    var e = entry["event"] as! [String: Any]; e["commit"] = "x; rm -rf /"; entry["event"] = e }),
        Hostile(name: "one webhook twice", expected: "outbox[0].deliveries: a webhook is listed twice",
                schemaSaysSo: false, edit: editOutbox { $0["deliveries"] = [["webhook": "slack", "attempts": 0], ["webhook": "slack", "attempts": 0]] }),
        Hostile(name: "next try that is not a time", expected: "outbox[0].deliveries[0].next_attempt_at: 'soon' is not an RFC 3339 date-time",
                schemaSaysSo: false, edit: editOutbox { $0["deliveries"] = [["webhook": "slack", "attempts": 1, "next_attempt_at": "soon"]] }),
        Hostile(name: "rollback id without what it goes back to", expected: "environments.prod.plans[1].rollback: a rollback plan id without the plan it goes back to",
                schemaSaysSo: false, edit: editPlan(1) { $0["id"] = "prod-rollback-aaaaaaaaaa" }),
        Hostile(name: "rollback id of another commit", expected: "environments.prod.plans[1].id: 'prod-rollback-bbbbbbbbbb' does not match its version and commit",
                schemaSaysSo: false, edit: editPlan(1) { $0["id"] = "prod-rollback-bbbbbbbbbb"; $0["rollback"] = ["to": "prod-v1-aaaaaaaaaa", "by": "bob"] }),
        Hostile(name: "rollback to a path", expected: "environments.prod.plans[1].rollback.to: '../x' is not a plan id of 'prod'",
                schemaSaysSo: true, edit: editPlan(1) { $0["id"] = "prod-rollback-aaaaaaaaaa"; $0["rollback"] = ["to": "../x", "by": "bob"] }),
        Hostile(name: "id taken again with a bad suffix", expected: "environments.prod.plans[1].id: 'prod-v2-aaaaaaaaaa-1' does not match its version and commit",
                schemaSaysSo: true, edit: editPlan(1) { $0["id"] = "prod-v2-aaaaaaaaaa-1" }),
    ]

    /// Rollback plans and ids taken again (`-2`) are valid, in the file and in the schema.
    @Test func rollbackPlansAndRepeatedIdsAreValid() throws {
        var state = Self.valid()
        Self.editPlan(1) { $0["id"] = "prod-rollback-aaaaaaaaaa-2"; $0["rollback"] = ["to": "prod-v1-aaaaaaaaaa", "by": "bob"] }(&state)
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        _ = try write(state, to: dir)
        let loaded = try StateStore(path: dir.file("state/state.json")).load()
        #expect(loaded.environments["prod"]?.plans.last?.rollback == RollbackOrigin(to: "prod-v1-aaaaaaaaaa", by: "bob"))
        #expect(stateSchemaProblems(dir.file("state/state.json")) == "")
        Self.editPlan(1) { $0["id"] = "prod-v2-aaaaaaaaaa-3"; $0.removeValue(forKey: "rollback") }(&state)
        _ = try write(state, to: dir)
        #expect(try StateStore(path: dir.file("state/state.json")).load().environments["prod"]?.plans.last?.id == "prod-v2-aaaaaaaaaa-3")
        #expect(stateSchemaProblems(dir.file("state/state.json")) == "")
    }

    func write(_ state: [String: Any], to dir: TemporaryDirectory) throws -> Data {
        let data = try JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: dir.file("state/state.json")))
        return data
    }

    @Test func theStartingPointIsValid() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        _ = try write(Self.valid(), to: dir)
        let state = try StateStore(path: dir.file("state/state.json")).load()
        #expect(state.environments["prod"]?.plans.map(\.id) == ["prod-v1-aaaaaaaaaa", "prod-v2-aaaaaaaaaa"])
        #expect(state.problems().isEmpty)
        #expect(stateSchemaProblems(dir.file("state/state.json")) == "")
    }

    @Test(arguments: hostile)
    func isRefusedAndLeftUntouched(_ hostile: Hostile) throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        var state = Self.valid()
        hostile.edit(&state)
        let bytes = try write(state, to: dir)
        let path = dir.file("state/state.json")
        #expect {
            try StateStore(path: path).load()
        } throws: { error in
            guard case let .unreadable(refused, reason) = error as? StateError else { return false }
            return refused == path && reason.contains(hostile.expected)
        }
        #expect(Samples.bytes(path) == bytes, "left byte for byte")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("state")) == ["state.json"], "nothing created beside it")
        if hostile.schemaSaysSo {
            #expect(stateSchemaProblems(path) != "", "state/schema.json refuses it too")
        }
    }

    @Test func everyProblemIsListed() throws {
        var state = Self.valid()
        Self.editPlan(1) { $0["id"] = "../x"; $0["commit"] = "nope" }(&state)
        Self.renameEnv("A")(&state)
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        _ = try write(state, to: dir)
        #expect {
            try StateStore(path: dir.file("state/state.json")).load()
        } throws: { error in
            let text = "\(error)"
            return text.contains("environments['A']") && text.contains("plans[1].id: '../x'") && text.contains("plans[1].commit: 'nope'")
        }
    }
}

@Suite("state file validation on save")
struct SaveValidationTests {
    /// What load would refuse is not written either, so one bad value (say, a model name from a hostile
    /// repository) fails one write instead of every later run.
    @Test func aStateThatLoadWouldRefuseIsNotWritten() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        let good = StateFile(environments: ["prod": EnvironmentState(plans: [Samples.plan(1)])])
        try store.save(good)
        let bytes = Samples.bytes(store.path)
        var bad = good
        bad.environments["prod"]!.plans[0].select = ["a\nb"]
        #expect {
            try store.save(bad)
        } throws: { error in
            "\(error)".contains("environments.prod.plans[0].select[0]: 'a\\nb' is not a model selector")
        }
        #expect(Samples.bytes(store.path) == bytes)
        #expect(try store.load() == good)
    }
}
