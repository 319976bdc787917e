import DagctlPlanning
import DagctlSpec
import Testing

/// The pure rules of SPEC §10's rollback: who may ask, what the file pins, when a rollback plan is
/// due, and what happens to rollback plans nobody asks for any more. Signatures are checked by an
/// injected function here; the end-to-end tests sign for real.
@Suite("rollback rules")
struct RollbackRuleTests {
    static let v1Commit = String(repeating: "1", count: 40)
    static let v2Commit = String(repeating: "2", count: 40)

    let members = try! Members.parse("""
        members:
          - {name: alice, emails: [a@x], roles: [admin]}
          - {name: bob, emails: [b@x], roles: [deployer], keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob"]}
        """, file: "members.yaml")

    func env(_ text: String = "ref: main\nprotected: true\nallowlist: [alice, bob]\nrequired_role: deployer\nrequire_signature: true\n") -> EnvironmentSpec {
        try! EnvironmentSpec.parse(text, name: "prod", file: "environments/prod.yaml", members: ["alice", "bob"])
    }

    func plan(_ id: String, _ commit: String, _ status: PlanStatus, version: String = "1", rollback: RollbackOrigin? = nil) -> Plan {
        var p = Plan(id: id, environment: "prod", version: version, commit: commit, base: nil, author: nil, changes: [], scope: .all,
                     select: [], warnings: [], status: status)
        p.rollback = rollback
        return p
    }

    var history: [Plan] { [plan("prod-v1-1111111111", Self.v1Commit, .succeeded), plan("prod-v2-2222222222", Self.v2Commit, .succeeded, version: "2")] }

    /// The signature "verifies" only over the exact payload bob would sign for v1.
    func verify(_ payload: String, _ signature: String, _ member: Member) -> String? {
        let expected = SignedPayload.rollback(environment: "prod", to: "prod-v1-1111111111", commit: Self.v1Commit, by: "bob")
        return payload == expected && signature == "good" && member.name == "bob" ? nil : "no"
    }

    func pin(_ file: RollbackFile, env: EnvironmentSpec? = nil, plans: [Plan]? = nil) -> Pin {
        RollbackRules.pin(LoadedFile(stem: "prod", path: "rollbacks/prod.yaml", result: .success(file)), env: env ?? self.env(),
                          members: members, plans: plans ?? history, verify: verify)
    }

