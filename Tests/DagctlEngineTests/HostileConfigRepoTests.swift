import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation
import Testing
import TestSupport

/// What a committer to the config repository can put beside a real approval, and what it must not
/// achieve: approvals count once per member, only from `<member>.yaml`; files that are not regular
/// files, or too large, are reported and never read as decisions.
@Suite("hostile desired-state files", .serialized)
struct HostileConfigRepoTests {
    /// One valid, signed approval by bob, then `extra` files written into the plan's folder.
    func twoRequired(extra: (ApprovalFixture, Plan) throws -> Void) throws -> ApprovalReview {
        let a = ApprovalFixture(requiredApprovals: 2)
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob")
        try extra(a, plan)
        return try #require(try a.f.preview("prod").approvals)
    }

    /// Copies of one member's approval under other names never make a second approval.
    @Test(arguments: ["bob.yml", "bob.copy.yaml", "bob.yaml.yaml", "Bob.yaml", "bob .yaml", ".bob.yaml", "bob.YAML"])
    func aCopyOfOnesApprovalNeverCountsTwice(copy: String) throws {
        let review = try twoRequired { a, plan in
            a.f.desired.write("approvals/\(plan.id)/\(copy)", a.f.desired.read("approvals/\(plan.id)/bob.yaml")!)
        }
        #expect(review.outcome == .waiting)
        #expect(review.validApprovals == 1)
        let copied = try #require(review.verdicts.first { $0.file.hasSuffix("/" + copy) })
        #expect(!copied.valid)
        #expect(copied.reason?.contains("only files named <member>.yaml count") == true, "\(copied.reason ?? "")")
    }

    /// Property: whatever set of names a committer picks for files holding bob's approval, the count
    /// of valid approvals is the number of distinct members with a valid file — here, one.
    @Test func anyNumberOfCopiesCountsOnce() throws {
        var generator = SystemRandomNumberGenerator()
        let names = ["bob.yml", "bob.copy.yaml", "bob2.yaml", "carol.yaml", "x.yaml", "bob-.yaml", "b.yaml", "bob.yaml~"]
        for _ in 0..<5 {
            let picked = names.filter { _ in Bool.random(using: &generator) }
            let review = try twoRequired { a, plan in
                let text = a.f.desired.read("approvals/\(plan.id)/bob.yaml")!
                for name in picked { a.f.desired.write("approvals/\(plan.id)/\(name)", text) }
            }
            #expect(review.validApprovals == 1, "copies as \(picked)")
            #expect(review.outcome == .waiting)
            #expect(review.verdicts.count == picked.count + 1, "every file is reported")
        }
    }

    @Test func aLinkedApprovalIsNotRead() throws {
        let review = try twoRequired { a, plan in
            let dir = a.f.desired.file("approvals/\(plan.id)")
            #expect(symlink("bob.yaml", dir + "/carol.yaml") == 0)
        }
        #expect(review.outcome == .waiting)
        let linked = try #require(review.verdicts.first { $0.file.hasSuffix("/carol.yaml") })
        #expect(!linked.valid)
        #expect(linked.reason?.contains("symbolic link") == true)
    }

    @Test func aFIFOIsReportedWithoutBlocking() throws {
        let review = try twoRequired { a, plan in
            #expect(mkfifo(a.f.desired.file("approvals/\(plan.id)/carol.yaml"), 0o644) == 0)
        }
        let fifo = try #require(review.verdicts.first { $0.file.hasSuffix("/carol.yaml") })
        #expect(fifo.reason?.contains("not a regular file") == true)
    }

    @Test func anOversizedApprovalIsRefusedUnread() throws {
        let review = try twoRequired { a, plan in
            a.f.desired.write("approvals/\(plan.id)/carol.yaml", "comment: " + String(repeating: "x", count: 2 << 20) + "\n")
        }
        let big = try #require(review.verdicts.first { $0.file.hasSuffix("/carol.yaml") })
        #expect(big.reason?.contains("at most \(DesiredState.maximumFileSize) bytes") == true)
    }

