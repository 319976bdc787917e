import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation
import Testing
import TestSupport

/// A backend that does what a test scripts: each phase call takes the next result of its phase (the
/// last one repeats), and every call is recorded.
final class FakeBackend: Backend, @unchecked Sendable {
    var results: [Attempt.Phase: [PhaseResult]]
    var recovery: Recovery = .interrupt(note: nil)
    var failure: Error?
    /// When set, a build makes its folder and records this virtualenv, as the local backend does.
    var virtualenv: String?
    /// Runs at the start of every build, for tests that change the world under the engine.
    var onBuild: ((AttemptContext) throws -> Void)?
    private(set) var calls: [String] = []

    init(_ results: [Attempt.Phase: [PhaseResult]] = [:]) { self.results = results }

    func advance(_ phase: Attempt.Phase, _ attempt: AttemptContext) throws -> PhaseResult {
        calls.append("\(attempt.plan.id) \(phase.rawValue) #\(attempt.n)")
        if let failure { throw failure }
        if phase == .build { try onBuild?(attempt) }
        if phase == .build, let virtualenv {
            try FileManager.default.createDirectory(atPath: attempt.layout.build(attempt.plan.id, attempt: attempt.n), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(attempt.layout.virtualenvs)/\(virtualenv)", withIntermediateDirectories: true)
            try attempt.update { $0.virtualenv = virtualenv }
        }
        var queue = results[phase] ?? [.succeeded]
        let next = queue.count > 1 ? queue.removeFirst() : queue[0]
        results[phase] = queue
        return next
    }

    func recover(_ plan: Plan, env: EnvironmentSpec) -> Recovery {
        calls.append("recover \(plan.id)")
        return recovery
    }

    func manifests(for plan: Plan, env: EnvironmentSpec, kind: PlanKind) -> [String] { [] }

    /// What a plan kind's helper prints, per call (the last one repeats); nothing by default.
    var answers: [Data] = []
    func inspect(_ commit: ObjectID, env: EnvironmentSpec, kind: PlanKind, command: (Workspace) -> [String]) throws -> Data {
        calls.append("inspect \(commit.short)")
        guard !answers.isEmpty else { return Data() }
        return answers.count > 1 ? answers.removeFirst() : answers[0]
    }
}

/// The reconcile loop against a real repository and state file, with the backend faked: the engine's
/// decisions in milliseconds, without dbt.
final class EngineFixture: @unchecked Sendable {
    let f = PlanningFixture()
    let stateDir = TemporaryDirectory("dagctl-state")
    let backend = FakeBackend()
    var store: StateStore { StateStore(path: stateDir.file("state.json")) }

    init() {
        f.desired.write("environments/dev.yaml", "ref: main\nrequired_approvals: 0\n")
        try? FileManager.default.removeItem(atPath: f.desired.file("environments/prod.yaml"))
        f.initialCommit()
    }

    func bump(_ version: Int, model: String = "models/m\(UUID().uuidString.prefix(4)).sql") {
        f.repo.write(model, "select \(version)\n")
        f.repo.setVersion(String(version))
        f.repo.commit("v\(version)")
    }

    @discardableResult
    func reconcile(wait: Bool = true) throws -> EnvironmentReport {
        let planner = Planner(repo: try GitRepository.open(f.repo.path), desired: DesiredState.load(f.desired.path),
                              state: try store.load(), layout: store.layout, verify: { _, _, _ in nil })
        let console = FileHandle(forWritingAtPath: "/dev/null")!
        let reconciler = Reconciler(planner: planner, store: store, console: console, wait: wait, backends: { _ in self.backend })
        return reconciler.run(environments: ["dev"])[0]
    }

    func preview() throws -> EnvironmentReport {
        let planner = Planner(repo: try GitRepository.open(f.repo.path), desired: DesiredState.load(f.desired.path),
                              state: try store.load(), layout: store.layout, verify: { _, _, _ in nil })
        return planner.preview(planner.selectedEnvironments(["dev"])[0])
    }

    var dev: EnvironmentState { (try? store.load().environments["dev"]) ?? EnvironmentState() }
    var newest: Plan? { dev.plans.last }

    func askRetry(_ retries: Int) throws {
        let plan = try #require(newest)
        f.desired.write("retries/\(plan.id).yaml", "plan: \(plan.id)\nretries: \(retries)\nby: bob\n")
    }
}

@Suite("reconcile loop with a fake backend")
struct ReconcilerTests {
    @Test func anApprovedPlanRunsBothPhasesAndDeploys() throws {
        let e = EngineFixture()
        let report = try e.reconcile()
        let plan = try #require(e.newest)
        #expect(plan.status == .succeeded)
        #expect(e.backend.calls == ["\(plan.id) build #1", "\(plan.id) run #1"])
        #expect(e.dev.deployed?.plan == plan.id)
        #expect(report.actions.contains("deployed \(plan.commit.prefix(10)) (version 1) to dev"))
        // Nothing new: nothing happens.
        #expect(try e.reconcile().actions == ["nothing to do"])
        #expect(e.backend.calls.count == 2)
    }

