import DagctlPlanning
import DagctlSpec
import DagctlState
import Testing
@testable import DagctlEngine

/// Which notifications a state write causes: the diff of an environment's plans before and after it.
@Suite("Plan events")
struct PlanEventsTests {
    let members = Members([Member(name: "alice", roles: ["deployer"]), Member(name: "bob", roles: ["deployer"])])
    let notifications = NotificationsSpec(dashboardURL: "https://d.example.com", webhooks: [
        Webhook(name: "all", url: .literal("http://x.test/")),
        Webhook(name: "prod-failures", url: .literal("http://x.test/"), events: [.planFailed], environments: ["prod"]),
    ])

    func events(_ env: EnvironmentSpec, _ old: [Plan]?, _ new: [Plan]) -> [String] {
        PlanEvents(notifications: notifications, env: env, members: members, review: nil)
            .events(from: old.map { EnvironmentState(plans: $0) }, to: EnvironmentState(plans: new), at: "2026-11-29T08:00:00Z")
            .map { "\($0.event.rawValue) \($0.plan)" + ($0.attempt.map { " #\($0)" } ?? "") }
    }

    func plan(_ version: Int, _ status: PlanStatus, env: String = "dev", attempts: [Attempt.Outcome] = []) -> Plan {
        let commit = String(repeating: "\(version % 10)", count: 40)
        var p = Plan(id: "\(env)-v\(version)-\(commit.prefix(10))", environment: env, version: "\(version)", commit: commit, base: nil,
                     author: "alice", changes: [], scope: .all, select: [], warnings: [], status: status)
        p.attempts = attempts.enumerated().map { Attempt(n: $0.offset + 1, outcome: $0.element, phase: .run) }
        return p
    }

    @Test func aNewPlanWaitsOnlyWhereApprovalsAreNeeded() {
        let needs = EnvironmentSpec(name: "dev", ref: "main", requiredApprovals: 1)
        let free = EnvironmentSpec(name: "dev", ref: "main", requiredApprovals: 0)
        #expect(events(needs, [], [plan(1, .pending)]) == ["plan_pending dev-v1-1111111111"])
        #expect(events(free, [], [plan(1, .approved)]) == ["plan_approved dev-v1-1111111111"])
        #expect(events(free, [], [plan(1, .pending)]) == [], "never announced as waiting when nothing is needed")
    }

    @Test func oneWriteWithSeveralChangesKeepsTheirOrder() {
        let env = EnvironmentSpec(name: "dev", ref: "main", requiredApprovals: 0)
        // A run that recovered nothing, approved, started and finished in one write (a --no-wait
        // observation can do that): decision, attempt, outcome.
        #expect(events(env, [plan(1, .pending)], [plan(1, .succeeded, attempts: [.succeeded])])
                == ["plan_approved dev-v1-1111111111", "attempt_started dev-v1-1111111111 #1", "plan_succeeded dev-v1-1111111111 #1"])
        // A newer plan supersedes an older one: the old one's event first.
        #expect(events(env, [plan(1, .pending)], [plan(1, .superseded), plan(2, .approved)])
                == ["plan_superseded dev-v1-1111111111", "plan_approved dev-v2-2222222222"])
    }

    @Test func aRetryIsApprovedAgainAndStartsItsNextAttempt() {
        let env = EnvironmentSpec(name: "dev", ref: "main")
        let failed = plan(1, .failed, attempts: [.failed])
        #expect(events(env, [failed], [plan(1, .approved, attempts: [.failed])]) == ["plan_approved dev-v1-1111111111"])
        #expect(events(env, [plan(1, .approved, attempts: [.failed])], [plan(1, .building, attempts: [.failed, .running])])
                == ["attempt_started dev-v1-1111111111 #2"])
        #expect(events(env, [plan(1, .running, attempts: [.failed, .running])], [plan(1, .failed, attempts: [.failed, .failed])])
                == ["plan_failed dev-v1-1111111111 #2"])
    }

    @Test func nothingChangedNothingToSay() {
        let env = EnvironmentSpec(name: "dev", ref: "main")
        let plans = [plan(1, .succeeded, attempts: [.succeeded]), plan(2, .pending)]
        #expect(events(env, plans, plans) == [])
        // building → running is a phase, not an event.
        #expect(events(env, [plan(1, .building, attempts: [.running])], [plan(1, .running, attempts: [.running])]) == [])
    }

    @Test func eventsGoOnlyToTheWebhooksThatWantThem() {
        let prod = EnvironmentSpec(name: "prod", ref: "main", protected: true, allowlist: ["bob"], requireSignature: false)
        let entries = PlanEvents(notifications: notifications, env: prod, members: members, review: nil)
            .entries(from: EnvironmentState(plans: [plan(1, .running, env: "prod", attempts: [.running])]),
                     to: EnvironmentState(plans: [plan(1, .failed, env: "prod", attempts: [.failed])]), at: "2026-11-29T08:00:00Z")
        #expect(entries.map { $0.deliveries.map(\.webhook) } == [["all", "prod-failures"]])
        let event = entries[0].event
        #expect(event.url == "https://d.example.com/plans/prod-v1-1111111111")
        #expect(event.failedNodes == [])
        #expect(event.retryCommand?.hasPrefix("dagctl retry prod-v1-1111111111 --as ") == true)
        let dev = EnvironmentSpec(name: "dev", ref: "main")
        let devEntries = PlanEvents(notifications: notifications, env: dev, members: members, review: nil)
            .entries(from: nil, to: EnvironmentState(plans: [plan(1, .pending)]), at: "2026-11-29T08:00:00Z")
        #expect(devEntries.map { $0.deliveries.map(\.webhook) } == [["all"]])
        let pending = devEntries[0].event
        #expect(pending.approversNeeded == 1)
        #expect(pending.mayApprove == ["alice", "bob"])
        #expect(pending.approveCommand == "dagctl approve dev-v1-1111111111 --as alice")
        let none = NotificationsSpec(webhooks: [Webhook(name: "prod-only", url: .literal("http://x.test/"), environments: ["prod"])])
        #expect(PlanEvents(notifications: none, env: dev, members: members, review: nil)
            .entries(from: nil, to: EnvironmentState(plans: [plan(1, .pending)]), at: "2026-11-29T08:00:00Z").isEmpty,
                "an event no webhook wants is not recorded")
    }
}
