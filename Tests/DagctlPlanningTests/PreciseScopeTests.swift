import DagctlSpec
import Foundation
import Testing
@testable import DagctlPlanning

/// The rules of precise scope on a small hand-written manifest (the end-to-end tests run real dbt).
@Suite("Precise scope rules")
struct PreciseScopeRuleTests {
    static let manifest = """
        {"metadata": {"project_name": "shop", "adapter_type": "duckdb"},
         "macros": {
           "macro.shop.inner": {"name": "inner", "package_name": "shop", "original_file_path": "macros/inner.sql", "depends_on": {"macros": []}},
           "macro.shop.outer": {"name": "outer", "package_name": "shop", "original_file_path": "macros/outer.sql", "depends_on": {"macros": ["macro.shop.inner"]}},
           "macro.shop.test_positive": {"name": "test_positive", "package_name": "shop", "original_file_path": "tests/generic/positive.sql", "depends_on": {"macros": []}},
           "macro.utils.star": {"name": "star", "package_name": "utils", "original_file_path": "macros/star.sql", "depends_on": {"macros": ["macro.shop.inner"]}},
           "macro.dbt.generate_schema_name": {"name": "generate_schema_name", "package_name": "dbt", "original_file_path": "x", "depends_on": {"macros": []}},
           "macro.shop.generate_schema_name": {"name": "generate_schema_name", "package_name": "shop", "original_file_path": "macros/schemas.sql", "depends_on": {"macros": ["macro.shop.suffix"]}},
           "macro.shop.suffix": {"name": "suffix", "package_name": "shop", "original_file_path": "macros/suffix.sql", "depends_on": {"macros": []}},
           "macro.shop.mark": {"name": "mark", "package_name": "shop", "original_file_path": "macros/mark.sql", "depends_on": {"macros": []}},
           "macro.shop.eph_fmt": {"name": "eph_fmt", "package_name": "shop", "original_file_path": "macros/eph_fmt.sql", "depends_on": {"macros": []}},
           "macro.shop.fmt": {"name": "fmt", "package_name": "shop", "original_file_path": "macros/fmt.sql", "depends_on": {"macros": []}},
           "macro.dbt_duckdb.duckdb__create_table_as": {"name": "duckdb__create_table_as", "package_name": "dbt_duckdb", "original_file_path": "x", "depends_on": {"macros": []}}
         },
         "nodes": {
           "model.shop.a": {"resource_type": "model", "name": "a", "original_file_path": "models/a.sql", "patch_path": "shop://models/schema.yml", "depends_on": {"macros": ["macro.shop.inner"]}, "config": {}},
           "model.shop.b": {"resource_type": "model", "name": "b", "original_file_path": "models/b.sql", "patch_path": "shop://models/schema.yml", "depends_on": {"macros": ["macro.shop.outer"]}, "config": {"persist_docs": {"relation": true}}},
           "model.shop.c": {"resource_type": "model", "name": "c", "original_file_path": "models/c.sql", "depends_on": {"macros": ["macro.utils.star"]}, "config": {}},
           "seed.shop.raw": {"resource_type": "seed", "name": "raw", "original_file_path": "seeds/raw.csv", "depends_on": {"macros": []}, "config": {}},
           "test.shop.positive_a_n.1": {"resource_type": "test", "name": "positive_a_n", "original_file_path": "models/schema.yml", "attached_node": "model.shop.a", "depends_on": {"macros": ["macro.shop.test_positive"]}, "config": {}},
           "operation.shop.shop-on-run-start-0": {"resource_type": "operation", "name": "shop-on-run-start-0", "original_file_path": "./dbt_project.yml", "depends_on": {"macros": ["macro.shop.mark"]}, "config": {}},
           "model.shop.eph": {"resource_type": "model", "name": "eph", "original_file_path": "models/eph.sql", "depends_on": {"macros": ["macro.shop.eph_fmt"]}, "config": {"materialized": "ephemeral"}},
           "snapshot.shop.snap": {"resource_type": "snapshot", "name": "snap", "original_file_path": "snapshots/snap.sql", "depends_on": {"macros": []}, "config": {}}
         },
         "sources": {"source.shop.raw_db.orders": {"original_file_path": "models/sources.yml"}}}
        """

    static let schema = """
        version: 2
        models:
          - name: a
            description: A.
            columns:
              - name: n
                data_tests: [positive]
          - name: b
            description: B.
        """