    @Test func aFailureWaitsForARetryRequestAndRetriesAreBounded() throws {
        let e = EngineFixture()
        e.backend.results[.run] = [.failed("dbt build: exit status 1")]
        let failed = try e.reconcile()
        #expect(failed.failed)
        #expect(e.newest?.status == .failed)
        #expect(e.newest?.statusReason == "attempt 1 failed in run: dbt build: exit status 1")
        #expect(e.dev.deployed == nil)
        #expect(try e.reconcile().actions == ["nothing to do"], "no retry without a request")

        // `plan` previews the retry the request asks for; reconcile runs it.
        try e.askRetry(1)
        #expect(try e.preview().plan?.statusReason == "retry 1 of 1 requested by bob")
        #expect(try e.preview().plan?.status == .approved)
        try e.reconcile()
        #expect(e.newest?.attempts.count == 2)
        #expect(try e.reconcile().actions == ["nothing to do"], "one retry asked, one retry run")

        try e.askRetry(3)
        for _ in 0..<4 { try e.reconcile() }
        #expect(e.newest?.attempts.count == 4, "at most 3 retries")
        try e.askRetry(4)
        let refused = try e.reconcile()
        #expect(refused.actions.contains { $0.hasPrefix("ignored ") && $0.contains("out of range") })
        #expect(e.newest?.attempts.count == 4)

        e.backend.results[.run] = [.succeeded]
        e.bump(2)
        try e.reconcile()
        #expect(e.dev.deployed?.version == "2", "a new version deploys past a failed plan")
    }

    /// A retry never deploys a commit the ref no longer holds (the branch was reset under a failed plan).
    @Test func aRetryOfACommitTheRefNoLongerHoldsIsRefused() throws {
        let e = EngineFixture()
        try e.reconcile()
        let deployed = e.f.repo.git("rev-parse", "HEAD")
        e.backend.results[.run] = [.failed("dbt build: exit status 1")]
        e.bump(2)
        try e.reconcile()
        #expect(e.newest?.status == .failed)
        e.f.repo.git("reset", "-q", "--hard", deployed)
        try e.askRetry(1)
        e.backend.results[.run] = [.succeeded]
        let report = try e.reconcile()
        #expect(e.newest?.status == .failed)
        #expect(report.actions.contains { $0.contains("no longer holds commit") }, "\(report.actions)")
        #expect(e.dev.deployed?.commit == deployed)
    }

    /// A rollback goes where its signed request says, on the ref or not: going back to what ran before
    /// a force-push is what it is for, so its retry does not need the ref to hold its commit.
    @Test func aRollbackOffTheRefCanBeRetried() throws {
        let e = EngineFixture()
        e.bump(2, model: "models/a.sql")
        try e.reconcile()
        let v2 = try #require(e.dev.deployed?.plan)
        e.bump(3, model: "models/a.sql")
        try e.reconcile()
        #expect(e.dev.deployed?.version == "3")
        // main is rewritten: neither deployed commit is on it any more.
        e.f.repo.git("checkout", "-q", "--orphan", "rewritten")
        e.f.repo.commit("rewritten history", author: "alice")
        e.f.repo.git("branch", "-q", "-f", "main", "rewritten")
        e.f.repo.git("checkout", "-q", "main")
        e.f.desired.write("rollbacks/dev.yaml", "env: dev\nto: \(v2)\nby: alice\n")
        e.backend.results[.run] = [.failed("dbt build: exit status 1")]
        try e.reconcile()
        let rollback = try #require(e.newest)
        #expect(rollback.rollback?.to == v2 && rollback.status == .failed, "\(rollback.status) \(rollback.statusReason ?? "")")
        try e.askRetry(1)
        e.backend.results[.run] = [.succeeded]
        let report = try e.reconcile()
        #expect(!report.actions.contains { $0.contains("no longer holds commit") }, "\(report.actions)")
        #expect(e.dev.deployed?.plan == rollback.id, "\(report.actions)")
    }

    @Test func aPlanLeftInProgressIsRecoveredAsInterrupted() throws {
        let e = EngineFixture()
        e.backend.results[.run] = [.running("stand-in for a dagctl that died mid-run")]
        try e.reconcile()
        #expect(e.newest?.status == .running)
        let recovered = try e.reconcile()
        #expect(recovered.failed, "the run that records the interruption reports a failure")
        #expect(e.newest?.status == .failed)
        #expect(e.newest?.attempts.last?.outcome == .interrupted)
        #expect(e.backend.calls.contains("recover \(e.newest!.id)"))
    }

    @Test func noWaitAdvancesOneStepPerRun() throws {
        let e = EngineFixture()
        e.backend.recovery = .observe
        e.backend.results = [.build: [.running("job building"), .succeeded], .run: [.running("job running"), .succeeded]]
        try e.reconcile(wait: false)
        #expect(e.newest?.status == .building)
        try e.reconcile(wait: false)
        #expect(e.newest?.status == .running)
        #expect(e.newest?.attempts.last?.phase == .run)
        try e.reconcile(wait: false)
        #expect(e.newest?.status == .succeeded)
        #expect(e.dev.deployed?.plan == e.newest?.id)
        #expect(e.newest?.attempts.count == 1, "observed, never restarted")
    }

