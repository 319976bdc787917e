import Foundation
import Testing
import TestSupport

@Suite("dagctl approve and retry (the real binary)", .serialized)
struct ApproveCommandTests {
    /// A workspace whose members have real keys and whose prod requires signed approvals.
    func signedWorkspace() -> (Workspace, TemporaryDirectory) {
        let ws = Workspace()
        let keys = TemporaryDirectory("dagctl-keys")
        var pub: [String: String] = [:]
        for name in ["alice", "bob", "carol"] {
            run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", keys.file(name)])
            pub[name] = keys.read(name + ".pub")!.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        ws.dir.write("desired/members.yaml", """
            members:
              - name: alice
                emails: [alice@example.com]
                roles: [admin]
                keys: ["\(pub["alice"]!)"]
              - name: bob
                emails: [bob@example.com]
                roles: [deployer]
                keys: ["\(pub["bob"]!)"]
              - name: carol
                emails: [carol@example.com]
                roles: [deployer]
                keys: ["\(pub["carol"]!)"]
            """)
        ws.dir.write("desired/environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [alice, bob]\n")
        return (ws, keys)
    }

    func planID(_ ws: Workspace, _ env: String) throws -> String {
        let doc = try #require(parseJSON(ws.dagctl("plan", "--env", env, "--output", "json").stdout))
        let plan = try #require((doc["environments"] as? [[String: Any]])?.first?["plan"] as? [String: Any])
        return try #require(plan["id"] as? String)
    }

    @Test func signedApprovalIsWrittenAndCounts() throws {
        let (ws, keys) = signedWorkspace()
        let id = try planID(ws, "prod")
        let before = ws.dagctl("plan", "--env", "prod")
        #expect(before.stdout.contains("waiting for 1 approval from bob, signed"), "alice authored the bump")

        let out = ws.dagctl("approve", id, "--as", "bob", "--key", keys.file("bob"), "--comment", "looks good: ship it")
        #expect(out.status == 0, "\(out.stderr)")
        let file = try #require(ws.dir.read("desired/approvals/\(id)/bob.yaml"))
        #expect(file.contains("decision: approve\nby: bob\ncomment: \"looks good: ship it\"\nsignature: |\n  -----BEGIN SSH SIGNATURE-----"))
        let after = ws.dagctl("plan", "--env", "prod")
        #expect(after.stdout.contains("\(id)  approved"))
        #expect(after.stdout.contains("✓ bob approve: looks good: ship it"))
        #expect(ws.dagctl("validate").status == 0)
    }

    @Test func refusesWhatTheRulesWouldReject() throws {
        let (ws, keys) = signedWorkspace()
        let id = try planID(ws, "prod")
        let author = ws.dagctl("approve", id, "--as", "alice", "--key", keys.file("alice"))
        #expect(author.status == 1)
        #expect(author.stderr.contains("authored the version bump"))
        let notListed = ws.dagctl("approve", id, "--as", "carol", "--key", keys.file("carol"))
        #expect(notListed.stderr.contains("not on the allowlist"))
        let unsigned = ws.dagctl("approve", id, "--as", "bob")
        #expect(unsigned.stderr.contains("requires a signature; pass --key PATH"))
        let wrongKey = ws.dagctl("approve", id, "--as", "bob", "--key", keys.file("carol"))
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stderr.contains("is not one of bob's keys"))
        let stranger = ws.dagctl("approve", id, "--as", "zed", "--key", keys.file("bob"))
        #expect(stranger.stderr.contains("'zed' is not a member"))
        let badName = ws.dagctl("approve", id, "--as", "../bob")
        #expect(badName.status == 2)
        let badID = ws.dagctl("approve", "../../etc", "--as", "bob")
        #expect(badID.status == 1)
        #expect(badID.stderr.contains("is not a plan id"))
        #expect(!FileManager.default.fileExists(atPath: ws.dir.file("desired/approvals")), "nothing was written")
    }

    @Test func rejectOnUnprotectedNeedsNoKey() throws {
        let (ws, _) = signedWorkspace()
        let id = try planID(ws, "dev")
        let out = ws.dagctl("approve", id, "--as", "alice", "--reject", "--comment", "no")
        #expect(out.status == 0, "\(out.stderr)")
        #expect(ws.dir.read("desired/approvals/\(id)/alice.yaml")?.contains("comment: \"no\"") == true)
        #expect(ws.dagctl("plan", "--env", "dev").stdout.contains("rejected by alice"))
    }

    @Test func approvesAPreviewedPlanAtAnotherCommit() throws {
        let (ws, keys) = signedWorkspace()
        ws.repo.git("checkout", "-q", "-b", "feature")
        ws.repo.setVersion("2")
        let sha = ws.repo.commit("feature bump", author: "carol")
        ws.repo.git("checkout", "-q", "main")
        let id = "prod-v2-\(sha.prefix(10))"
        let out = ws.dagctl("approve", id, "--as", "bob", "--key", keys.file("bob"))
        #expect(out.status == 0, "\(out.stderr)")
        let preview = ws.dagctl("plan", "--env", "prod", "--ref", "feature")
        #expect(preview.stdout.contains("\(id)  approved"))
        let wrongVersion = ws.dagctl("approve", "prod-v3-\(sha.prefix(10))", "--as", "bob", "--key", keys.file("bob"))
        #expect(wrongVersion.stderr.contains("so its plan is '\(id)'"))
    }

    @Test func retryOfAFailedPlan() throws {
        let (ws, keys) = signedWorkspace()
        let head = ws.repo.git("rev-parse", "HEAD")
        let id = "prod-v1-\(head.prefix(10))"
        func writeState(attempts: Int) {
            let list = (1...attempts).map { "{\"n\": \($0), \"outcome\": \"failed\", \"phase\": \"run\", \"summary\": {}}" }.joined(separator: ",")
            ws.dir.write("state/state.json", """
                {"schema_version": 1, "environments": {"prod": {"plans": [{"id": "\(id)", "environment": "prod", "version": "1",
                  "commit": "\(head)", "author": "alice", "changes": [], "scope": "all", "select": [], "warnings": [],
                  "status": "failed", "attempts": [\(list)]}]}}}
                """)
        }
        writeState(attempts: 2)
        let out = ws.dagctl("retry", id, "--as", "alice", "--key", keys.file("alice"))
        #expect(out.status == 0, "the author may ask: \(out.stderr)")
        let file = try #require(ws.dir.read("desired/retries/\(id).yaml"))
        #expect(file.hasPrefix("plan: \(id)\nretries: 2\nby: alice\nsignature: |\n"))

        writeState(attempts: 4)
        let refused = ws.dagctl("retry", id, "--as", "bob", "--key", keys.file("bob"))
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("at most 3 retries"))

        let pending = ws.dagctl("retry", try planID(ws, "dev"), "--as", "bob")
        #expect(pending.stderr.contains("only a failed plan can be retried"))
    }
}
