import DagctlPlanning
import DagctlState
import Foundation
import Testing
import TestSupport

/// A run killed between recording a plan `succeeded` and recording it as deployed.
@Suite("split deployments")
struct StateRepairTests {
    func succeeded(_ v: Int, at time: String = "2024-05-01T12:00:00Z") -> Plan { Samples.plan(v, status: .succeeded, finished: time) }

    func deployment(_ plan: Plan, at time: String? = "2024-05-01T12:00:00Z") -> Deployment {
        Deployment(commit: plan.commit, version: plan.version, plan: plan.id, deployedAt: time)
    }

    func repaired(_ env: EnvironmentState) -> (Deployment?, [String]) {
        let (state, notes) = StateFile(environments: ["prod": env]).repairingSplitDeployments()
        return (state.environments["prod"]!.deployed, notes)
    }

    @Test func aFirstDeployThatWasNotRecorded() {
        let plan = succeeded(1, at: "2024-05-01T12:03:04Z")
        let (deployed, notes) = repaired(EnvironmentState(plans: [plan]))
        #expect(deployed == deployment(plan, at: "2024-05-01T12:03:04Z"))
        #expect(notes == ["prod: prod-v1-1a2b3c4d5e succeeded but was not recorded as deployed (nothing was deployed); "
            + "recorded it as deployed, as the run that ran it was stopped before it could"])
    }

    @Test func aNewerSucceededPlanThanTheDeployedOne() {
        let old = succeeded(1), new = succeeded(2, at: "2024-05-02T08:00:00Z")
        let (deployed, notes) = repaired(EnvironmentState(deployed: deployment(old), plans: [old, new, Samples.plan(3, status: .pending)]))
        #expect(deployed == deployment(new, at: "2024-05-02T08:00:00Z"))
        #expect(notes.count == 1 && notes[0].contains("deployed named prod-v1-1a2b3c4d5e"))
    }

    @Test func theDeployedPlanWasArchived() {
        let archived = succeeded(1)
        // Finished at or after deployed_at (whole seconds): newer. Before it, or no times to compare: left alone.
        #expect(repaired(EnvironmentState(deployed: deployment(archived, at: "2024-05-01T12:00:00Z"),
                                          plans: [succeeded(2, at: "2024-05-01T12:00:00Z")])).0?.plan == "prod-v2-1a2b3c4d5e")
        #expect(repaired(EnvironmentState(deployed: deployment(archived, at: "2024-05-01T12:00:00Z"),
                                          plans: [succeeded(2, at: "2024-05-01T14:00:00+02:00")])).0?.plan == "prod-v2-1a2b3c4d5e")
        #expect(repaired(EnvironmentState(deployed: deployment(archived, at: "2024-05-01T12:00:00Z"),
                                          plans: [succeeded(2, at: "2024-05-01T11:59:59Z")])).0?.plan == archived.id)
        #expect(repaired(EnvironmentState(deployed: deployment(archived, at: nil), plans: [succeeded(2)])).0?.plan == archived.id)
    }

    @Test func nothingToRepair() {
        let one = succeeded(1), two = succeeded(2)
        for env in [
            EnvironmentState(deployed: deployment(two), plans: [one, two]),                          // deployed is the newest success
            EnvironmentState(deployed: deployment(two), plans: [two, Samples.plan(3)]),              // a failed plan after it
            EnvironmentState(plans: [Samples.plan(1), Samples.plan(2, status: .pending)]),           // nothing succeeded
        ] {
            let (state, notes) = StateFile(environments: ["prod": env]).repairingSplitDeployments()
            #expect(state == StateFile(environments: ["prod": env]))
            #expect(notes.isEmpty)
        }
    }

    @Test func loadRepairsWithoutWriting() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        let old = succeeded(1), new = succeeded(2, at: "2024-05-02T08:00:00Z")
        try store.save(StateFile(environments: ["prod": EnvironmentState(deployed: deployment(old), plans: [old, new])]))
        let bytes = Samples.bytes(store.path)
        #expect(try store.load().environments["prod"]?.deployed == deployment(new, at: "2024-05-02T08:00:00Z"))
        let (_, repairs) = try store.loadRepairing()
        #expect(repairs.count == 1)
        #expect(Samples.bytes(store.path) == bytes, "load() does not write")
    }
}