    func decide(_ changes: [(String, ChangeKind)], base: [String: String] = [:], head: [String: String] = [:],
                downstream: Bool = false) throws -> PreciseScope.Decision {
        let index = try DependencyIndex.build(manifest: Data(Self.manifest.utf8), commit: String(repeating: "a", count: 40))
        let categorizer = Categorizer(projectDir: "", paths: .defaults)
        let scope = PreciseScope(index: index, categorizer: categorizer, read: { path, side in (side == .base ? base : head)[path] },
                                 selectDownstream: downstream)
        return scope.decide(changes.map { Change(path: $0.0, change: $0.1, category: categorizer.category(of: $0.0)) })
    }

    @Test func macrosSelectTheirCallersThroughOtherMacrosAndPackages() throws {
        let text = "{% macro inner(x) %}{{ x }}{% endmacro %}"
        let d = try decide([("macros/inner.sql", .modified)], base: ["macros/inner.sql": text], head: ["macros/inner.sql": text + " "])
        #expect(d.scope == .selective)
        #expect(d.select == ["a", "b", "c"])
        #expect(d.reasons["a"] == ["calls macro inner (macros/inner.sql)"])
        #expect(d.reasons["b"] == ["calls macro inner (macros/inner.sql) through outer"])
        #expect(d.reasons["c"] == ["calls macro inner (macros/inner.sql) through star"], "a package's macro in the chain counts")
    }

    @Test func aGenericTestDefinitionSelectsTheTestsThatUseIt() throws {
        let text = "{% test positive(model, column_name) %}select 1{% endtest %}"
        let d = try decide([("tests/generic/positive.sql", .modified)], base: ["tests/generic/positive.sql": text], head: ["tests/generic/positive.sql": text.replacingOccurrences(of: "select 1", with: "select 2")])
        #expect(d.select == ["positive_a_n,resource_type:test"])
    }

    @Test(arguments: [
        ("macros/schema.sql", "{% macro generate_schema_name(c, n) %}x{% endmacro %}", "generate_schema_name, which dbt calls for every node"),
        ("macros/mat.sql", "{% materialization lazy, default %}x{% endmaterialization %}", "defines a materialization"),
        ("macros/override.sql", "{% macro duckdb__create_table_as() %}x{% endmacro %}", "an override of one of dbt's own macros"),
        ("dbt_project.yml", "name: shop", "dbt_project.yml changed"),
        ("packages.yml", "packages: []", "packages.yml changed"),
    ])
    func whatDbtUsesWithoutRecordingItIsAll(path: String, text: String, reason: String) throws {
        let d = try decide([(path, .added)], head: [path: text])
        #expect(d.scope == .all)
        #expect(d.allBecause?.contains(reason) == true, "\(d.allBecause ?? "")")
    }

    @Test func aJinjaCommentAloneChangesNothing() throws {
        let text = "{% macro inner(x) %}{{ x }}{% endmacro %}"
        let d = try decide([("macros/inner.sql", .modified)], base: ["macros/inner.sql": text], head: ["macros/inner.sql": "{# why #}\n" + text])
        #expect(d.scope == .buildOnly)
    }

    /// Found by an attack: each of these once deployed without rebuilding what it changed.
    @Test func changesThatReachNodesIndirectly() throws {
        func macro(_ path: String, _ old: String?, _ new: String, _ kind: ChangeKind = .modified) throws -> PreciseScope.Decision {
            try decide([(path, kind)], base: old.map { [path: $0] } ?? [:], head: [path: new])
        }
        // A new dispatch implementation, or a macro taking a context function's place.
        #expect(try macro("macros/impl.sql", nil, "{% macro duckdb__fmt(c) %}upper({{ c }}){% endmacro %}", .added).scope == .all)
        #expect(try macro("macros/ref.sql", nil, "{% macro ref(n) %}{{ builtins.ref(n) }}{% endmacro %}", .added).scope == .all)
        #expect(try macro("macros/again.sql", nil, "{% macro inner(x) %}2{% endmacro %}", .added).scope == .all, "a second macro of a known name")
        // A helper of generate_schema_name.
        let helper = try macro("macros/suffix.sql", "{% macro suffix() %}{{ return('') }}{% endmacro %}", "{% macro suffix() %}{{ return('_x') }}{% endmacro %}")
        #expect(helper.scope == .all && helper.allBecause?.contains("which generate_schema_name calls") == true, "\(helper)")
        // A macro a hook calls: hooks run with every build, never by selection.
        #expect(try macro("macros/mark.sql", "{% macro mark() %}1{% endmacro %}", "{% macro mark() %}2{% endmacro %}").scope == .all)
        // `{#` in a raw block is text, not a comment.
        let raw = "{% macro inner(x) %}{% raw %}'{#'{% endraw %} || 'v1' || {% raw %}'#}'{% endraw %}{% endmacro %}"
        #expect(try macro("macros/inner.sql", raw, raw.replacingOccurrences(of: "v1", with: "v2")).select == ["a", "b", "c"])
        // An ephemeral model is inlined: its children are what runs.
        let eph = try macro("macros/eph_fmt.sql", "{% macro eph_fmt() %}1{% endmacro %}", "{% macro eph_fmt() %}2{% endmacro %}")
        #expect(eph.select == ["eph+"])
    }

