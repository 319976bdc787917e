import Foundation
import Testing
import TestSupport

/// `scope_mode: precise` with real dbt on DuckDB: the example project deployed once (its manifest
/// kept), then one kind of change at a time.
final class PreciseWorkspace: @unchecked Sendable {
    let ws = DeployWorkspace()
    var version = 1

    init(extraV1: ((GitFixture) -> Void)? = nil) {
        ws.dir.write("desired/environments/dev.yaml", "ref: main\ntarget: dev\nrequired_approvals: 0\nscope_mode: precise\n")
        if let extraV1 {
            extraV1(ws.repo)
            ws.repo.commit("v1 extras", author: "alice")
        }
        let first = ws.dagctl("reconcile")
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
    }

    /// Commits a change with the next version.
    func change(_ edit: (GitFixture) -> Void) {
        version += 1
        ws.bump(version, edit)
    }

    func append(_ path: String, _ text: String) {
        change { $0.write(path, ($0.dir.read(path) ?? "") + text) }
    }

    /// The newest plan as `plan --output json` shows it.
    func preview() throws -> [String: Any] {
        let out = ws.dagctl("plan", "--output", "json")
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let doc = try #require(parseJSON(out.stdout))
        return try #require(((doc["environments"] as? [[String: Any]])?.first?["plan"]) as? [String: Any])
    }

    /// Deploys the newest version and returns the nodes dbt ran.
    func deploy() throws -> [String] {
        let out = ws.dagctl("reconcile")
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let plan = try #require(ws.devPlans().last)
        #expect(plan["status"] as? String == "succeeded")
        return try ws.ranNodes(try #require(plan["id"] as? String))
    }
}

@Suite("Precise scope with real dbt on DuckDB", .serialized)
struct PreciseScopeTests {
    /// A macro change selects exactly the models that call it, directly or through another macro; the
    /// run's run_results.json shows only they (and their tests) ran.
    @Test func aMacroSelectsItsCallersAtAnyDepth() throws {
        let p = PreciseWorkspace { repo in
            repo.write("macros/amount.sql", "{% macro amount(column) %}{{ cents_to_dollars(column) }}{% endmacro %}\n")
            repo.write("models/marts/order_amounts.sql", "select order_id, {{ amount('amount_cents') }} as amount from {{ ref('stg_orders') }}\n")
        }
        #expect(p.ws.dir.read("state/manifests/dev/index.json") != nil, "the deploy kept its manifest's index")
        p.change { $0.write("macros/cents_to_dollars.sql", $0.dir.read("macros/cents_to_dollars.sql")!.replacingOccurrences(of: "as decimal(18, 2))", with: "as decimal(19, 2))")) }
        let plan = try p.preview()
        #expect(plan["scope"] as? String == "selective")
        #expect(plan["scope_mode"] as? String == "precise")
        #expect(plan["select"] as? [String] == ["order_amounts", "stg_orders"], "\(plan)")
        let reasons = try #require(plan["reasons"] as? [String: [String]])
        #expect(reasons["stg_orders"] == ["calls macro cents_to_dollars (macros/cents_to_dollars.sql)"])
        #expect(reasons["order_amounts"] == ["calls macro cents_to_dollars (macros/cents_to_dollars.sql) through amount"], "\(reasons)")
        #expect((plan["manifest"] as? String)?.contains("the deploy of dev-v1-") == true, "\(plan)")
        let ran = try p.deploy()
        #expect(ran.filter { $0.hasPrefix("model.") } == ["model.shop.order_amounts", "model.shop.stg_orders"], "\(ran)")
        #expect(!ran.contains { $0.hasPrefix("seed.") })
        #expect(ran.contains { $0.hasPrefix("test.shop.not_null_stg_orders") }, "the selected models' tests run too")
    }

    /// A Jinja comment never renders: a macro change that only touches one selects nothing.
    @Test func aJinjaCommentInAMacroSelectsNothing() throws {
        let p = PreciseWorkspace()
        p.append("macros/cents_to_dollars.sql", "\n{# reviewed by carol #}\n")
        #expect(try p.preview()["scope"] as? String == "build_only")
    }

    /// A seed selects itself, not its children; a singular test itself.
    @Test func aSeedAndASingularTestSelectThemselves() throws {
        let p = PreciseWorkspace()
        p.change {
            $0.write("seeds/raw_customers.csv", $0.dir.read("seeds/raw_customers.csv")! + "99,Zed,Zee\n")
            $0.write("tests/assert_no_negative_amounts.sql", $0.dir.read("tests/assert_no_negative_amounts.sql")! + "\n-- reviewed\n")
        }
        let plan = try p.preview()
        #expect(plan["select"] as? [String] == ["assert_no_negative_amounts,resource_type:test", "raw_customers,resource_type:seed"], "\(plan)")
        let ran = try p.deploy()
        #expect(ran == ["seed.shop.raw_customers", "test.shop.assert_no_negative_amounts"], "\(ran)")
        // Warm parsing: the deploy started from the first deploy's partial-parse file, and dbt used it
        // (the project is at one path per environment, so the seed's recorded path is still right).
        let id = try #require(p.ws.devPlans().last?["id"] as? String)
        #expect(p.ws.dir.read("state/logs/\(id)/attempt-1/build.log")?.contains("reusing the partial-parse file of the last deploy") == true)
        let dbtLog = try #require(p.ws.dir.read("state/builds/\(id)/attempt-1/dbt-logs/dbt.log"))
        #expect(dbtLog.contains("Partial parsing enabled") && !dbtLog.contains("Unable to do partial parsing"), "\(dbtLog.prefix(3000))")
    }

