import Foundation
import DagctlSpec

/// What kind of dbt file a changed path is (SPEC §3).
public enum Category: String, Codable, Sendable, CaseIterable {
    case model, test, macro, seed, snapshot, config, other

    /// Changes of these categories can affect any model, so they make a plan build everything.
    public var forcesFullBuild: Bool {
        switch self {
        case .test, .macro, .seed, .snapshot, .config: return true
        case .model, .other: return false
        }
    }
}

/// Puts repository paths into categories using the path settings of `dbt_project.yml`.
public struct Categorizer: Sendable {
    public static let configFiles: Set<String> = ["dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml",
                                                  "package-lock.yml", "selectors.yml"]
    public var projectDir: String
    public var paths: DbtPaths
    /// Folders of `local:` packages (relative to the project folder): dbt installs their macros and
    /// models like the project's own.
    public var localPackages: [String] = []
    // Folder prefixes with their trailing slash, computed once: categorizing runs for every changed path.
    private let projectPrefix: String
    private let modelFolders, testFolders, macroFolders, seedFolders, snapshotFolders: [String]

    public init(projectDir: String, paths: DbtPaths, localPackages: [String] = []) {
        self.projectDir = RelativePath.normalize(projectDir)
        self.paths = paths
        self.localPackages = localPackages.map { RelativePath.normalize($0) }.filter { !$0.isEmpty && !$0.hasPrefix("..") }
        projectPrefix = self.projectDir.isEmpty ? "" : self.projectDir + "/"
        func prefixes(_ folders: [String]) -> [String] { folders.map { $0.isEmpty ? "" : $0 + "/" } }
        modelFolders = prefixes(paths.modelPaths)
        testFolders = prefixes(paths.testPaths)
        macroFolders = prefixes(paths.macroPaths)
        seedFolders = prefixes(paths.seedPaths)
        snapshotFolders = prefixes(paths.snapshotPaths)
    }

    /// `path` relative to the project folder, or nil when it lies outside it.
    public func projectRelative(_ path: String) -> Substring? {
        guard path.hasPrefix(projectPrefix) else { return nil }
        return path.dropFirst(projectPrefix.count)
    }

    public func category(of path: String) -> Category {
        guard let rel = projectRelative(path) else { return .other }
        if !rel.contains("/") && Self.configFiles.contains(String(rel)) { return .config }
        let ext = Self.fileExtension(rel)
        // A local package's files are code dbt runs like the project's macros.
        if localPackages.contains(where: { rel.hasPrefix($0 + "/") }) { return .macro }
        let properties = ext == "yml" || ext == "yaml"
        if Self.isUnder(rel, modelFolders) {
            if ext == "sql" || ext == "py" { return .model }
            if ext == "yml" || ext == "yaml" { return .test }
            return .other
        }
        if Self.isUnder(rel, testFolders) { return ext == "sql" || ext == "yml" || ext == "yaml" ? .test : .other }
        if Self.isUnder(rel, macroFolders) { return .macro }
        if Self.isUnder(rel, seedFolders) { return ext == "csv" ? .seed : properties ? .test : .other }
        // dbt reads properties files in analysis folders too (they may describe models).
        if properties && (rel.hasPrefix("analyses/") || rel.hasPrefix("analysis/")) { return .test }
        if Self.isUnder(rel, snapshotFolders) { return .snapshot }
        return .other
    }

    /// The dbt model name of a model file: its file name without the extension.
    /// Whether dbt reads `path` at all: anything in the project's resource, analysis and local
    /// package folders, or one of its config files.
    public func dbtReads(_ path: String) -> Bool {
        guard let rel = projectRelative(path) else { return false }
        if category(of: path) != .other { return true }
        let folders = modelFolders + testFolders + macroFolders + seedFolders + snapshotFolders + ["analyses/", "analysis/"]
            + localPackages.map { $0 + "/" }
        return Self.isUnder(rel, folders)
    }

    /// The `local:` package folders a `packages.yml` or `dependencies.yml` names.
    public static func localPackages(in text: String) -> [String] {
        guard let regex = try? NSRegularExpression(pattern: "^\\s*-?\\s*local:\\s*[\"']?([^\"'\\s#]+)", options: [.anchorsMatchLines]) else { return [] }
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    public static func modelName(_ path: String) -> String {
        let file = fileName(Substring(path))
        guard let dot = file.utf8.lastIndex(of: UInt8(ascii: ".")) else { return String(file) }
        return String(file[..<dot])
    }

    static func fileName(_ path: Substring) -> Substring {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return path[path.utf8.index(after: slash)...]
    }

    static func fileExtension(_ path: Substring) -> Substring {
        let file = fileName(path)
        guard let dot = file.utf8.lastIndex(of: UInt8(ascii: ".")) else { return "" }
        return file[file.utf8.index(after: dot)...]
    }

    static func isUnder(_ path: Substring, _ prefixes: [String]) -> Bool {
        prefixes.contains { path.hasPrefix($0) }
    }
}
