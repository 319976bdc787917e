import Foundation
import Testing
import TestSupport

/// The example dbt project deploying to a protected, signed `prod` only: bob and carol approve,
/// every member has a real ssh key.
final class ProdWorkspace: @unchecked Sendable {
    let ws = DeployWorkspace()
    let keys = TemporaryDirectory("dagctl-keys")

    init() {
        var pub: [String: String] = [:]
        for name in ["alice", "bob", "carol", "mallory"] {
            run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", keys.file(name)])
            pub[name] = keys.read(name + ".pub")!.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        ws.dir.write("desired/members.yaml", """
            members:
              - {name: alice, emails: [alice@example.com], roles: [admin, deployer], keys: ["\(pub["alice"]!)"]}
              - {name: bob, emails: [bob@example.com], roles: [deployer], keys: ["\(pub["bob"]!)"]}
              - {name: carol, emails: [carol@example.com], roles: [deployer], keys: ["\(pub["carol"]!)"]}
            """)
        try? FileManager.default.removeItem(atPath: ws.dir.file("desired/environments/dev.yaml"))
        ws.dir.write("desired/environments/prod.yaml", """
            ref: main
            protected: true
            allowlist: [bob, carol]
            required_role: deployer
            required_approvals: 1
            require_signature: true
            target: prod
            """)
    }

    func dagctl(_ args: String...) -> ProcessOutput {
        TestSupport.dagctl(Array(args), in: ws.dir.path, environment: ws.environment)
    }

    func prod() throws -> [String: Any] {
        try #require((try ws.state()["environments"] as? [String: Any])?["prod"] as? [String: Any])
    }

    func newest() throws -> [String: Any] { try #require((try prod()["plans"] as? [[String: Any]])?.last) }
    func newestID() throws -> String { try #require(try newest()["id"] as? String) }
    func deployed() throws -> [String: Any]? { try prod()["deployed"] as? [String: Any] }

    /// Approves the newest plan as `member` with their key, then reconciles; returns the run.
    @discardableResult
    func approveAndReconcile(_ member: String) throws -> ProcessOutput {
        let id = try newestID()
        let approve = dagctl("approve", id, "--as", member, "--key", keys.file(member))
        #expect(approve.status == 0, "\(approve.stdout)\n\(approve.stderr)")
        return dagctl("reconcile")
    }

    var rollbackFile: String { ws.dir.file("desired/rollbacks/prod.yaml") }
}

@Suite("Operations: rollback", .serialized)
struct RollbackTests {
    /// v1 and v2 deployed; a rollback to v1 is explained v2→v1, needs prod's approval, deploys, and pins
    /// prod: the ref's v2 and a v3 bump are explained but not deployed; deleting the file unpins and v3
    /// deploys. Real dbt on DuckDB, real ssh signatures.
    @Test func rollbackDeploysThePinnedCommitAndHoldsNewVersions() throws {
        let p = ProdWorkspace()
        let ws = p.ws
        #expect(p.dagctl("reconcile").status == 0)
        let v1 = try p.newestID()
        let v1Commit = try #require(try p.newest()["commit"] as? String)
        var run = try p.approveAndReconcile("bob")  // alice authored v1
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(try p.deployed()?["plan"] as? String == v1)

        ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        #expect(p.dagctl("reconcile").status == 0)
        let v2 = try p.newestID()
        let v2Commit = try #require(try p.newest()["commit"] as? String)
        run = try p.approveAndReconcile("carol")  // bob authored v2
        #expect(try p.deployed()?["plan"] as? String == v2, "\(run.stdout)\n\(run.stderr)")

        // The command refuses what reconcile would: a plan that never deployed, a non-member, a key not theirs.
        let unknown = p.dagctl("rollback", "prod", "--to", "prod-v9-0123456789", "--as", "bob", "--key", p.keys.file("bob"))
        #expect(unknown.status == 1 && unknown.stderr.contains("is not a plan of 'prod'") && unknown.stderr.contains(v1), "\(unknown.stderr)")
        let stranger = p.dagctl("rollback", "prod", "--to", v1, "--as", "mallory", "--key", p.keys.file("mallory"))
        #expect(stranger.status == 1 && stranger.stderr.contains("'mallory' is not a member"), "\(stranger.stderr)")
        let wrongKey = p.dagctl("rollback", "prod", "--to", v1, "--as", "bob", "--key", p.keys.file("carol"))
        #expect(wrongKey.status == 1 && wrongKey.stderr.contains("is not one of bob's keys"), "\(wrongKey.stderr)")
        let unsignedCLI = p.dagctl("rollback", "prod", "--to", v1, "--as", "bob")
        #expect(unsignedCLI.status == 1 && unsignedCLI.stderr.contains("requires a signature"), "\(unsignedCLI.stderr)")
        #expect(!FileManager.default.fileExists(atPath: p.rollbackFile), "nothing written by a refused command")

        let written = p.dagctl("rollback", "prod", "--to", v1, "--as", "bob", "--key", p.keys.file("bob"))
        #expect(written.status == 0, "\(written.stderr)")
        #expect(written.stdout.contains("prod-rollback-\(v1Commit.prefix(10))"), "\(written.stdout)")
        let file = try #require(ws.dir.read("desired/rollbacks/prod.yaml"))
        #expect(file.hasPrefix("env: prod\nto: \(v1)\nby: bob\nsignature: |\n  -----BEGIN SSH SIGNATURE-----"), "\(file)")
        #expect(p.dagctl("validate").status == 0)

        // Approved only once recorded: an approval written ahead would outlive a request withdrawn unseen.
        let early = p.dagctl("approve", "prod-rollback-\(v1Commit.prefix(10))", "--as", "carol", "--key", p.keys.file("carol"))
        #expect(early.status == 1 && early.stderr.contains("a rollback plan is approved once reconcile has recorded it"), "\(early.stderr)")

        // The rollback plan: v2 → v1, bob asked (so he may not approve it), prod's approval rules apply.
        let preview = p.dagctl("plan")
        #expect(preview.stdout.contains("pinned     by rollbacks/prod.yaml at \(v1) (asked by bob)"), "\(preview.stdout)")
        run = p.dagctl("reconcile")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let rollback = try p.newest()
        let rollbackID = try #require(rollback["id"] as? String)
        #expect(rollbackID == "prod-rollback-\(v1Commit.prefix(10))")
        #expect(rollback["status"] as? String == "pending")
        #expect(rollback["version"] as? String == "1")
        #expect(rollback["commit"] as? String == v1Commit)
        #expect(rollback["base"] as? String == v2Commit)
        #expect(rollback["author"] as? String == "bob")
        #expect((rollback["rollback"] as? [String: Any])?["to"] as? String == v1)
        let changes = try #require(rollback["changes"] as? [[String: Any]])
        #expect(changes.contains { $0["path"] as? String == "models/marts/customers.sql" && $0["change"] as? String == "modified" }, "\(changes)")
        #expect(rollback["scope"] as? String == "selective" && rollback["select"] as? [String] == ["customers"], "\(rollback)")
        #expect(run.stdout.contains("waiting for 1 approval from carol, signed"), "\(run.stdout)")
        let selfApproval = p.dagctl("approve", rollbackID, "--as", "bob", "--key", p.keys.file("bob"))
        #expect(selfApproval.status == 1 && selfApproval.stderr.contains("authored"), "\(selfApproval.stderr)")

        run = try p.approveAndReconcile("carol")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(try p.deployed()?["plan"] as? String == rollbackID)
        #expect(try p.deployed()?["commit"] as? String == v1Commit)
        #expect(try p.deployed()?["version"] as? String == "1")
        #expect(try ws.ranNodes(rollbackID).filter { $0.hasPrefix("model.") } == ["model.shop.customers"])

        // Pinned: the ref's version 2 is new again after the rollback; the next run explains it under a
        // fresh id (the old approvals of v2 never count for it) and does not deploy it.
        run = p.dagctl("reconcile")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let v2Again = try p.newestID()
        #expect(v2Again == v2 + "-2", "\(run.stdout)")
        #expect(try p.newest()["status"] as? String == "pending")

        // A v3 bump while pinned: explained, approved, and still not deployed.
        ws.bump(3) { $0.write("models/marts/orders_daily.sql", $0.dir.read("models/marts/orders_daily.sql")! + "-- v3\n") }
        run = p.dagctl("reconcile")
        #expect(run.stdout.contains("superseded \(v2Again)"), "\(run.stdout)")
        let v3 = try p.newestID()
        #expect(v3.hasPrefix("prod-v3-"))
        run = try p.approveAndReconcile("carol")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("pinned by rollbacks/prod.yaml: \(v3) is approved and waits"), "\(run.stdout)")
        #expect(try p.newest()["status"] as? String == "approved")
        #expect(try p.deployed()?["plan"] as? String == rollbackID)
        let json = try #require(parseJSON(p.dagctl("plan", "--output", "json").stdout))
        let pinned = try #require((json["environments"] as? [[String: Any]])?.first?["pinned"] as? [String: Any])
        #expect(pinned["to"] as? String == v1 && pinned["by"] as? String == "bob" && pinned["valid"] as? Bool == true)
        #expect(pinned["unpin"] as? String == "delete rollbacks/prod.yaml")
        let markdown = p.dagctl("plan", "--output", "markdown").stdout
        #expect(markdown.contains("| pinned | by `rollbacks/prod.yaml` at `\(v1)` (asked by bob)"), "\(markdown)")
        let status = p.dagctl("status")
        #expect(status.stdout.contains("pinned     by rollbacks/prod.yaml at \(v1) (asked by bob)"), "\(status.stdout)")
        #expect(p.dagctl("report", "--html", ws.dir.file("report")).status == 0)
        let page = try #require(ws.dir.read("report/index.html"))
        #expect(page.contains("pinned by rollbacks/prod.yaml at \(v1) (by bob)"), "the dashboard says so too")

        // Unpinned: v3 deploys (v1 → v3: orders_daily and customers).
        try FileManager.default.removeItem(atPath: p.rollbackFile)
        run = p.dagctl("reconcile")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(try p.deployed()?["plan"] as? String == v3, "\(run.stdout)")
        #expect(stateSchemaProblems(ws.statePath) == "", "state/schema.json describes rollback plans")
    }

    /// On a protected environment a rollback file counts only signed by a member who may ask: unsigned,
    /// forged, or a signature moved from another target are refused, and prod is held (nothing new
    /// deploys) while the file is there, with the reason; no rollback plan is made.
    @Test func forgedOrUnsignedRollbackFilesAreRefused() throws {
        let p = ProdWorkspace()
        let ws = p.ws
        #expect(p.dagctl("reconcile").status == 0)
        let v1 = try p.newestID()
        try p.approveAndReconcile("bob")
        ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        #expect(p.dagctl("reconcile").status == 0)
        let v2 = try p.newestID()
        // v2 approved but not yet run when the bad files arrive: it must not start either.
        #expect(p.dagctl("approve", v2, "--as", "carol", "--key", p.keys.file("carol")).status == 0)

        // A signature by carol's key under bob's name; then bob's real signature over another target.
        let forged = try signed(p, env: "prod", to: v1, commit: try commit(of: v1, p), by: "bob", key: "carol")
        let moved = try signed(p, env: "prod", to: v2, commit: try commit(of: v2, p), by: "bob", key: "bob")
        let cases: [(String, String)] = [
            ("env: prod\nto: \(v1)\nby: bob\n", "a signature is required"),
            ("env: prod\nto: \(v1)\nby: bob\nsignature: |\n" + forged, "signature does not verify"),
            ("env: prod\nto: \(v1)\nby: bob\nsignature: |\n" + moved, "signature does not verify"),
            ("env: prod\nto: \(v1)\nby: alice\nsignature: |\n" + forged, "not on the allowlist"),
            ("env: prod\nto: \(v2)\nby: bob\n", "never succeeded"),
            ("env: dev\nto: \(v1)\nby: bob\n", "differs from the file name"),
            ("env: prod\nto: \(v1)\nby: bob\nextra: 1\n", "unknown key"),
        ]
        for (text, reason) in cases {
            ws.dir.write("desired/rollbacks/prod.yaml", text)
            let run = p.dagctl("reconcile")
            #expect(run.status == 1, "an invalid rollback file is an error: \(run.stdout)")
            #expect(run.stdout.contains("held by rollbacks/prod.yaml, which is invalid") && run.stdout.contains(reason), "\(reason): \(run.stdout)")
            #expect(run.stdout.contains("held by the invalid rollbacks/prod.yaml: \(v2) is approved and waits"), "\(run.stdout)")
            #expect(try p.newestID() == v2, "no rollback plan from a refused file")
            #expect(try p.deployed()?["plan"] as? String == v1)
            let validate = p.dagctl("validate")
            #expect(validate.status == 1 && validate.stdout.contains("rollbacks/prod.yaml"), "\(validate.stdout)")
        }
        // A file that looks meant for prod but is misnamed holds prod too: it is not read as "no rollback".
        #expect(p.dagctl("rollback", "prod", "--to", v1, "--as", "bob", "--key", p.keys.file("bob"), "--force").status == 0)
        try FileManager.default.moveItem(atPath: p.rollbackFile, toPath: ws.dir.file("desired/rollbacks/prod.yml"))
        let misnamed = p.dagctl("reconcile")
        #expect(misnamed.status == 1 && misnamed.stdout.contains("held by rollbacks/prod.yml, which is invalid") && misnamed.stdout.contains("is not rollbacks/prod.yaml"),
                "\(misnamed.stdout)")
        #expect(try p.deployed()?["plan"] as? String == v1)
        try FileManager.default.removeItem(atPath: ws.dir.file("desired/rollbacks/prod.yml"))

        // A link is never followed, even to a valid file.
        #expect(p.dagctl("rollback", "prod", "--to", v1, "--as", "bob", "--key", p.keys.file("bob"), "--force").status == 0)
        let real = try #require(ws.dir.read("desired/rollbacks/prod.yaml"))
        ws.dir.write("elsewhere.yaml", real)
        try FileManager.default.removeItem(atPath: p.rollbackFile)
        try FileManager.default.createSymbolicLink(atPath: p.rollbackFile, withDestinationPath: ws.dir.file("elsewhere.yaml"))
        let linked = p.dagctl("reconcile")
        #expect(linked.status == 1 && linked.stdout.contains("symbolic link"), "\(linked.stdout)")

        // Deleted: prod is free again and the approved v2 deploys.
        try FileManager.default.removeItem(atPath: p.rollbackFile)
        let freed = p.dagctl("reconcile")
        #expect(freed.status == 0, "\(freed.stdout)\n\(freed.stderr)")
        #expect(try p.deployed()?["plan"] as? String == v2)
    }

    /// A rollback that failed in its run phase may have changed part of the warehouse. Once its file is
    /// deleted it is never retried, and the ref's version is planned again as a full build (dev: no
    /// approval needed), so the record and the warehouse agree again.
    @Test func aRollbackThatFailedPartWayIsFollowedByAFullBuild() throws {
        let ws = DeployWorkspace()
        #expect(ws.dagctl("reconcile").status == 0)
        let v1 = try #require(try ws.devPlans().last?["id"] as? String)
        ws.bump(2) { $0.write("models/marts/customers.sql", $0.dir.read("models/marts/customers.sql")! + "-- v2\n") }
        #expect(ws.dagctl("reconcile").status == 0)
        let v2 = try #require(try ws.devPlans().last?["id"] as? String)

        #expect(ws.dagctl("rollback", "dev", "--to", v1, "--as", "alice").status == 0)
        let profiles = try #require(ws.dir.read("desired/profiles/profiles.yml"))
        ws.dir.write("desired/profiles/profiles.yml", profiles.replacingOccurrences(of: "/dev.duckdb", with: "/missing/folder/dev.duckdb"))
        var run = ws.dagctl("reconcile")
        #expect(run.status == 1)
        let rollback = try #require(try ws.devPlans().last)
        let rollbackID = try #require(rollback["id"] as? String)
        #expect(rollback["status"] as? String == "failed" && (rollback["attempts"] as? [[String: Any]])?.last?["phase"] as? String == "run", "\(run.stdout)")

        ws.dir.write("desired/profiles/profiles.yml", profiles)
        try FileManager.default.removeItem(atPath: ws.dir.file("desired/rollbacks/dev.yaml"))
        run = ws.dagctl("reconcile")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("superseded \(rollbackID): withdrawn: rollbacks/dev.yaml was deleted; it is not run or retried"), "\(run.stdout)")
        let again = try #require(try ws.devPlans().last)
        #expect(again["id"] as? String == v2 + "-2")
        #expect(again["scope"] as? String == "all" && again["status"] as? String == "succeeded", "\(again)")
        #expect((again["warnings"] as? [String])?.first?.contains("\(rollbackID) reached its run phase and did not finish") == true)
        #expect(try ws.deployedVersion() == "2")
        #expect(ws.dagctl("retry", rollbackID, "--as", "alice").status == 1, "a withdrawn rollback is never retried")
    }

    func commit(of plan: String, _ p: ProdWorkspace) throws -> String {
        let history = p.ws.dir.read("state/history/prod.jsonl") ?? ""
        let plans = history.split(separator: "\n").compactMap { parseJSON(String($0)) } + ((try p.prod()["plans"] as? [[String: Any]]) ?? [])
        return try #require(plans.last { $0["id"] as? String == plan }?["commit"] as? String)
    }

    /// `ssh-keygen -Y sign` over a rollback payload, as an indented YAML block.
    func signed(_ p: ProdWorkspace, env: String, to: String, commit: String, by: String, key: String) throws -> String {
        let payload = p.ws.dir.file("payload")
        p.ws.dir.write("payload", "dagctl-rollback-v1\nenvironment: \(env)\nto: \(to)\ncommit: \(commit)\nby: \(by)\n")
        let out = run("ssh-keygen", ["-Y", "sign", "-n", "dagctl", "-f", p.keys.file(key), payload])
        #expect(out.status == 0, "\(out.stderr)")
        let signature = try #require(p.ws.dir.read("payload.sig"))
        try FileManager.default.removeItem(atPath: payload + ".sig")
        return signature.split(separator: "\n").map { "  \($0)\n" }.joined()
    }
}
