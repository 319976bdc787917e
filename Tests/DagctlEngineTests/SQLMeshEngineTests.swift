import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation
import Testing
import TestSupport

/// SQLMesh plans through the engine with SQLMesh's answers scripted (the real helper is exercised by
/// the end-to-end tests): when Python is asked, how answers become plans, the stale-plan guard, and
/// the confirm step.
final class SQLMeshFixture: @unchecked Sendable {
    let e = EngineFixture()

    init() {
        e.f.repo.write(".dagctl/config.yaml", "kind: sqlmesh\n")
        e.f.repo.write("config.yaml", "model_defaults: {dialect: duckdb}\n")
        e.f.repo.commit("sqlmesh", author: "bob")
        e.f.desired.write("environments/dev.yaml", "ref: main\nrequired_approvals: 0\n")
    }

    static func answer(planID: String?, models: [(String, String, String?)]) -> Data {
        let items = models.map { ["model": $0.0, "change": $0.1, "category": $0.2 as Any, "backfill": [["2024-01-01", "2024-01-02"]]] }
        let json: [String: Any] = ["environment": "dev", "plan_id": planID as Any, "has_changes": !models.isEmpty, "models": items]
        return try! JSONSerialization.data(withJSONObject: json) + Data("\n".utf8)
    }

    var inspections: Int { e.backend.calls.filter { $0.hasPrefix("inspect") }.count }
}

@Suite("SQLMesh plans in the engine (SQLMesh's answers scripted)")
struct SQLMeshEngineTests {
    @Test func aChangeBecomesAPlanThatRunsAndIsConfirmed() throws {
        let s = SQLMeshFixture()
        s.e.backend.answers = [
            SQLMeshFixture.answer(planID: nil, models: [("shop.a", "added", "breaking"), ("shop.b", "added", "breaking")]),  // explain
            SQLMeshFixture.answer(planID: nil, models: [("shop.a", "added", "breaking"), ("shop.b", "added", "breaking")]),  // before applying
            SQLMeshFixture.answer(planID: "p1", models: []),                                                                  // confirm
        ]
        let report = try s.e.reconcile()
        let plan = try #require(s.e.newest)
        #expect(plan.scope == .sqlmesh)
        #expect(plan.id == "dev-\(plan.commit.prefix(10))")
        #expect(plan.select == ["added:shop.a", "added:shop.b"])
        #expect(plan.status == .succeeded, "\(report.errors) \(report.actions)")
        #expect(plan.author == "bob")
        #expect(s.e.dev.deployed?.plan == plan.id)
        #expect(s.inspections == 3)
        // Nothing moved: no Python at all.
        #expect(try s.e.reconcile().actions == ["nothing to do"])
        #expect(s.inspections == 3)
    }

    @Test func noChangesMeansInSyncAndTheSameHeadIsNotAskedAgain() throws {
        let s = SQLMeshFixture()
        s.e.backend.answers = [SQLMeshFixture.answer(planID: "p0", models: [])]
        let report = try s.e.reconcile()
        #expect(s.e.newest == nil)
        #expect(report.inSync == s.e.f.repo.git("rev-parse", "HEAD"))
        #expect(s.e.dev.inSync == s.e.f.repo.git("rev-parse", "HEAD"))
        try s.e.reconcile()
        #expect(s.inspections == 1, "the second run with the same head starts no Python")
    }

