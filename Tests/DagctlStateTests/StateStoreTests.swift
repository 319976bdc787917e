import DagctlPlanning
import DagctlState
import Foundation
import Testing
import TestSupport

@Suite("state file")
struct StateStoreTests {
    func samplePlan() -> Plan {
        Plan(id: "prod-v8-1a2b3c4d5e", environment: "prod", version: "8", commit: Samples.commit, base: nil,
             author: "alice", changes: [Change(path: "models/x.sql", change: .added, category: .model)], scope: .selective,
             select: ["x"], warnings: [], status: .failed,
             attempts: [Attempt(n: 1, outcome: .failed, phase: .run, summary: ["models": ResultCounts(success: 1, error: 1)])])
    }

    @Test func missingFileIsEmptyState() throws {
        let dir = TemporaryDirectory()
        let state = try StateStore(path: dir.file("state.json")).load()
        #expect(state.environments.isEmpty)
        #expect(state.schemaVersion == 1)
    }

    @Test func roundTripsAndWritesAtomically() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("nested/state.json"))
        var state = StateFile()
        let deployed = Deployment(commit: Samples.commit, version: "7", plan: "prod-v7-1a2b3c4d5e", deployedAt: "2024-05-01T12:00:00Z")
        state.environments["prod"] = EnvironmentState(ref: "main", deployed: deployed, plans: [samplePlan()])
        try store.save(state)
        #expect(try store.load() == state)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.file("nested"))
        #expect(files == ["state.json"], "no temp file is left behind")
        let json = try #require(parseJSON(dir.read("nested/state.json")!))
        #expect(json["schema_version"] as? Int == 1)
    }

    @Test(arguments: ["{not json", "{\"environments\": {}}", "{\"schema_version\": 1, \"environments\": {\"p\": {\"plans\": [{\"id\": 3}]}}}", ""])
    func corruptFileIsRefusedAndLeftUntouched(content: String) throws {
        let dir = TemporaryDirectory()
        dir.write("state.json", content)
        let store = StateStore(path: dir.file("state.json"))
        #expect(throws: StateError.self) { try store.load() }
        #expect(dir.read("state.json") == content)
    }

    @Test func newerSchemaIsRefused() throws {
        let dir = TemporaryDirectory()
        dir.write("state.json", "{\"schema_version\": 2, \"environments\": {}}")
        #expect {
            try StateStore(path: dir.file("state.json")).load()
        } throws: { error in
            "\(error)".contains("schema_version 2, newer than")
        }
    }

    @Test func finishedPlansMoveToHistory() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        func plan(_ v: Int, _ status: PlanStatus) -> Plan {
            var p = samplePlan()
            p.id = "prod-v\(v)-1a2b3c4d5e"
            p.version = String(v)
            p.status = status
            return p
        }
        var state = StateFile(environments: ["prod": EnvironmentState(plans: [
            plan(1, .succeeded), plan(2, .superseded), plan(3, .failed), plan(4, .approved), plan(5, .pending),
        ])])
        try store.archive(&state)
        #expect(state.environments["prod"]!.plans.map(\.version) == ["4", "5"], "unfinished and newest plans stay")
        #expect(store.history("prod").map(\.version) == ["1", "2", "3"])

        // The newest plan finishing and a newer one arriving moves it too; nothing is archived twice.
        state.environments["prod"]!.plans[1].status = .succeeded
        state.environments["prod"]!.plans[0].status = .succeeded
        state.environments["prod"]!.plans.append(plan(6, .pending))
        try store.archive(&state)
        #expect(state.environments["prod"]!.plans.map(\.version) == ["6"])
        #expect(store.history("prod").map(\.version) == ["1", "2", "3", "4", "5"])
        try store.archive(&state)
        #expect(store.history("prod").count == 5)
    }

    @Test func historyReadersResolveDuplicatesById() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        var first = samplePlan()
        first.status = .failed
        var again = first
        again.status = .succeeded
        // A crash between appending to history and writing the state can leave a plan in history twice.
        for p in [first, again] {
            var state = StateFile(environments: ["prod": EnvironmentState(plans: [p, samplePlan()])])
            state.environments["prod"]!.plans[1].id = "prod-v9-1a2b3c4d5e"
            try store.archive(&state)
        }
        #expect(store.history("prod").map(\.status) == [.succeeded])
    }

    @Test func schemaFileDescribesTheStateFile() throws {
        let schema = try #require(parseJSON(try String(contentsOfFile: packageRoot + "/state/schema.json", encoding: .utf8)))
        #expect((schema["properties"] as? [String: Any])?["schema_version"] != nil)
        #expect((schema["required"] as? [String]) == ["schema_version", "environments"])
    }
}
