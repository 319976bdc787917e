import Testing
import DagctlSpec
@testable import DagctlPlanning

let rootProject = Categorizer(projectDir: "", paths: .defaults)

func change(_ path: String, _ kind: ChangeKind = .modified, from old: String? = nil, _ c: Categorizer = rootProject) -> Change {
    Explain.categorize(path: path, oldPath: old, kind: kind, using: c)
}

@Suite("categories")
struct CategoryTests {
    @Test(arguments: [
        ("models/a.sql", Category.model), ("models/deep/er/b.py", .model), ("models/schema.yml", .test),
        ("models/x.yaml", .test), ("models/readme.md", .other), ("tests/t.sql", .test), ("tests/t.yml", .test),
        ("tests/fixtures/f.csv", .other), ("macros/m.sql", .macro), ("macros/sub/m.yml", .macro), ("seeds/s.csv", .seed),
        ("seeds/s.yml", .test), ("snapshots/s.sql", .snapshot), ("dbt_project.yml", .config), ("packages.yml", .config),
        ("dependencies.yml", .config), ("package-lock.yml", .config), ("selectors.yml", .config), ("profiles.yml", .config),
        ("README.md", .other), ("Dockerfile", .other), ("requirements.txt", .other), (".dagctl/config.yaml", .other),
        ("analyses/a.sql", .other), ("modelsx/a.sql", .other), ("sub/dbt_project.yml", .other),
    ])
    func defaults(path: String, expected: Category) {
        #expect(rootProject.category(of: path) == expected)
    }

    @Test func overriddenPaths() {
        let paths = DbtPaths(modelPaths: ["transform/sql"], testPaths: ["checks"], macroPaths: ["./lib/"], seedPaths: ["data"], snapshotPaths: ["snaps"])
        let c = Categorizer(projectDir: "", paths: paths)
        #expect(c.category(of: "transform/sql/a.sql") == .model)
        #expect(c.category(of: "models/a.sql") == .other)
        #expect(c.category(of: "lib/m.sql") == .macro)
        #expect(c.category(of: "data/raw.csv") == .seed)
        #expect(c.category(of: "checks/t.sql") == .test)
        #expect(c.category(of: "snaps/s.sql") == .snapshot)
    }

    @Test func projectInSubfolder() {
        let c = Categorizer(projectDir: "warehouse", paths: .defaults)
        #expect(c.category(of: "warehouse/models/a.sql") == .model)
        #expect(c.category(of: "models/a.sql") == .other, "a non-dbt models/ folder outside project_dir")
        #expect(c.category(of: "warehouse/dbt_project.yml") == .config)
        #expect(c.category(of: "dbt_project.yml") == .other)
        #expect(c.category(of: "warehouse2/models/a.sql") == .other)
    }

    @Test func modelNames() {
        #expect(Categorizer.modelName("models/a/b/orders.sql") == "orders")
        #expect(Categorizer.modelName("models/py_model.py") == "py_model")
        #expect(Categorizer.modelName("models/v.2.sql") == "v.2")
    }
}

@Suite("scope and selection")
struct ScopeTests {
    func scope(_ changes: [Change], base: BaseSituation = .known, downstream: Bool = false) -> ScopeDecision {
        Explain.scope(of: changes, base: base, categorizer: rootProject, selectDownstream: downstream)
    }

    @Test func firstDeployIsAll() {
        #expect(scope([change("models/a.sql", .added)], base: .firstDeploy).scope == .all)
    }

    @Test func missingBaseIsAllWithWarning() {
        let d = scope([], base: .missing("deadbeef"))
        #expect(d.scope == .all)
        #expect(d.warnings.first?.contains("deadbeef") == true)
    }

    @Test(arguments: ["models/schema.yml", "tests/t.sql", "macros/m.sql", "seeds/s.csv", "snapshots/s.sql", "dbt_project.yml", "packages.yml"])
    func fullBuildCategories(path: String) {
        let d = scope([change("models/a.sql"), change(path)])
        #expect(d.scope == .all)
        #expect(d.select.isEmpty)
    }