    @Test func anApprovalsEntryThatIsAFileIsReported() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        a.f.desired.write("approvals/\(plan.id)", "plan: \(plan.id)\n")
        let review = try #require(try a.f.preview("prod").approvals)
        #expect(review.outcome == .waiting)
        #expect(review.verdicts.count == 1)
        #expect(review.verdicts.first?.reason?.contains("is not a folder") == true)
        let issues = DesiredState.load(a.f.desired.path).decisionFileIssues().map(\.description)
        #expect(issues.contains { $0.contains("approvals/\(plan.id): is not a folder") }, "\(issues)")
    }

    @Test func validateFlagsStrayDecisionFiles() throws {
        let a = ApprovalFixture()
        let plan = try a.plan()
        try a.approval(plan, by: "bob", signWith: "bob")
        a.f.desired.write("approvals/\(plan.id)/bob.yml", a.f.desired.read("approvals/\(plan.id)/bob.yaml")!)
        a.f.desired.write("retries/\(plan.id).yml", "plan: \(plan.id)\nretries: 1\nby: bob\n")
        #expect(mkfifo(a.f.desired.file("retries/\(plan.id).yaml"), 0o644) == 0)
        let issues = DesiredState.load(a.f.desired.path).decisionFileIssues().map(\.description)
        #expect(issues.contains { $0.contains("bob.yml") && $0.contains("only files named <member>.yaml") }, "\(issues)")
        #expect(issues.contains { $0.contains("\(plan.id).yml") && $0.contains("never read") }, "\(issues)")
        #expect(issues.contains { $0.contains("\(plan.id).yaml") && $0.contains("not a regular file") }, "\(issues)")
    }
}

/// What a committer to the dbt repository can put in it, and what it must not achieve.
@Suite("hostile repository content", .serialized)
struct HostileRepositoryTests {
    @Test func aLinkedConfigIsAnErrorThatSaysSo() throws {
        let f = PlanningFixture()
        f.initialCommit()
        f.repo.write("elsewhere.yaml", "version: 99\n")
        f.repo.git("rm", "-q", ".dagctl/config.yaml")
        try FileManager.default.createDirectory(atPath: f.repo.dir.file(".dagctl"), withIntermediateDirectories: true)
        #expect(symlink("../elsewhere.yaml", f.repo.dir.file(".dagctl/config.yaml")) == 0)
        f.repo.commit("link the config")
        let report = try f.preview()
        #expect(report.errors.contains { $0.contains(".dagctl/config.yaml' is a symbolic link") }, "\(report.errors)")
    }

    @Test func refsAreBranchesRemoteTrackingBranchesOrTagsOnly() throws {
        let f = PlanningFixture()
        let first = f.initialCommit()
        f.repo.write("README.md", "two\n")
        let second = f.repo.commit("second")
        f.repo.git("tag", "v1", first)
        f.repo.git("update-ref", "refs/remotes/origin/main", first)
        let repo = try GitRepository.open(f.repo.path)
        #expect(try repo.resolveRef("main").hex == second)
        #expect(try repo.resolveRef("refs/heads/main").hex == second)
        #expect(try repo.resolveRef("v1").hex == first)
        #expect(try repo.resolveRef("origin/main").hex == first)
        for expression in ["main~1", "main^", "main@{1}", "HEAD", ":/second", first, String(first.prefix(10)), "main..v1", "refs/notes/x"] {
            #expect(throws: GitError.self, "\(expression)") { try repo.resolveRef(expression) }
        }
        // A name that is a branch and a tag at different commits is ambiguous, not a silent pick.
        f.repo.git("tag", "main", first)
        let ambiguous = #expect(throws: GitError.self) { try repo.resolveRef("main") }
        #expect(ambiguous?.description.contains("ambiguous") == true)
        #expect(try repo.resolveRef("refs/heads/main").hex == second)
        // An environment whose ref is an expression gets an error, not a plan.
        f.desired.write("environments/dev.yaml", "ref: v1~0\n")
        #expect(try f.preview().errors.contains { $0.contains("not a branch, remote-tracking branch or tag") })
    }
}
