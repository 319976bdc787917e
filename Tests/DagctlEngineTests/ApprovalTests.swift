import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation
import Testing
import TestSupport

/// Real ed25519 keys made by ssh-keygen, one per member (bob has two).
final class Keys: @unchecked Sendable {
    let dir = TemporaryDirectory("dagctl-keys")

    init() {
        for name in ["alice", "bob", "bob2", "carol", "mallory"] {
            let r = run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", dir.file(name)])
            precondition(r.status == 0, r.stderr)
        }
    }

    func privateKey(_ name: String) -> String { dir.file(name) }
    func publicKey(_ name: String) -> String { dir.read(name + ".pub")!.trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// A repository at version 8 authored by alice, and a desired state where prod is protected:
/// allowlist bob, carol and alice; role deployer (alice lacks it); signatures required.
final class ApprovalFixture: @unchecked Sendable {
    let keys = Keys()
    let f = PlanningFixture()

    init(requiredApprovals: Int = 1) {
        f.desired.write("members.yaml", """
            members:
              - name: alice
                emails: [alice@example.com]
                roles: [admin]
                keys: ["\(keys.publicKey("alice"))"]
              - name: bob
                emails: [bob@example.com]
                roles: [deployer]
                keys: ["\(keys.publicKey("bob"))", "\(keys.publicKey("bob2"))"]
              - name: carol
                emails: [carol@example.com]
                roles: [deployer]
                keys: ["\(keys.publicKey("carol"))"]
              - name: dave
                emails: [dave@example.com]
                roles: [deployer]
            """)
        f.desired.write("environments/prod.yaml", """
            ref: main
            protected: true
            allowlist: [alice, bob, carol, dave]
            required_role: deployer
            required_approvals: \(requiredApprovals)
            """)
        f.desired.write("environments/dev.yaml", "ref: main\n")
        f.repo.setVersion("8")
        f.repo.writeDbtProject()
        f.repo.commit("v8", author: "alice")
    }

    func plan(_ env: String = "prod") throws -> Plan { try f.plan(env) }

    func signature(_ payload: String, key: String) throws -> String {
        try SSHSignatures.sign(payload: payload, keyPath: keys.privateKey(key))
    }

    /// Writes an approval file; `signWith` is a key name, `payloadFor` lets a test sign other details.
    func approval(_ plan: Plan, by: String, stem: String? = nil, decision: String = "approve", commit: String? = nil,
                  planID: String? = nil, comment: String? = nil, signWith: String? = nil, payload: String? = nil) throws {
        var text = "plan: \(planID ?? plan.id)\ncommit: \(commit ?? plan.commit)\ndecision: \(decision)\nby: \(by)\n"
        if let comment { text += "comment: \(comment)\n" }
        if let signWith {
            let p = payload ?? SignedPayload.approval(plan: plan, decision: ApprovalFile.Decision(rawValue: decision)!, by: by, comment: comment)
            text += "signature: |\n" + (try signature(p, key: signWith)).split(separator: "\n").map { "  \($0)\n" }.joined()
        }
        f.desired.write("approvals/\(plan.id)/\(stem ?? by).yaml", text)
    }

    func review(_ env: String = "prod") throws -> ApprovalReview {
        try #require(try f.preview(env).approvals)
    }

    func verdict(_ by: String, _ env: String = "prod") throws -> ApprovalVerdict {
        try #require(try review(env).verdicts.first { $0.file.hasSuffix("/\(by).yaml") })
    }
}

@Suite("approvals with real ssh signatures", .serialized)
struct ApprovalTests {
    @Test func signedApprovalFromAllowlistedMemberApproves() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob")
        let review = try a.review()
        #expect(review.verdicts.map(\.valid) == [true])
        #expect(review.outcome == .approved)
        #expect(try a.f.preview("prod").plan?.status == .approved)
    }

    @Test func aMemberMayHaveSeveralKeys() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "bob", signWith: "bob2")
        #expect(try a.verdict("bob").valid)
    }

    @Test func selfApprovalRefusedOnProtected() throws {
        let a = ApprovalFixture()
        a.f.desired.write("members.yaml", a.f.desired.read("members.yaml")!.replacingOccurrences(of: "roles: [admin]", with: "roles: [admin, deployer]"))
        try a.approval(try a.plan(), by: "alice", signWith: "alice")
        let v = try a.verdict("alice")
        #expect(!v.valid)
        #expect(v.reason?.contains("authored the version bump") == true)
        #expect(try a.review().outcome == .waiting)
    }

    @Test func selfApprovalAcceptedOnUnprotected() throws {
        let a = ApprovalFixture()
        let plan = try a.plan("dev")
        #expect(plan.author == "alice")
        try a.approval(plan, by: "alice")
        #expect(try a.verdict("alice", "dev").valid)
        #expect(try a.review("dev").outcome == .approved)
    }

    @Test func memberNotOnAllowlist() throws {
        let a = ApprovalFixture()
        a.f.desired.write("environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [carol]\n")
        try a.approval(try a.plan(), by: "bob", signWith: "bob")
        #expect(try a.verdict("bob").reason?.contains("not on the allowlist") == true)
    }

    @Test func missingRole() throws {
        let a = ApprovalFixture()
        a.f.desired.write("environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [bob]\nrequired_role: release-manager\n")
        try a.approval(try a.plan(), by: "bob", signWith: "bob")
        #expect(try a.verdict("bob").reason?.contains("does not hold the role 'release-manager'") == true)
    }

    @Test func unknownMember() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "mallory", signWith: "mallory")
        #expect(try a.verdict("mallory").reason?.contains("'mallory' is not a member") == true)
    }

    @Test func byDiffersFromFileStem() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "bob", stem: "carol", signWith: "bob")
        let v = try a.verdict("carol")
        #expect(!v.valid)
        #expect(v.reason?.contains("differs from the file name 'carol'") == true)
    }

    @Test func wrongCommitAndWrongPlan() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", commit: String(repeating: "0", count: 40), signWith: "bob")
        try a.approval(plan, by: "carol", planID: "prod-v7-0000000000", signWith: "carol")
        let bob = try a.verdict("bob")
        #expect(bob.reason?.contains("not the plan's") == true, "\(bob)")
        #expect(try a.verdict("carol").reason?.contains("it is for plan 'prod-v7-0000000000'") == true)
        #expect(try a.review().outcome == .waiting)
    }

    @Test func signatureByAnotherMembersKey() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "bob", signWith: "carol")
        let v = try a.verdict("bob")
        #expect(!v.valid)
        #expect(v.reason?.contains("signature does not verify") == true)
    }

    @Test func signatureOverADifferentScopeOrSelection() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        var other = plan
        other.scope = .selective
        other.select = ["orders"]
        try a.approval(plan, by: "bob", signWith: "bob", payload: SignedPayload.approval(plan: other, decision: .approve, by: "bob", comment: nil))
        var narrower = plan
        narrower.select = ["x"]
        try a.approval(plan, by: "carol", signWith: "carol", payload: SignedPayload.approval(plan: narrower, decision: .approve, by: "carol", comment: nil))
        #expect(try a.verdict("bob").reason?.contains("signature does not verify") == true)
        #expect(try a.verdict("carol").reason?.contains("signature does not verify") == true)
    }

    @Test func tamperedAfterSigning() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "bob", decision: "reject", signWith: "bob")
        let path = "approvals/\(try a.plan().id)/bob.yaml"
        a.f.desired.write(path, a.f.desired.read(path)!.replacingOccurrences(of: "decision: reject", with: "decision: approve"))
        let v = try a.verdict("bob")
        #expect(!v.valid)
        #expect(v.reason?.contains("signature does not verify") == true)
        #expect(try a.review().outcome == .waiting)
    }

    @Test func missingSignatureWhereRequired() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "bob")
        #expect(try a.verdict("bob").reason?.contains("signature is required") == true)
    }

    @Test func memberWithoutKeysCannotSign() throws {
        let a = ApprovalFixture()
        try a.approval(try a.plan(), by: "dave", signWith: "bob")
        #expect(try a.verdict("dave").reason?.contains("has no keys") == true)
    }

    @Test func twoRequiredOneGiven() throws {
        let a = ApprovalFixture(requiredApprovals: 2)
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob")
        let review = try a.review()
        #expect(review.outcome == .waiting)
        #expect(review.missing == 1)
        #expect(review.waitingSummary == "waiting for 1 approval from carol, signed", "dave has no key, alice lacks the role")
        try a.approval(plan, by: "carol", signWith: "carol")
        #expect(try a.review().outcome == .approved)
    }

    @Test func aRejectAmongApprovals() throws {
        let a = ApprovalFixture(requiredApprovals: 1)
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob")
        try a.approval(plan, by: "carol", decision: "reject", signWith: "carol")
        #expect(try a.review().outcome == .rejected)
        #expect(try a.f.preview("prod").plan?.status == .rejected)
    }

    @Test func anInvalidRejectDoesNotReject() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob")
        try a.approval(plan, by: "mallory", decision: "reject", signWith: "mallory")
        #expect(try a.review().outcome == .approved)
    }

    @Test func approvalForV8NeverApprovesV9() throws {
        let a = ApprovalFixture()
        let v8 = try a.plan()
        a.f.addPlan(v8)
        try a.approval(v8, by: "bob", signWith: "bob")
        a.f.repo.setVersion("9")
        a.f.repo.commit("v9", author: "alice")
        let report = try a.f.preview("prod")
        #expect(report.supersedes == [v8.id])
        #expect(report.plan?.id != v8.id)
        #expect(report.approvals?.verdicts.isEmpty == true, "v8's folder is not read for v9")
        #expect(report.approvals?.outcome == .waiting)
        // Copying v8's file into v9's folder does not help either.
        let v9 = try #require(report.plan)
        a.f.desired.write("approvals/\(v9.id)/bob.yaml", a.f.desired.read("approvals/\(v8.id)/bob.yaml")!)
        #expect(try a.verdict("bob").valid == false)
    }

    /// The comment is signed too: a comment shown under bob's name is bob's words.
    @Test func anEditedCommentBreaksTheSignature() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", comment: "looks good", signWith: "bob")
        #expect(try a.verdict("bob").valid)
        let path = "approvals/\(plan.id)/bob.yaml"
        a.f.desired.write(path, a.f.desired.read(path)!.replacingOccurrences(of: "comment: looks good", with: "comment: ship it, skip the tests"))
        let edited = try a.verdict("bob")
        #expect(!edited.valid)
        #expect(edited.reason?.contains("signature does not verify") == true, "\(edited.reason ?? "")")
        // A comment added to a file signed without one breaks it as well.
        try a.approval(plan, by: "carol", signWith: "carol")
        a.f.desired.write("approvals/\(plan.id)/carol.yaml", a.f.desired.read("approvals/\(plan.id)/carol.yaml")! + "comment: fine\n")
        #expect(try a.verdict("carol").valid == false)
    }

    @Test func aV1SignatureIsReportedAsSuch() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob", payload: SignedPayload.approvalV1(plan: plan, decision: .approve, by: "bob"))
        let v = try a.verdict("bob")
        #expect(!v.valid)
        #expect(v.reason?.contains("old dagctl-approval-v1 payload, which does not cover the comment") == true, "\(v.reason ?? "")")
    }

    @Test func aCommentWithNewlinesIsSignedAsWritten() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", comment: "\"line one\\nline two\"", signWith: "bob",
                       payload: SignedPayload.approval(plan: plan, decision: .approve, by: "bob", comment: "line one\nline two"))
        #expect(try a.verdict("bob").valid)
        #expect(SignedPayload.approval(plan: plan, decision: .approve, by: "bob", comment: "line one\nline two")
            .hasSuffix("by: bob\ncomment: line one\\nline two\n"))
    }

    /// ssh-keygen ends some lines in "\r\n": its reason reaches the output as one clean line.
    @Test func aGarbledSignatureGivesOneLineOfReason() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        a.f.desired.write("approvals/\(plan.id)/bob.yaml",
                          "plan: \(plan.id)\ncommit: \(plan.commit)\ndecision: approve\nby: bob\nsignature: nonsense\n")
        let reason = try #require(try a.verdict("bob").reason)
        #expect(reason.contains("(Couldn't parse signature: missing header; sig_verify: sshsig_armor: incomplete message)"), "\(reason)")
        #expect(!reason.contains { $0.isNewline })
        #expect(reason.hasSuffix(")"))
    }

    @Test func garbageFileIsReportedNotIgnored() throws {
        let a = ApprovalFixture()
        a.f.desired.write("approvals/\(try a.plan().id)/bob.yaml", "plan: [\n")
        let v = try a.verdict("bob")
        #expect(!v.valid)
        #expect(v.reason?.contains("malformed YAML") == true)
    }
}

