import Yams

/// The path settings of `dbt_project.yml` that decide how a changed file is categorized.
/// Only these keys are read: the rest of the file belongs to dbt.
public struct DbtPaths: Sendable, Equatable {
    public var modelPaths: [String]
    public var testPaths: [String]
    public var macroPaths: [String]
    public var seedPaths: [String]
    public var snapshotPaths: [String]
    /// The project's `name`, which dbt's selectors also match.
    public var projectName: String?

    public static let defaults = DbtPaths(modelPaths: ["models"], testPaths: ["tests"], macroPaths: ["macros"],
                                          seedPaths: ["seeds"], snapshotPaths: ["snapshots"])

    public init(modelPaths: [String], testPaths: [String], macroPaths: [String], seedPaths: [String], snapshotPaths: [String]) {
        self.modelPaths = modelPaths.map(RelativePath.normalize)
        self.testPaths = testPaths.map(RelativePath.normalize)
        self.macroPaths = macroPaths.map(RelativePath.normalize)
        self.seedPaths = seedPaths.map(RelativePath.normalize)
        self.snapshotPaths = snapshotPaths.map(RelativePath.normalize)
    }

    /// Why a path setting may lead outside the project, or nil. dbt renders Jinja in these settings
    /// before it uses them, so a path with `{{ }}` or `{% %}` could become anything (`{{ '..' }}`): it is
    /// refused rather than trusted.
    static func pathProblem(_ path: String) -> String? {
        if path.contains("{{") || path.contains("{%") {
            return "'\(excerpt(path))' is computed by dbt (Jinja), so dagctl cannot tell where it leads; write the path out literally"
        }
        return RelativePath.problem(path).map { "'\(excerpt(path))' \($0); dbt paths stay inside the project folder" }
    }

    /// Reads the path settings, with the older names `source-paths` (models) and `data-paths` (seeds)
    /// and dbt's defaults where a setting is absent.
    public static func parse(_ text: String, file: String) throws(SpecIssues) -> DbtPaths {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        // Every path setting that is present is checked, the older names too even where a newer one
        // wins: a path that leaves the project (absolute, or with '..') is an error at its line.
        let keys = ["model-paths", "source-paths", "test-paths", "macro-paths", "seed-paths", "data-paths", "snapshot-paths"]
        var read: [String: [String]] = [:]
        for key in keys where doc.has(key) {
            read[key] = doc.strings(key) { path in Self.pathProblem(path) }
        }
        func paths(_ key: String, _ old: String? = nil, _ fallback: [String]) -> [String] {
            read[key] ?? old.flatMap { read[$0] } ?? fallback
        }
        let result = DbtPaths(
            modelPaths: paths("model-paths", "source-paths", defaults.modelPaths),
            testPaths: paths("test-paths", nil, defaults.testPaths),
            macroPaths: paths("macro-paths", nil, defaults.macroPaths),
            seedPaths: paths("seed-paths", "data-paths", defaults.seedPaths),
            snapshotPaths: paths("snapshot-paths", nil, defaults.snapshotPaths))
        // Where dbt writes (packages, and target/logs where dagctl does not set them) and what else it
        // reads must stay inside the project too.
        for key in ["packages-install-path", "target-path", "log-path"] where doc.has(key) {
            if let path = doc.string(key), let problem = Self.pathProblem(path) { doc.invalid(key, problem) }
        }
        for key in ["docs-paths", "analysis-paths", "asset-paths"] where doc.has(key) {
            _ = doc.strings(key) { path in Self.pathProblem(path) }
        }
        guard log.isEmpty else { throw SpecIssues(log.issues) }
        var named = result
        named.projectName = doc.string("name")
        return named
    }
}