    /// A yml change selects what changed in meaning: a description alone selects nothing (no
    /// persist_docs), reordering and quoting nothing, and a new test its model (and the test).
    @Test func aPropertiesFileSelectsTheEntriesWhoseMeaningChanged() throws {
        let p = PreciseWorkspace()
        let schema = "models/staging/schema.yml"
        let original = try #require(p.ws.repo.dir.read(schema))
        // A description reworded, the two models' entries swapped, quotes added: nothing to build.
        let orders = original.replacingOccurrences(of: "One row per order, amounts in cents and dollars.", with: "\"Orders, one per row.\"")
        let parts = orders.components(separatedBy: "\n  - name: ")
        #expect(parts.count == 3)
        p.change { $0.write(schema, parts[0] + "\n  - name: " + parts[2].trimmingCharacters(in: .newlines) + "\n\n  - name: " + parts[1].replacingOccurrences(of: "name: not_null", with: "name: 'not_null'")) }
        var plan = try p.preview()
        #expect(plan["scope"] as? String == "build_only", "a description alone: \(plan)")
        _ = p.ws.dagctl("reconcile")

        // A new test under stg_customers: that model and its tests, the new one among them.
        p.change {
            $0.write(schema, $0.dir.read(schema)!.replacingOccurrences(of: "- name: first_name\n        data_tests:\n", with: "- name: first_name\n        data_tests:\n          - unique\n"))
        }
        plan = try p.preview()
        #expect(plan["select"] as? [String] == ["unique_stg_customers_first_name,resource_type:test"], "\(plan)")
        #expect((plan["reasons"] as? [String: [String]])?["unique_stg_customers_first_name,resource_type:test"] == ["tests defined in \(schema)"])
        // The build_only deploy before changed a file dbt reads, so its commit's manifest was made by dbt parse.
        #expect((plan["manifest"] as? String)?.contains("dbt parse") == true, "\(plan)")
        let ran = try p.deploy()
        #expect(ran.count == 1 && ran[0].hasPrefix("test.shop.unique_stg_customers_first_name."), "only the new test ran: \(ran)")

        // A changed config in an entry selects the model (and its tests).
        p.change { $0.write(schema, $0.dir.read(schema)!.replacingOccurrences(of: "  - name: stg_customers\n", with: "  - name: stg_customers\n    config:\n      tags: [pii]\n")) }
        plan = try p.preview()
        #expect(plan["select"] as? [String] == ["stg_customers"], "\(plan)")
        #expect((plan["reasons"] as? [String: [String]])?["stg_customers"] == ["defined in \(schema)"])
    }

    /// What dbt calls without recording it stays `all`, with the reason.
    @Test func generateSchemaNameIsAll() throws {
        let p = PreciseWorkspace()
        p.change {
            $0.write("macros/schemas.sql", "{% macro generate_schema_name(custom, node) %}{{ target.schema }}{% endmacro %}\n")
        }
        let plan = try p.preview()
        #expect(plan["scope"] as? String == "all")
        #expect((plan["warnings"] as? [String])?.contains { $0.contains("generate_schema_name, which dbt calls for every node without recording it") } == true, "\(plan)")
    }

    /// No kept manifest (say, after an upgrade): `dbt parse` of the deployed commit, kept for next time.
    /// A corrupt kept index: `all` with the reason, never a crash or an empty selection.
    @Test func withoutAKeptManifestDbtParsesTheBaseAndACorruptOneIsAll() throws {
        let p = PreciseWorkspace()
        try FileManager.default.removeItem(atPath: p.ws.dir.file("state/manifests"))
        p.change { $0.write("macros/cents_to_dollars.sql", $0.dir.read("macros/cents_to_dollars.sql")!.replacingOccurrences(of: "as decimal(18, 2))", with: "as decimal(19, 2))")) }
        let plan = try p.preview()
        #expect(plan["select"] as? [String] == ["stg_orders"], "\(plan)")
        #expect((plan["manifest"] as? String)?.contains("dbt parse") == true, "\(plan)")
        #expect(!FileManager.default.fileExists(atPath: p.ws.dir.file("state/manifests")), "a preview writes nothing")

        p.ws.dir.write("state/manifests/dev/index.json", "{\"format\": 1, \"nodes\": ")
        let corrupt = try p.preview()
        #expect(corrupt["scope"] as? String == "all")
        #expect((corrupt["warnings"] as? [String])?.contains { $0.contains("the kept manifest cannot be used") && $0.contains("index.json") } == true, "\(corrupt)")
        let r = p.ws.dagctl("reconcile")
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(try p.ws.devPlans().last?["scope"] as? String == "all")
        #expect(p.ws.dir.read("state/manifests/dev/index.json")?.contains("\"nodes\"") == true, "the deploy replaced the corrupt index")
    }
}
