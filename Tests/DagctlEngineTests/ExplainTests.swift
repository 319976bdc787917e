import DagctlEngine
import DagctlPlanning
import DagctlState
import Foundation
import Testing
import TestSupport

@Suite("explain on real repositories")
struct ExplainTests {
    /// A deployed v1 and a v2 commit that applies `change`.
    func planAfter(_ change: (GitFixture) -> Void, projectDir: String? = nil) throws -> Plan {
        let f = PlanningFixture()
        let base = f.initialCommit(projectDir: projectDir)
        f.deploy("dev", commit: base, version: "1")
        change(f.repo)
        f.repo.setVersion("2", projectDir: projectDir)
        f.repo.commit("change")
        return try f.plan()
    }

    @Test(arguments: [
        ("models/marts/orders.sql", Category.model, Scope.selective),
        ("models/new.py", .model, .selective),
        ("models/schema.yml", .test, .all),
        ("tests/assert_positive.sql", .test, .all),
        ("macros/cents.sql", .macro, .all),
        ("seeds/raw.csv", .seed, .all),
        ("snapshots/snap.sql", .snapshot, .all),
        ("dbt_project.yml", .config, .all),
        ("packages.yml", .config, .all),
        ("README.md", .other, .buildOnly),
        ("Dockerfile", .other, .buildOnly),
    ])
    func eachCategory(path: String, category: Category, scope: Scope) throws {
        let content = path.hasSuffix(".yml") ? "name: shop\nprofile: shop\n# changed\n" : "-- changed\n"
        let plan = try planAfter { $0.write(path, content) }
        #expect(plan.category(of: path) == category)
        #expect(plan.category(of: ".dagctl/config.yaml") == .other)
        #expect(plan.scope == scope)
        if scope == .selective { #expect(plan.select == [Categorizer.modelName(path)]) }
    }

    @Test func selectiveListsEveryChangedModel() throws {
        let plan = try planAfter {
            $0.write("models/marts/orders.sql", "select 2\n")
            $0.write("models/staging/stg_orders.sql", "select 3 as id\n")
            $0.write("models/zeta.py", "def model(dbt, s): pass\n")
        }
        #expect(plan.scope == .selective)
        #expect(plan.select == ["orders", "stg_orders", "zeta"])
        #expect(plan.changes.map(\.change) == [.modified, .modified, .modified, .added])
    }

    @Test func renameModelToModel() throws {
        let plan = try planAfter { $0.move("models/marts/orders.sql", "models/marts/orders_v2.sql") }
        let rename = try #require(plan.changes.first { $0.change == .renamed })
        #expect(rename.oldPath == "models/marts/orders.sql")
        #expect(rename.path == "models/marts/orders_v2.sql")
        #expect(rename.category == .model)
        #expect(plan.scope == .selective)
        #expect(plan.select == ["orders_v2"])
        #expect(plan.warnings.contains { $0.contains("'orders'") })
    }

    @Test func renameModelToNonModel() throws {
        let plan = try planAfter { $0.move("models/marts/orders.sql", "analyses/orders.sql") }
        #expect(plan.changes.first { $0.change == .renamed }?.category == .other)
        #expect(plan.scope == .buildOnly)
        #expect(plan.select.isEmpty)
        #expect(plan.warnings.contains { $0.contains("'orders'") })
    }

    @Test func renameNonModelToModel() throws {
        let f = PlanningFixture()
        f.repo.write("analyses/big_query.sql", String(repeating: "select 1 as a -- padding for rename detection\n", count: 20))
        let base = f.initialCommit()
        f.deploy("dev", commit: base, version: "1")
        f.repo.move("analyses/big_query.sql", "models/big_query.sql")
        f.repo.setVersion("2")
        f.repo.commit("promote the analysis to a model")
        let plan = try f.plan()
        #expect(plan.changes.contains { $0.change == .renamed && $0.oldPath == "analyses/big_query.sql" && $0.category == .model })
        #expect(plan.scope == .selective)
        #expect(plan.select == ["big_query"])
    }

    @Test func deletionsOnly() throws {
        let plan = try planAfter { $0.remove("models/marts/orders.sql") }
        #expect(plan.changes.contains { $0.change == .deleted && $0.path == "models/marts/orders.sql" && $0.category == .model })
        #expect(plan.scope == .buildOnly)
        #expect(plan.warnings.count == 1)
    }

    @Test func overriddenModelAndSeedPaths() throws {
        let plan = try planAfter {
            $0.write("dbt_project.yml", "name: shop\nprofile: shop\nmodel-paths: [transform]\nseed-paths: [\"data\"]\n")
            $0.commit("move paths")
            $0.write("transform/a.sql", "select 1\n")
            $0.write("models/marts/orders.sql", "select 9\n")
            $0.write("data/raw.csv", "x\n1\n")
        }
        // dbt_project.yml changed since the deployed commit too, so this is `all`; categories are what matter.
        #expect(plan.category(of: "transform/a.sql") == .model)
        #expect(plan.category(of: "models/marts/orders.sql") == .other)
        #expect(plan.category(of: "data/raw.csv") == .seed)
    }

    @Test func olderPathNames() throws {
        let f = PlanningFixture()
        f.repo.setVersion("1")
        f.repo.write("dbt_project.yml", "name: shop\nsource-paths: [src]\ndata-paths: [data]\n")
        f.repo.write("src/a.sql", "select 1\n")
        let base = f.repo.commit("old style project")
        f.deploy("dev", commit: base, version: "1")
        f.repo.write("src/a.sql", "select 2\n")
        f.repo.setVersion("2")
        f.repo.commit("change")
        let plan = try f.plan()
        #expect(plan.scope == .selective)
        #expect(plan.select == ["a"])
        f.repo.write("data/raw.csv", "x\n")
        f.repo.setVersion("3")
        f.repo.commit("seed")
        let next = try f.plan()
        #expect(next.category(of: "data/raw.csv") == .seed)
        #expect(next.scope == .all)
    }

    @Test func projectInSubfolderWithForeignModelsFolder() throws {
        let plan = try planAfter({
            $0.write("models/not_dbt.sql", "-- an ML team's folder, not dbt\n")
            $0.write("warehouse/models/marts/orders.sql", "select 42\n")
        }, projectDir: "warehouse")
        #expect(plan.category(of: "models/not_dbt.sql") == .other)
        #expect(plan.category(of: "warehouse/models/marts/orders.sql") == .model)
        #expect(plan.scope == .selective)
        #expect(plan.select == ["orders"])
    }

    @Test func firstDeploy() throws {
        let f = PlanningFixture()
        let head = f.initialCommit()
        let report = try f.preview()
        let plan = try #require(report.plan)
        #expect(report.isNewPlan)
        #expect(plan.base == nil)
        #expect(plan.scope == .all)
        #expect(plan.id == "dev-v1-\(head.prefix(10))")
        #expect(plan.changes.allSatisfy { $0.change == .added })
        #expect(plan.author == "alice")
        #expect(plan.status == .pending)
    }

    @Test func missingBaseCommit() throws {
        let f = PlanningFixture()
        f.initialCommit()
        let gone = "0123456789abcdef0123456789abcdef01234567"
        f.deploy("dev", commit: gone, version: "0.9")
        let plan = try f.plan()
        #expect(plan.scope == .all)
        #expect(plan.base == gone)
        #expect(plan.warnings.first?.contains("not in the repository") == true)
    }

    @Test func versionUnchangedKeepsPlanAndCountsCommitsBehind() throws {
        let f = PlanningFixture()
        let head = f.initialCommit()
        f.addPlan(try f.plan())
        f.repo.write("models/marts/orders.sql", "select 2\n")
        f.repo.commit("no bump 1")
        f.repo.write("README.md", "hi\n")
        f.repo.commit("no bump 2")
        let report = try f.preview()
        #expect(!report.isNewPlan)
        #expect(report.plan?.commit == head)
        #expect(report.commitsBehind == 2)
    }

    @Test func versionBumpedSupersedesPendingPlan() throws {
        let f = PlanningFixture()
        f.initialCommit()
        let v1 = try f.plan()
        f.addPlan(v1)
        f.repo.write("models/marts/orders.sql", "select 2\n")
        f.repo.setVersion("2")
        let head = f.repo.commit("bump", author: "bob")
        let report = try f.preview()
        #expect(report.isNewPlan)
        #expect(report.plan?.id == "dev-v2-\(head.prefix(10))")
        #expect(report.plan?.author == "bob")
        #expect(report.supersedes == [v1.id])
        #expect(report.plan?.scope == .all, "nothing deployed yet: still a first deploy")
    }

    @Test func versionBumpWaitsForApprovedPlan() throws {
        let f = PlanningFixture()
        f.initialCommit()
        var v1 = try f.plan()
        v1.status = .approved
        f.addPlan(v1)
        f.repo.setVersion("2")
        f.repo.commit("bump")
        let report = try f.preview()
        #expect(report.supersedes.isEmpty)
        #expect(report.waitingFor == [v1.id])
    }

    @Test func versionLoweredIsAnError() throws {
        let f = PlanningFixture()
        let c = f.initialCommit()
        f.deploy("dev", commit: c, version: "5")
        let report = try f.preview()
        #expect(report.errors.count == 1)
        #expect(report.errors[0].contains("version went backwards"))
        #expect(!report.isNewPlan)
    }

    @Test func authorIsTheVersionBumper() throws {
        let f = PlanningFixture()
        let base = f.initialCommit(author: "alice")
        f.deploy("prod", commit: base, version: "1")
        f.repo.write("models/marts/orders.sql", "select 2\n")
        f.repo.commit("model change", author: "alice")
        f.repo.setVersion("2")
        f.repo.commit("bump", author: "carol")
        f.repo.write("README.md", "later\n")
        f.repo.commit("docs after the bump", author: "bob")
        f.repo.write(".dagctl/config.yaml", "# comment only\nversion: 2\n")
        f.repo.commit("touch config without changing the version", author: "alice")
        #expect(try f.plan("prod").author == "carol")
    }

    @Test func authorUnknownIsNull() throws {
        let f = PlanningFixture()
        let base = f.initialCommit()
        f.deploy("dev", commit: base, version: "1")
        f.repo.setVersion("2")
        f.repo.commit("bump", author: "stranger")
        #expect(try f.plan().author == nil)
    }

    @Test func refAndBaseOverrides() throws {
        let f = PlanningFixture()
        let v1 = f.initialCommit()
        f.deploy("dev", commit: v1, version: "1")
        f.addPlan(Plan(id: "dev-v2-x", environment: "dev", version: "2", commit: v1, base: v1, author: nil, changes: [],
                       scope: .buildOnly, select: [], warnings: [], status: .pending))
        f.repo.git("checkout", "-q", "-b", "feature")
        f.repo.write("models/marts/orders.sql", "select 2\n")
        let mid = f.repo.commit("pr change 1")
        f.repo.write("models/staging/stg_orders.sql", "select 3 as id\n")
        let tip = f.repo.commit("pr change 2")
        f.repo.git("checkout", "-q", "main")

        // --ref explains a fresh plan at the branch, whatever plans exist (same version as the newest).
        let viaRef = try f.plan(ref: "feature")
        #expect(viaRef.commit == tip)
        #expect(viaRef.base == v1)
        #expect(viaRef.select == ["orders", "stg_orders"])

        // --base diffs against another commit.
        let viaBase = try f.plan(ref: "feature", base: mid)
        #expect(viaBase.base == mid)
        #expect(viaBase.select == ["stg_orders"])

        let missing = try f.preview(ref: "no-such-branch")
        #expect(missing.errors.first?.contains("ref 'no-such-branch' was not found") == true)
    }

    @Test func tagsAndRemoteTrackingRefs() throws {
        let f = PlanningFixture()
        let c = f.initialCommit()
        f.repo.git("tag", "v1.0")
        f.repo.git("update-ref", "refs/remotes/origin/main", c)
        f.repo.setVersion("2")
        f.repo.commit("ahead")
        #expect(try f.plan(ref: "v1.0").commit == c)
        #expect(try f.plan(ref: "origin/main").commit == c)
    }

    @Test func missingConfigAndMissingRef() throws {
        let f = PlanningFixture()
        f.repo.writeDbtProject()
        f.repo.commit("no dagctl config")
        let report = try f.preview()
        #expect(report.errors.first?.contains("main:.dagctl/config.yaml does not exist") == true)

        f.desired.write("environments/dev.yaml", "ref: release\n")
        let noRef = try f.preview()
        #expect(noRef.errors.first?.contains("ref 'release' was not found") == true)
    }

    @Test func invalidConfigNamesRefFileAndLine() throws {
        let f = PlanningFixture()
        f.repo.writeDbtProject()
        f.repo.write(".dagctl/config.yaml", "version: 1\nprojectdir: x\n")
        f.repo.commit("typo")
        let report = try f.preview()
        #expect(report.errors.first?.hasPrefix("main:.dagctl/config.yaml:2: 'projectdir': unknown key") == true)
    }

    @Test func renamesBeyondTheDefaultLimit() throws {
        let f = PlanningFixture()
        f.repo.setVersion("1")
        f.repo.writeDbtProject()
        for i in 0..<1_100 { f.repo.write("models/bulk/m\(i).sql", "select \(i) as id -- model number \(i)\n") }
        let base = f.repo.commit("many models")
        f.deploy("dev", commit: base, version: "1")
        f.repo.git("mv", "models/bulk", "models/moved")
        f.repo.setVersion("2")
        f.repo.commit("move them all")
        let plan = try f.plan()
        let renames = plan.changes.filter { $0.change == .renamed }
        #expect(renames.count == 1_100)
        #expect(plan.changes.filter { $0.change == .added || $0.change == .deleted }.isEmpty)
        #expect(plan.scope == .selective)
        #expect(plan.select.count == 1_100)
        #expect(plan.warnings.isEmpty)
    }
}
