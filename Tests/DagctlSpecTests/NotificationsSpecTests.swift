import Foundation
import Testing
@testable import DagctlSpec

@Suite("notifications.yaml")
struct NotificationsSpecTests {
    func parse(_ text: String, environments: Set<String>? = ["dev", "prod"]) throws(SpecIssues) -> NotificationsSpec {
        try NotificationsSpec.parse(text, file: "notifications.yaml", environments: environments)
    }

    func problems(_ text: String) -> [String] {
        do { _ = try parse(text); return [] } catch { return error.issues.map(\.description) }
    }

    @Test func readsEveryKeyAndDefaults() throws {
        let spec = try parse("""
            dashboard_url: https://dagctl.example.com
            webhooks:
              - name: analytics-slack
                url_env: SLACK_WEBHOOK_URL
                format: slack
                events: [plan_pending, plan_failed]
                environments: [prod]
                secret_env: DAGCTL_WEBHOOK_SECRET
              - name: audit
                url: https://audit.example.com/dagctl
            """)
        #expect(spec.dashboardURL == "https://dagctl.example.com")
        #expect(spec.planURL("prod-v8-1a2b3c4d5e") == "https://dagctl.example.com/plans/prod-v8-1a2b3c4d5e")
        let slack = try #require(spec["analytics-slack"])
        #expect(slack.url == .environment("SLACK_WEBHOOK_URL"))
        #expect(slack.format == .slack)
        #expect(slack.events == [.planPending, .planFailed])
        #expect(slack.environments == ["prod"])
        #expect(slack.secretEnv == "DAGCTL_WEBHOOK_SECRET")
        let audit = try #require(spec["audit"])
        #expect(audit.format == .json, "json is the default format")
        #expect(audit.events == Webhook.allEvents && !audit.events.contains(.test), "all events by default")
        #expect(audit.environments == nil)
        #expect(spec.receivers(of: .planPending, environment: "prod").map(\.name) == ["analytics-slack", "audit"])
        #expect(spec.receivers(of: .planPending, environment: "dev").map(\.name) == ["audit"])
        #expect(spec.receivers(of: .planSucceeded, environment: "prod").map(\.name) == ["audit"])
    }

    @Test func eachMistakeIsReportedAtItsLine() {
        let found = problems("""
            dashboard_url: dagctl.example.com
            webhooks:
              - name: Slack
                url: ftp://example.com
                format: teams
                events: [plan_pending, plan_exploded, test]
                environments: [prod, staging]
                secret_env: 1SECRET
                retry: 3
              - name: both
                url: https://a.example.com
                url_env: HOOK
              - name: none
              - name: both
                url_env: "bad-name"
                events: []
            """)
        let expected = [
            "notifications.yaml:1: 'dashboard_url': 'dagctl.example.com' is not a plain http(s) URL",
            "notifications.yaml:3: 'webhooks[0].name': 'Slack' is not a valid webhook name",
            "notifications.yaml:4: 'webhooks[0].url': 'ftp://example.com' is not an http(s) URL",
            "notifications.yaml:5: 'webhooks[0].format': 'teams' is not a format",
            "notifications.yaml:6: 'webhooks[0].events': 'plan_exploded' is not an event",
            "notifications.yaml:6: 'webhooks[0].events': 'test' is not recorded",
            "notifications.yaml:7: 'webhooks[0].environments': there is no environment 'staging' (environments/staging.yaml); known: dev, prod",
            "notifications.yaml:8: 'webhooks[0].secret_env': '1SECRET' is not an environment variable name",
            "notifications.yaml:9: 'webhooks[0].retry': unknown key",
            "notifications.yaml:12: 'webhooks[1].url_env': give either 'url' or 'url_env', not both",
            "notifications.yaml:13: 'webhooks[2].name': webhook 'none' has no URL",
            "notifications.yaml:14: 'webhooks[3].name': webhook 'both' is listed twice (first at line 10)",
            "notifications.yaml:15: 'webhooks[3].url_env': 'bad-name' is not an environment variable name",
            "notifications.yaml:16: 'webhooks[3].events': lists no event",
        ]
        for line in expected { #expect(found.contains { $0.hasPrefix(line) }, "missing: \(line)\nfound:\n\(found.joined(separator: "\n"))") }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }

    /// A URL is sent as written or refused: no user name or password (never sent), no spaces or line
    /// breaks, and a dashboard address that cannot break a Slack link.
    @Test func urlsArePlain() {
        #expect(problems("webhooks:\n  - name: a\n    url: https://user:pw@hooks.example.com/x\n").first?.contains("without spaces, user name or password") == true)
        #expect(problems("webhooks:\n  - name: a\n    url: \"https://hooks.example.com/a\\r\\nX-Injected: 1\"\n").first?.contains("is not an http(s) URL") == true)
        #expect(problems("dashboard_url: \"https://d.example.com/a>b|<!channel>\"\nwebhooks: []\n").first?.contains("is not a plain http(s) URL") == true)
        #expect(problems("webhooks:\n  - name: a\n    url: http://[::1]:8080/hook\n") == [], "IPv6 is fine")
        let hook = Webhook(name: "a", url: .environment("HOOK"))
        guard case .failure(let error) = hook.resolveURL(["HOOK": "https://u:secretpw@hooks.example.com/x"]) else { Issue.record("refused"); return }
        #expect(!error.description.contains("secretpw"))
    }

    @Test func needsAListOfWebhooks() {
        #expect(problems("dashboard_url: https://x.example.com\n").first?.contains("'webhooks'") == true)
        #expect(problems("webhooks: {name: a}\n").first?.contains("expected a list") == true)
    }

    /// A URL from a variable is a secret: the errors name the variable, never its value.
    @Test func resolvesTheURLAndSecretFromTheEnvironment() {
        let hook = Webhook(name: "a", url: .environment("HOOK"), secretEnv: "KEY")
        #expect(hook.resolveURL(["HOOK": "https://hooks.slack.com/services/T0/B0/XYZ"]) == .success(URL(string: "https://hooks.slack.com/services/T0/B0/XYZ")!))
        guard case .failure(let missing) = hook.resolveURL([:]) else { Issue.record("a missing variable is an error"); return }
        #expect(missing.description.hasPrefix("HOOK (url_env) is not set"))
        guard case .failure(let bad) = hook.resolveURL(["HOOK": "not a url/secret-token"]) else { Issue.record("a bad URL is an error"); return }
        #expect(!bad.description.contains("secret-token"))
        #expect(hook.resolveSecret(["KEY": "k"]) == .success("k"))
        guard case .failure(let noKey) = hook.resolveSecret([:]) else { Issue.record("a missing secret is an error"); return }
        #expect(noKey.description.hasPrefix("KEY (secret_env) is not set"))
    }
}
