import Testing
@testable import DagctlSpec

@Suite("environment refs and local backend options")
struct RefAndBackendTests {
    func parse(_ text: String) -> Result<EnvironmentSpec, SpecIssues> {
        Result { () throws(SpecIssues) in try EnvironmentSpec.parse(text, name: "dev", file: "dev.yaml", members: nil) }
    }

    @Test(arguments: ["main", "origin/main", "v1.2", "release/2026-11", "refs/heads/main", "refs/tags/v1"])
    func refNames(ref: String) throws {
        #expect(try parse("ref: \(ref)\n").get().ref == ref)
    }

    @Test(arguments: ["main~1", "main^", "HEAD", "main@{1}", ":/fix", "a..b", "-x", "a b", "x.lock", "a/.b", "a//b", "a*", "a[1]", "a\\\\b"])
    func revisionExpressionsAreNotRefs(ref: String) {
        guard case .failure(let error) = parse("ref: \"\(ref)\"\n") else {
            Issue.record("'\(ref)' was accepted")
            return
        }
        #expect(error.description.contains("dev.yaml:1: 'ref':"), "\(error)")
        #expect(error.description.contains("is not a branch, remote-tracking branch or tag name"))
    }

    @Test func localTimeout() throws {
        #expect(try parse("ref: main\nbackend: {kind: local, timeout_seconds: 600}\n").get().backend.timeoutSeconds == 600)
        #expect(try parse("ref: main\nbackend: {kind: local}\n").get().backend.timeoutSeconds == nil)
        #expect(try parse("ref: main\n").get().backend.timeoutSeconds == nil)
        guard case .failure(let error) = parse("ref: main\nbackend:\n  kind: local\n  timeout_seconds: 0\n") else {
            Issue.record("timeout 0 was accepted")
            return
        }
        #expect(error.description.contains("dev.yaml:4: 'backend.timeout_seconds': 0 is out of range"), "\(error)")
    }

    /// dbt renders Jinja in path settings before it uses them: `{{ '..' }}` passes a literal check.
    @Test func computedPathsAreRefused() {
        let text = "name: x\npackages-install-path: \"{{ '..' }}/{{ '..' }}/history\"\nmodel-paths: [\"{% if true %}models{% endif %}\"]\n"
        do {
            _ = try DbtPaths.parse(text, file: "dbt_project.yml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("dbt_project.yml:2: 'packages-install-path':"), "\(error)")
            #expect(error.description.contains("is computed by dbt (Jinja)"))
            #expect(error.issues.count == 2, "\(error)")
        }
    }

    @Test func dbtOutputPathsStayInTheProject() {
        let text = "name: x\npackages-install-path: ../../history\ntarget-path: /tmp/t\ndocs-paths: [\"../..\"]\n"
        do {
            _ = try DbtPaths.parse(text, file: "dbt_project.yml")
            Issue.record("accepted")
        } catch {
            let d = error.description
            #expect(d.contains("dbt_project.yml:2: 'packages-install-path': '../../history' must not contain '..'"), "\(d)")
            #expect(d.contains("dbt_project.yml:3: 'target-path': '/tmp/t' must be relative"), "\(d)")
            #expect(d.contains("dbt_project.yml:4: 'docs-paths'"), "\(d)")
        }
    }
}

@Suite("byte-order marks")
struct ByteOrderMarkTests {
    @Test func aFileStartingWithABOMReadsLikeOneWithout() throws {
        let env = try EnvironmentSpec.parse("\u{FEFF}ref: main\nprotected: false\n", name: "dev", file: "dev.yaml", members: nil)
        #expect(env.ref == "main")
    }
}

@Suite("SQLMesh projects and environments")
struct SQLMeshSpecTests {
    @Test func aSQLMeshConfigHasNoVersion() throws {
        let config = try ProjectConfig.parse("kind: sqlmesh\nproject_dir: warehouse\n", file: "c")
        #expect(config.kind == .sqlmesh)
        #expect(config.version == nil)
        do {
            _ = try ProjectConfig.parse("kind: sqlmesh\nversion: 3\n", file: "main:.dagctl/config.yaml")
            Issue.record("accepted a version")
        } catch {
            #expect(error.description.contains("main:.dagctl/config.yaml:2: 'version': a SQLMesh project has no version"), "\(error)")
        }
        #expect(throws: SpecIssues.self) { try ProjectConfig.parse("kind: spark\nversion: 1\n", file: "c") }
        #expect(try ProjectConfig.parse("version: 1\n", file: "c").kind == .dbt)
    }

    @Test func keysOfTheOtherKindAreErrorsAtTheirLine() throws {
        let env = try EnvironmentSpec.parse("ref: main\ntarget: prod\nselect_downstream: true\nprofiles_dir: p\nsqlmesh_environment: prod_eu\n",
                                            name: "prod", file: "environments/prod.yaml", members: nil)
        #expect(env.sqlmeshEnvironment == "prod_eu")
        let forSQLMesh = env.keysNotFor(.sqlmesh).map(\.description)
        #expect(forSQLMesh.count == 3)
        #expect(forSQLMesh.contains { $0.hasPrefix("environments/prod.yaml:2: 'target': does not apply to a sqlmesh project") }, "\(forSQLMesh)")
        #expect(forSQLMesh.contains { $0.hasPrefix("environments/prod.yaml:3: 'select_downstream'") })
        #expect(env.keysNotFor(.dbt).map(\.description) == ["environments/prod.yaml:5: 'sqlmesh_environment': does not apply to a dbt project (.dagctl/config.yaml says kind: dbt); its environments take target, select_downstream, profiles_dir and scope_mode: remove it"])
        let plain = try EnvironmentSpec.parse("ref: main\n", name: "dev", file: "d", members: nil)
        #expect(plain.sqlmeshEnvironment == "dev", "the environment's name by default")
        #expect(throws: SpecIssues.self) { try EnvironmentSpec.parse("ref: main\nsqlmesh_environment: Prod-EU\n", name: "dev", file: "d", members: nil) }
    }
}