    @Test func aStaleApprovedPlanIsSupersededAndNeverApplied() throws {
        let s = SQLMeshFixture()
        s.e.f.desired.write("environments/dev.yaml", "ref: main\nrequired_approvals: 1\n")
        s.e.backend.answers = [SQLMeshFixture.answer(planID: "p1", models: [("shop.a", "directly_modified", "non_breaking")])]
        try s.e.reconcile()
        let plan = try #require(s.e.newest)
        #expect(plan.status == .pending)
        #expect(plan.base == "p1")
        s.e.f.desired.write("approvals/\(plan.id)/carol.yaml", "plan: \(plan.id)\ncommit: \(plan.commit)\ndecision: approve\nby: carol\n")
        // Someone applied to the SQLMesh environment out of band: its plan id moved.
        s.e.backend.answers = [SQLMeshFixture.answer(planID: "p2", models: [("shop.a", "directly_modified", "non_breaking")])]
        let report = try s.e.reconcile()
        #expect(!s.e.backend.calls.contains { $0.contains(" build ") || $0.contains(" run ") }, "never applied")
        let plans = s.e.dev.plans
        let old = try #require(try s.e.store.history("dev").first { $0.id == plan.id } ?? plans.first { $0.id == plan.id })
        #expect(old.status == .superseded)
        #expect(old.statusReason?.contains("moved since this plan was explained") == true, "\(old.statusReason ?? "")")
        let fresh = try #require(s.e.newest)
        #expect(fresh.id == plan.id + "-2", "the same commit, a new id")
        #expect(fresh.status == .pending, "a fresh plan needs approval again")
        #expect(fresh.base == "p2")
        #expect(report.actions.contains { $0.hasPrefix("superseded \(plan.id)") })
    }

    @Test func anApplyThatLeavesChangesFailsTheAttempt() throws {
        let s = SQLMeshFixture()
        let changes = SQLMeshFixture.answer(planID: nil, models: [("shop.a", "added", "breaking")])
        s.e.backend.answers = [changes, changes, changes]
        let report = try s.e.reconcile()
        #expect(s.e.newest?.status == .failed)
        #expect(s.e.newest?.statusReason?.contains("after the apply SQLMesh still plans changes for dev: shop.a added") == true, "\(report.errors)")
        #expect(s.e.dev.deployed == nil)
    }

    /// dagctl killed after SQLMesh applied (while confirming): the next run asks, hears "in sync", and
    /// records the deployment instead of an interrupted attempt.
    @Test func aRunThatFinishedBeforeACrashIsRecordedAsDeployed() throws {
        let s = SQLMeshFixture()
        let changes = SQLMeshFixture.answer(planID: nil, models: [("shop.a", "added", "breaking")])
        s.e.backend.answers = [changes, changes]
        s.e.backend.results[.run] = [.running("stand-in for a dagctl killed after the apply")]
        try s.e.reconcile()
        #expect(s.e.newest?.status == .running)
        s.e.backend.answers = [SQLMeshFixture.answer(planID: "p1", models: [])]
        let recovered = try s.e.reconcile()
        #expect(s.e.newest?.status == .succeeded, "\(recovered.actions)")
        #expect(s.e.dev.deployed?.plan == s.e.newest?.id)
        #expect(recovered.actions.contains { $0.contains("its run had finished before the dagctl run doing it died") })
    }

    @Test func aSQLMeshPlanIsApprovedOnlyOnceRecorded() throws {
        let s = SQLMeshFixture()
        let planner = Planner(repo: try GitRepository.open(s.e.f.repo.path), desired: DesiredState.load(s.e.f.desired.path),
                              state: StateFile(), layout: s.e.store.layout, verify: { _, _, _ in nil })
        let head = s.e.f.repo.git("rev-parse", "HEAD")
        #expect {
            _ = try DecisionWriter(planner: planner).approve(planID: "dev-\(head.prefix(10))", as: "bob", decision: .approve,
                                                             comment: nil, keyPath: nil)
        } throws: { "\($0)".contains("a SQLMesh plan is approved once reconcile has recorded it") }
    }

    @Test func dbtKeysInASQLMeshEnvironmentAreErrorsWithTheirLine() throws {
        let s = SQLMeshFixture()
        s.e.f.desired.write("environments/dev.yaml", "ref: main\nrequired_approvals: 0\ntarget: dev\n")
        let report = try s.e.reconcile()
        #expect(report.errors.contains { $0.contains("environments/dev.yaml:3: 'target': does not apply to a sqlmesh project") }, "\(report.errors)")
        #expect(s.inspections == 0)
    }
}