    @Test func aNewVersionSupersedesAPendingPlan() throws {
        let e = EngineFixture()
        e.f.desired.write("environments/dev.yaml", "ref: main\nrequired_approvals: 1\n")
        try e.reconcile()
        let v1 = try #require(e.newest)
        #expect(v1.status == .pending)
        e.bump(2)
        let report = try e.reconcile()
        #expect(report.supersedes == [v1.id])
        #expect(try e.store.history("dev").first { $0.id == v1.id }?.status == .superseded)
        #expect(e.backend.calls.isEmpty, "nothing approved, nothing ran")
    }

    @Test func aNewPlanWaitsForTheOneUnderWay() throws {
        let e = EngineFixture()
        e.backend.recovery = .observe
        e.backend.results = [.build: [.running("job building"), .running("still building"), .succeeded]]
        try e.reconcile(wait: false)
        let v1 = try #require(e.newest)
        e.bump(2)
        #expect(try e.preview().waitingFor == [v1.id])
        try e.reconcile(wait: false)
        let v2 = try #require(e.newest)
        #expect(v2.status == .approved, "approved, waiting its turn")
        #expect(!e.backend.calls.contains { $0.hasPrefix(v2.id) }, "v2 did not start while v1 was under way")
        try e.reconcile(wait: false)
        #expect(e.dev.deployed?.version == "2", "v1 finished, then v2 ran in the same run")
        #expect(e.backend.calls.last?.hasPrefix(v2.id) == true)
    }

    /// Pruning works from what is on disk: a build folder of a plan that has gone to history (it waited
    /// across runs) is removed too; virtualenvs of the last two deployments stay, older ones go.
    @Test func pruningKeepsWhatDeploymentsNeedAndNothingElse() throws {
        let e = EngineFixture()
        let layout = e.store.layout
        let stale = layout.build("dev-v0-0123456789")
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
        var venvs: [String] = []
        for version in 1...3 {
            if version > 1 { e.bump(version) }
            e.backend.virtualenv = String(repeating: String(version), count: 20)
            venvs.append(e.backend.virtualenv!)
            try e.reconcile()
            #expect(e.dev.deployed?.version == String(version))
        }
        let builds = try FileManager.default.contentsOfDirectory(atPath: layout.builds)
        #expect(builds == [try #require(e.dev.deployed?.plan)], "only the deployed plan's build is kept")
        let kept = Set(try FileManager.default.contentsOfDirectory(atPath: layout.virtualenvs))
        #expect(kept == Set(venvs.suffix(2)), "the virtualenvs of the last two deployments")
    }

    /// Once a state write fails (a full disk, a folder gone), the file on disk is behind the run:
    /// nothing more is recorded, archived or started.
    @Test func afterAFailedStateWriteNothingMoreHappens() throws {
        let e = EngineFixture()
        e.f.desired.write("environments/dev2.yaml", "ref: main\nrequired_approvals: 0\n")
        e.backend.onBuild = { attempt in
            // The state folder turns into a file: every later write fails.
            try FileManager.default.removeItem(atPath: e.stateDir.path)
            FileManager.default.createFile(atPath: e.stateDir.path, contents: Data("x".utf8))
        }
        let planner = Planner(repo: try GitRepository.open(e.f.repo.path), desired: DesiredState.load(e.f.desired.path),
                              state: StateFile(), layout: e.store.layout, verify: { _, _, _ in nil })
        let reports = Reconciler(planner: planner, store: e.store, console: FileHandle(forWritingAtPath: "/dev/null")!,
                                 backends: { _ in e.backend }).run(environments: ["dev", "dev2"])
        #expect(reports[0].errors.contains { $0.contains("cannot write") }, "\(reports[0].errors)")
        #expect(reports[1].errors.contains { $0.contains("not reconciled: the state file could not be written") }, "\(reports[1].errors)")
        #expect(!e.backend.calls.contains { $0.hasPrefix("dev2-") }, "dev2 never started")
    }

    @Test func aBackendThatThrowsLeavesThePlanAndReportsTheError() throws {
        let e = EngineFixture()
        e.backend.failure = EngineError("the cluster is unreachable")
        let report = try e.reconcile()
        #expect(report.errors.contains("the cluster is unreachable"))
        #expect(e.newest?.status == .building, "the attempt stays as it was recorded")
        e.backend.failure = nil
        e.backend.recovery = .observe
        try e.reconcile()
        #expect(e.newest?.status == .succeeded)
    }

    @Test func anInterruptedBuildNeverReachesTheRunPhase() throws {
        let e = EngineFixture()
        e.backend.results[.build] = [.interrupted("dagctl received SIGTERM and stopped before starting dbt")]
        try e.reconcile()
        #expect(e.newest?.status == .failed)
        #expect(e.newest?.attempts.last?.outcome == .interrupted)
        #expect(e.backend.calls.allSatisfy { !$0.contains(" run ") })
    }
}