@Suite("retry requests", .serialized)
struct RetryRuleTests {
    func failedPlan(_ a: ApprovalFixture, attempts: Int) throws -> Plan {
        var plan = try a.plan()
        plan.status = .failed
        plan.attempts = (1...attempts).map { Attempt(n: $0, outcome: .failed, phase: .run) }
        return plan
    }

    func review(_ a: ApprovalFixture, _ plan: Plan, _ text: String) throws -> ApprovalRules.RetryVerdict {
        a.f.desired.write("retries/\(plan.id).yaml", text)
        let desired = DesiredState.load(a.f.desired.path)
        let file = try #require(desired.retry(for: plan.id))
        return ApprovalRules.review(retry: file, plan: plan, env: desired.environment("prod")!, members: desired.members,
                                    verify: SSHSignatures.verify)
    }

    func signed(_ a: ApprovalFixture, _ plan: Plan, retries: Int, by: String, key: String) throws -> String {
        let sig = try a.signature(SignedPayload.retry(plan: plan, retries: retries, by: by), key: key)
        return "plan: \(plan.id)\nretries: \(retries)\nby: \(by)\nsignature: |\n" + sig.split(separator: "\n").map { "  \($0)\n" }.joined()
    }

    @Test func authorMayAskForARetry() throws {
        let a = ApprovalFixture()
        a.f.desired.write("members.yaml", a.f.desired.read("members.yaml")!.replacingOccurrences(of: "roles: [admin]", with: "roles: [admin, deployer]"))
        let plan = try failedPlan(a, attempts: 1)
        #expect(try review(a, plan, signed(a, plan, retries: 1, by: "alice", key: "alice")).valid)
    }

    @Test func retriesFollowTheApprovalRules() throws {
        let a = ApprovalFixture()
        let plan = try failedPlan(a, attempts: 1)
        #expect(try review(a, plan, "plan: \(plan.id)\nretries: 1\nby: bob\n").reason?.contains("signature is required") == true)
        #expect(try review(a, plan, signed(a, plan, retries: 1, by: "alice", key: "alice")).reason?.contains("role") == true)
        #expect(try review(a, plan, signed(a, plan, retries: 1, by: "bob", key: "carol")).reason?.contains("does not verify") == true)
        // A signature over retries: 1 does not stretch to retries: 3.
        let one = try signed(a, plan, retries: 1, by: "bob", key: "bob")
        #expect(try review(a, plan, one.replacingOccurrences(of: "retries: 1", with: "retries: 3")).valid == false)
        #expect(try review(a, plan, one).valid)
    }

    @Test func fourRetriesAreRefused() throws {
        let a = ApprovalFixture()
        let plan = try failedPlan(a, attempts: 4)
        let v = try review(a, plan, "plan: \(plan.id)\nretries: 4\nby: bob\n")
        #expect(!v.valid)
        #expect(v.reason?.contains("out of range; expected 1..3") == true)
    }
}