    @Test func theSignedPayloadIsExact() {
        #expect(SignedPayload.rollback(environment: "prod", to: "prod-v1-1111111111", commit: Self.v1Commit, by: "bob")
                == "dagctl-rollback-v1\nenvironment: prod\nto: prod-v1-1111111111\ncommit: \(Self.v1Commit)\nby: bob\n")
    }

    @Test func aValidFilePinsAtItsTarget() {
        let p = pin(RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob", signature: "good"))
        #expect(p.isValid && p.target?.commit == Self.v1Commit && p.problem == nil)
        #expect(p.summary.contains("pinned by rollbacks/prod.yaml at prod-v1-1111111111 (by bob)") && p.summary.contains("delete rollbacks/prod.yaml to unpin"))
    }

    @Test(arguments: [
        (RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob"), "a signature is required"),
        (RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob", signature: "forged"), "signature does not verify"),
        (RollbackFile(env: "prod", to: "prod-v2-2222222222", by: "bob", signature: "good"), "signature does not verify"),
        (RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "alice", signature: "good"), "does not hold the role 'deployer'"),
        (RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "mallory", signature: "good"), "'mallory' is not a member"),
        (RollbackFile(env: "prod", to: "prod-v3-3333333333", by: "bob", signature: "good"), "is not a plan of 'prod'"),
        (RollbackFile(env: "prod", to: "prod-v4-4444444444", by: "bob", signature: "good"), "never succeeded in 'prod' (it is failed)"),
        (RollbackFile(env: "dev", to: "prod-v1-1111111111", by: "bob", signature: "good"), "differs from the file name"),
    ])
    func refusedFilesHoldTheEnvironment(_ file: RollbackFile, _ reason: String) {
        let p = pin(file, plans: history + [plan("prod-v4-4444444444", Self.v1Commit, .failed, version: "4")])
        #expect(!p.isValid && p.target == nil)
        #expect(p.problem?.contains(reason) == true, "\(p.problem ?? "valid")")
        #expect(p.summary.hasPrefix("held by rollbacks/prod.yaml, which is invalid"))
        // Held: it asks for no rollback, and lets no plan start.
        #expect(RollbackRules.decision(p, plans: history, deployedCommit: Self.v2Commit) == nil)
        #expect(!p.allows(plan("prod-rollback-1111111111", Self.v1Commit, .approved, rollback: RollbackOrigin(to: "prod-v1-1111111111", by: "bob"))))
    }

    @Test func anUnprotectedEnvironmentTakesAnyMemberUnsigned() {
        let p = pin(RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "alice"), env: env("ref: main\n"))
        #expect(p.isValid, "\(p.problem ?? "")")
    }

    @Test func whenARollbackIsDue() {
        let valid = pin(RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob", signature: "good"))
        let origin = RollbackOrigin(to: "prod-v1-1111111111", by: "bob")
        // Deployed elsewhere: go back, superseding what has not started.
        let v3 = plan("prod-v3-3333333333", Self.v2Commit, .pending, version: "3")
        let v4 = plan("prod-v4-4444444444", Self.v2Commit, .approved, version: "4")
        let running = plan("prod-v5-5555555555", Self.v2Commit, .running, version: "5")
        #expect(RollbackRules.decision(valid, plans: [v3, v4, running], deployedCommit: Self.v2Commit)
                == .rollback(to: history[0], supersede: [v3.id, v4.id]))
        // The rollback plan in hand is kept, whatever became of it (a rejected one is not asked again).
        for status in [PlanStatus.pending, .approved, .running, .failed, .rejected] {
            let rb = plan("prod-rollback-1111111111", Self.v1Commit, status, rollback: origin)
            #expect(RollbackRules.decision(valid, plans: [rb], deployedCommit: Self.v2Commit) == .keep(rb))
        }
        // A superseded one (a stale SQLMesh plan) is explained again.
        let superseded = plan("prod-rollback-1111111111", Self.v1Commit, .superseded, rollback: origin)
        #expect(RollbackRules.decision(valid, plans: [superseded], deployedCommit: Self.v2Commit) == .rollback(to: history[0], supersede: []))
        // Deployed at the target: the rollback is done, the plan kind's trigger decides (and the pin holds).
        #expect(RollbackRules.decision(valid, plans: [superseded], deployedCommit: Self.v1Commit) == nil)
        #expect(RollbackRules.decision(nil, plans: [v3], deployedCommit: Self.v2Commit) == nil)
    }

    @Test func rollbackPlansNobodyAsksForAreWithdrawn() {
        let origin = RollbackOrigin(to: "prod-v1-1111111111", by: "bob")
        let ids = ["prod-rollback-1111111111", "prod-rollback-1111111111-2", "prod-rollback-1111111111-3", "prod-rollback-1111111111-4",
                   "prod-rollback-1111111111-5"]
        let statuses: [PlanStatus] = [.pending, .approved, .failed, .running, .rejected]
        let rollbacks = zip(ids, statuses).map { plan($0, Self.v1Commit, $1, rollback: origin) }
        let normal = plan("prod-v3-3333333333", Self.v2Commit, .pending, version: "3")
        // Deleted: what has not started, and a failed one (never retried), is superseded; one under way
        // finishes; a rejected one stays rejected. All but the running one are marked withdrawn.
        var plans = rollbacks + [normal]
        let lines = RollbackRules.withdraw(&plans, pin: nil)
        #expect(lines == ids.prefix(3).map { "superseded \($0): withdrawn: rollbacks/prod.yaml was deleted; it is not run or retried" })
        #expect(plans.map(\.status) == [.superseded, .superseded, .superseded, .running, .rejected, .pending])
        #expect(plans.map { $0.rollback?.withdrawn } == [true, true, true, nil, true, nil])
        // Asking again after a rejection makes a new plan instead of keeping the rejected one.
        let valid = pin(RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob", signature: "good"))
        #expect(RollbackRules.decision(valid, plans: [plans[4]], deployedCommit: Self.v2Commit) == .rollback(to: history[0], supersede: []))
        #expect(RollbackRules.decision(valid, plans: [rollbacks[4]], deployedCommit: Self.v2Commit) == .keep(rollbacks[4]), "while it stands")
        // A valid pin keeps its own; a pin that now names another target withdraws it.
        var mine = [rollbacks[0]]
        #expect(RollbackRules.withdraw(&mine, pin: valid).isEmpty && mine == [rollbacks[0]])
        var other = [plan("prod-rollback-2222222222", Self.v2Commit, .pending, rollback: RollbackOrigin(to: "prod-v2-2222222222", by: "bob"))]
        #expect(RollbackRules.withdraw(&other, pin: valid) == ["superseded prod-rollback-2222222222: withdrawn: rollbacks/prod.yaml now asks for prod-v1-1111111111 by bob; it is not run or retried"])
    }

    /// A file that does not count holds, and withdraws nothing: fixed, its plan goes on with its
    /// approvals. A request now made by someone else is a new request (its author may not approve it).
    @Test func aBrokenFileWithdrawsNothingAndAnotherRequesterIsANewRequest() {
        let origin = RollbackOrigin(to: "prod-v1-1111111111", by: "bob")
        let approved = plan("prod-rollback-1111111111", Self.v1Commit, .approved, rollback: origin)
        var plans = [approved]
        let broken = pin(RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob", signature: "forged"))
        #expect(RollbackRules.withdraw(&plans, pin: broken).isEmpty && plans == [approved])
        #expect(!broken.allows(approved), "held meanwhile")
        let unsigned = pin(RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "alice"), env: env("ref: main\n"))
        #expect(unsigned.isValid && !unsigned.allows(approved))
        #expect(RollbackRules.withdraw(&plans, pin: unsigned) == ["superseded prod-rollback-1111111111: withdrawn: rollbacks/prod.yaml now asks for prod-v1-1111111111 by alice; it is not run or retried"])
    }

    /// A rollback that reached its run phase and did not finish leaves the warehouse in between: the
    /// next dbt plan builds everything, and once it is withdrawn the ref's version is planned again.
    @Test func aRollbackThatRanPartWayUnsettlesTheWarehouse() {
        let origin = RollbackOrigin(to: "prod-v1-1111111111", by: "bob", withdrawn: true)
        var rb = plan("prod-rollback-1111111111", Self.v1Commit, .superseded, rollback: origin)
        #expect(RollbackRules.unsettled(history + [rb]) == nil, "it never ran")
        rb.attempts = [Attempt(n: 1, outcome: .failed, phase: .build)]
        #expect(RollbackRules.unsettled(history + [rb]) == nil, "a build that failed touched nothing")
        #expect(NextPlanDecision.decide(headVersion: Version("2")!, plans: [rb], deployedVersion: "2") == .keep(rb))
        rb.attempts = [Attempt(n: 1, outcome: .interrupted, phase: .run)]
        #expect(RollbackRules.unsettled(history + [rb])?.contains("prod-rollback-1111111111 reached its run phase and did not finish") == true)
        #expect(NextPlanDecision.decide(headVersion: Version("2")!, plans: [rb], deployedVersion: "2") == .create(supersede: []))
        var rebuilt = plan("prod-v2-2222222222-2", Self.v2Commit, .succeeded, version: "2")
        rebuilt.attempts = [Attempt(n: 1, outcome: .succeeded, phase: .run)]
        #expect(RollbackRules.unsettled(history + [rb, rebuilt]) == nil, "settled by the next deploy")
    }

    /// After a rollback the version to beat is the deployed one: the ref's version is new again when
    /// the rollback went through, and changes nothing when it did not.
    @Test func theVersionAfterARollback() {
        let rb = plan("prod-rollback-1111111111", Self.v1Commit, .succeeded, rollback: RollbackOrigin(to: "prod-v1-1111111111", by: "bob"))
        #expect(NextPlanDecision.decide(headVersion: Version("2")!, plans: [rb], deployedVersion: "1") == .create(supersede: []))
        #expect(NextPlanDecision.decide(headVersion: Version("1")!, plans: [rb], deployedVersion: "1") == .keep(rb), "a revert of the bump")
        var rejected = rb
        rejected.status = .rejected
        #expect(NextPlanDecision.decide(headVersion: Version("2")!, plans: [rejected], deployedVersion: "2") == .keep(rejected))
    }

    @Test func idsTakenAgainGetASuffix() {
        let v2 = Version("2")!
        #expect(Plan.id(environment: "prod", version: v2, commit: Self.v2Commit, taken: ["prod-v2-2222222222"]) == "prod-v2-2222222222-2")
        #expect(Plan.rollbackID(environment: "prod", commit: Self.v1Commit, taken: []) == "prod-rollback-1111111111")
        #expect(Plan.rollbackID(environment: "prod", commit: Self.v1Commit, taken: ["prod-rollback-1111111111", "prod-rollback-1111111111-2"])
                == "prod-rollback-1111111111-3")
    }

    @Test func theFileIsReadStrictly() throws {
        #expect(throws: SpecIssues.self) { try RollbackFile.parse("env: prod\nto: ../../etc\nby: bob\n", file: "r.yaml") }
        #expect(throws: SpecIssues.self) { try RollbackFile.parse("env: prod\nto: prod-v1-1111111111\n", file: "r.yaml") }
        #expect(throws: SpecIssues.self) { try RollbackFile.parse("env: prod\nto: prod-v1-1111111111\nby: bob\nwhen: now\n", file: "r.yaml") }
        #expect(try RollbackFile.parse("env: prod\nto: prod-v1-1111111111\nby: bob\n", file: "r.yaml") == RollbackFile(env: "prod", to: "prod-v1-1111111111", by: "bob"))
    }
}
