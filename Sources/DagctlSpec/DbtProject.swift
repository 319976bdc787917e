import Yams

/// The path settings of `dbt_project.yml` that decide how a changed file is categorized.
/// Only these keys are read: the rest of the file belongs to dbt.
public struct DbtPaths: Sendable, Equatable {
    public var modelPaths: [String]
    public var testPaths: [String]
    public var macroPaths: [String]
    public var seedPaths: [String]
    public var snapshotPaths: [String]

    public static let defaults = DbtPaths(modelPaths: ["models"], testPaths: ["tests"], macroPaths: ["macros"],
                                          seedPaths: ["seeds"], snapshotPaths: ["snapshots"])

    public init(modelPaths: [String], testPaths: [String], macroPaths: [String], seedPaths: [String], snapshotPaths: [String]) {
        self.modelPaths = modelPaths.map(RelativePath.normalize)
        self.testPaths = testPaths.map(RelativePath.normalize)
        self.macroPaths = macroPaths.map(RelativePath.normalize)
        self.seedPaths = seedPaths.map(RelativePath.normalize)
        self.snapshotPaths = snapshotPaths.map(RelativePath.normalize)
    }

    /// Reads the path settings, with the older names `source-paths` (models) and `data-paths` (seeds)
    /// and dbt's defaults where a setting is absent.
    public static func parse(_ text: String, file: String) throws(SpecIssues) -> DbtPaths {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        func paths(_ key: String, _ old: String? = nil, _ fallback: [String]) -> [String] {
            if doc.has(key) { return doc.strings(key) ?? fallback }
            if let old, doc.has(old) { return doc.strings(old) ?? fallback }
            return fallback
        }
        let result = DbtPaths(
            modelPaths: paths("model-paths", "source-paths", defaults.modelPaths),
            testPaths: paths("test-paths", nil, defaults.testPaths),
            macroPaths: paths("macro-paths", nil, defaults.macroPaths),
            seedPaths: paths("seed-paths", "data-paths", defaults.seedPaths),
            snapshotPaths: paths("snapshot-paths", nil, defaults.snapshotPaths))
        guard log.isEmpty else { throw SpecIssues(log.issues) }
        return result
    }
}