    @Test func sourcesDocsBlocksAndPropertiesEverywhere() throws {
        let sources = "version: 2\nsources:\n  - name: raw_db\n    tables:\n      - name: orders\n"
        let d = try decide([("models/sources.yml", .modified)], base: ["models/sources.yml": sources],
                           head: ["models/sources.yml": sources.replacingOccurrences(of: "- name: orders", with: "- name: orders\n        identifier: orders_v2")])
        #expect(d.select == ["source:raw_db+1"], "its tests and the models that read it")
        // A docs block may reach the warehouse through a node that persists docs (b does).
        #expect(try decide([("models/docs.md", .modified)]).scope == .all)
        // Properties in a seeds folder (column_types) and in analyses count like any other.
        let seeds = "version: 2\nseeds:\n  - name: raw\n    config:\n      column_types: {id: integer}\n"
        let seed = try decide([("seeds/seeds.yml", .modified)], base: ["seeds/seeds.yml": seeds],
                              head: ["seeds/seeds.yml": seeds.replacingOccurrences(of: "integer", with: "bigint")])
        #expect(seed.select == ["raw,resource_type:seed"])
        let analyses = try decide([("analyses/props.yml", .added)], head: ["analyses/props.yml": "models:\n  - name: a\n    config: {materialized: view}\n"])
        #expect(analyses.select == ["a"])
        // YAML that dbt never reads (CI workflows) is nothing to it.
        #expect(try decide([(".github/workflows/ci.yml", .modified)], base: [".github/workflows/ci.yml": "jobs: {a: 1}"],
                           head: [".github/workflows/ci.yml": "jobs: {a: 2}"]).scope == .buildOnly)
        // A plain test on the node itself (no column): dbt's name for it is not predictable, so its node's tests.
        let nodeTest = try decide([("models/schema.yml", .modified)], base: ["models/schema.yml": Self.schema],
                                  head: ["models/schema.yml": Self.schema.replacingOccurrences(of: "  - name: a\n", with: "  - name: a\n    data_tests: [has_rows]\n")])
        #expect(nodeTest.select == ["a+1,resource_type:test"])
    }

    @Test func aLocalPackageIsCodeLikeTheProjectsMacros() {
        let packages = "packages:\n  - local: shared_pkg\n  - package: dbt-labs/dbt_utils\n    version: 1.0.0\n  - local: \"../outside\"\n"
        #expect(Categorizer.localPackages(in: packages) == ["shared_pkg", "../outside"])
        let categorizer = Categorizer(projectDir: "", paths: .defaults, localPackages: Categorizer.localPackages(in: packages))
        #expect(categorizer.category(of: "shared_pkg/macros/double.sql") == .macro, "so paths mode builds all, and precise mode too (its macros are not the project's)")
        #expect(categorizer.category(of: "shared_pkg_other/x.sql") == .other)
    }

    @Test func anUnknownMacroFileIsAllAndANewUncalledMacroIsNothing() throws {
        let d = try decide([("macros/other.sql", .modified)], base: ["macros/other.sql": "{% macro other() %}1{% endmacro %}"],
                           head: ["macros/other.sql": "{% macro other() %}2{% endmacro %}"])
        #expect(d.scope == .all && d.allBecause?.contains("does not say which macros it defines") == true)
        let added = try decide([("macros/new.sql", .added)], head: ["macros/new.sql": "{% macro new_one() %}1{% endmacro %}"])
        #expect(added.scope == .buildOnly)
    }

    @Test func propertiesFilesCountByMeaning() throws {
        let path = "models/schema.yml"
        func run(_ head: String) throws -> PreciseScope.Decision {
            try decide([(path, .modified)], base: [path: Self.schema], head: [path: head])
        }
        // Reordered, requoted, commented: nothing.
        #expect(try run("# hi\nmodels:\n  - name: b\n    description: 'B.'\n  - name: a\n    columns:\n      - name: n\n        data_tests: ['positive']\n    description: A.\nversion: 2\n").scope == .buildOnly)
        // A description: nothing for a (no persist_docs), the model for b (persist_docs).
        #expect(try run(Self.schema.replacingOccurrences(of: "description: A.", with: "description: All of A.")).scope == .buildOnly)
        #expect(try run(Self.schema.replacingOccurrences(of: "description: B.", with: "description: All of B.")).select == ["b"])
        // Tests only: the new test by the name dbt gives it; one with arguments, every test of the node.
        let tests = try run(Self.schema.replacingOccurrences(of: "data_tests: [positive]", with: "data_tests: [positive, not_null]"))
        #expect(tests.select == ["not_null_a_n,resource_type:test"])
        #expect(tests.reasons["not_null_a_n,resource_type:test"] == ["tests defined in models/schema.yml"])
        let withArguments = try run(Self.schema.replacingOccurrences(of: "data_tests: [positive]", with: "data_tests: [positive, {accepted_values: {values: [1]}}]"))
        #expect(withArguments.select == ["a+1,resource_type:test"])
        // A new column with nothing but a test changes no build: just the test.
        let column = try run(Self.schema.replacingOccurrences(of: "    description: B.", with: "    description: B.\n    columns:\n      - name: m\n        data_tests: [unique]\n"))
        #expect(column.select == ["b"], "b persists docs, so any change to its entry counts")
        let columnOfA = try run(Self.schema.replacingOccurrences(of: "      - name: n\n", with: "      - name: m\n        data_tests: [unique]\n      - name: n\n"))
        #expect(columnOfA.select == ["unique_a_m,resource_type:test"])
        // A config: the node.
        let config = try run(Self.schema.replacingOccurrences(of: "  - name: a\n", with: "  - name: a\n    config: {materialized: table}\n"))
        #expect(config.select == ["a"] && config.reasons["a"] == ["defined in models/schema.yml"])
        // What dagctl does not map, and what is not YAML.
        #expect(try run(Self.schema + "\nexposures:\n  - name: dash\n    type: dashboard\n").allBecause?.contains("'exposures' entry 'dash'") == true)
        #expect(try run("models: [").allBecause?.contains("cannot be compared") == true)
        #expect(try run("a: &a [*a, *a]").scope == .all, "a hostile file is bounded and refused, never expanded")
    }

    @Test func seedsSnapshotsAndSingularTestsSelectThemselves() throws {
        #expect(try decide([("seeds/raw.csv", .modified)]).select == ["raw,resource_type:seed"])
        #expect(try decide([("seeds/raw.csv", .modified)], downstream: true).select == ["raw+"], "select_downstream takes the children")
        #expect(try decide([("seeds/new_one.csv", .added)]).select == ["new_one,resource_type:seed"])
        #expect(try decide([("tests/assert_x.sql", .added)], head: ["tests/assert_x.sql": "select 1"]).select == ["assert_x,resource_type:test"])
        let snapshot = try decide([("snapshots/more.sql", .added)], head: ["snapshots/more.sql": "{% snapshot orders_snapshot %}select 1{% endsnapshot %}"])
        #expect(snapshot.select == ["orders_snapshot,resource_type:snapshot"])
        #expect(try decide([("seeds/raw.csv", .deleted)]).scope == .buildOnly)
    }

    @Test func namesDbtCannotSelectExactlyAreAll() throws {
        let d = try decide([("seeds/we ird.csv", .added)])
        #expect(d.scope == .all && d.allBecause?.contains("cannot be passed to dbt --select exactly") == true)
    }

    @Test func aManifestThatIsNotOneIsRefused() {
        #expect(throws: DependencyIndex.Invalid.self) { try DependencyIndex.build(manifest: Data("[]".utf8), commit: "") }
        #expect(throws: DependencyIndex.Invalid.self) { try DependencyIndex.build(manifest: Data("{\"nodes\": 3}".utf8), commit: "") }
    }
}