    @Test func selectiveModelsSortedUnique() {
        let d = scope([change("models/b.sql"), change("models/x/a.py", .added), change("models/y/a.py"), change("README.md")])
        #expect(d.scope == .selective)
        #expect(d.select == ["a", "b"])
    }

    @Test func downstreamSelection() {
        #expect(scope([change("models/b.sql")], downstream: true).select == ["b+"])
    }

    @Test func onlyOtherIsBuildOnly() {
        #expect(scope([change("README.md"), change("Dockerfile"), change(".dagctl/config.yaml")]).scope == .buildOnly)
    }

    @Test func deletionsOnlyIsBuildOnlyWithWarning() {
        let d = scope([change("models/gone.sql", .deleted)])
        #expect(d.scope == .buildOnly)
        #expect(d.select.isEmpty)
        #expect(d.warnings.count == 1)
        #expect(d.warnings[0].contains("'gone'"))
    }

    @Test func renameModelToModelSelectsNewNameOnly() {
        let d = scope([change("models/new_name.sql", .renamed, from: "models/old_name.sql")])
        #expect(d.scope == .selective)
        #expect(d.select == ["new_name"])
        #expect(d.warnings.contains { $0.contains("'old_name'") })
    }

    @Test func moveModelToAnotherFolderKeepsItsName() {
        let d = scope([change("models/marts/a.sql", .renamed, from: "models/staging/a.sql")])
        #expect(d.select == ["a"])
        #expect(d.warnings.isEmpty)
    }

    @Test func renameModelToNonModelIsADeletion() {
        let d = scope([change("docs/a.sql", .renamed, from: "models/a.sql")])
        #expect(d.scope == .buildOnly)
        #expect(d.select.isEmpty)
        #expect(d.warnings.contains { $0.contains("'a'") })
    }

    @Test func renameNonModelToModelSelectsIt() {
        let d = scope([change("models/a.sql", .renamed, from: "analyses/a.sql")])
        #expect(d.scope == .selective)
        #expect(d.select == ["a"])
    }

    @Test func renameOutOfMacroPathStillForcesAll() {
        #expect(scope([change("docs/m.sql", .renamed, from: "macros/m.sql")]).scope == .all)
    }
}

@Suite("next plan")
struct NextPlanTests {
    func plan(_ version: String, _ status: PlanStatus) -> Plan {
        Plan(id: "prod-v\(version)-0123456789", environment: "prod", version: version, commit: String(repeating: "0", count: 40),
             base: nil, author: nil, changes: [], scope: .all, select: [], warnings: [], status: status)
    }

    @Test func noPlansCreates() {
        #expect(NextPlanDecision.decide(headVersion: Version("1")!, plans: []) == .create(supersede: []))
    }

    @Test func sameVersionKeeps() {
        let p = plan("8", .pending)
        #expect(NextPlanDecision.decide(headVersion: Version("8.0")!, plans: [p]) == .keep(p))
    }

    @Test func higherVersionSupersedesPendingOnly() {
        let plans = [plan("6", .approved), plan("7", .pending)]
        #expect(NextPlanDecision.decide(headVersion: Version("8")!, plans: plans) == .create(supersede: ["prod-v7-0123456789"]))
    }

    @Test func lowerVersionIsAnError() {
        let p = plan("8", .succeeded)
        let decision = NextPlanDecision.decide(headVersion: Version("7")!, plans: [p])
        #expect(decision == .versionWentBackwards(newest: p, head: Version("7")!))
        #expect(decision.error(ref: "main") == "version went backwards: main has version 7 but the newest plan prod-v8-0123456789 has version 8; bump the version above 8")
    }

    @Test func planIDAndCommand() {
        #expect(Plan.id(environment: "prod", version: Version("8")!, commit: "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b") == "prod-v8-1a2b3c4d5e")
        #expect(Explain.dbtCommand(scope: .selective, select: ["a", "b"], target: "prod") == ["dbt", "build", "--select", "a", "b", "--target", "prod"])
        #expect(Explain.dbtCommand(scope: .all, select: [], target: "dev") == ["dbt", "build", "--target", "dev"])
        #expect(Explain.dbtCommand(scope: .buildOnly, select: [], target: "dev") == nil)
    }
}
