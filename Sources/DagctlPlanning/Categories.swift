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

    public init(projectDir: String, paths: DbtPaths) {
        self.projectDir = RelativePath.normalize(projectDir)
        self.paths = paths
    }

    /// `path` relative to the project folder, or nil when it lies outside it.
    public func projectRelative(_ path: String) -> String? {
        if projectDir.isEmpty { return path }
        guard path.hasPrefix(projectDir + "/") else { return nil }
        return String(path.dropFirst(projectDir.count + 1))
    }

    public func category(of path: String) -> Category {
        guard let rel = projectRelative(path) else { return .other }
        if Self.configFiles.contains(rel) { return .config }
        let ext = Self.fileExtension(rel)
        if Self.isUnder(rel, paths.modelPaths) {
            if ext == "sql" || ext == "py" { return .model }
            if ext == "yml" || ext == "yaml" { return .test }
            return .other
        }
        if Self.isUnder(rel, paths.testPaths) { return ["sql", "yml", "yaml"].contains(ext) ? .test : .other }
        if Self.isUnder(rel, paths.macroPaths) { return .macro }
        if Self.isUnder(rel, paths.seedPaths) { return ext == "csv" ? .seed : .other }
        if Self.isUnder(rel, paths.snapshotPaths) { return .snapshot }
        return .other
    }

    /// The dbt model name of a model file: its file name without the extension.
    public static func modelName(_ path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = file.lastIndex(of: ".") else { return file }
        return String(file[..<dot])
    }

    static func fileExtension(_ path: String) -> String {
        let file = path.split(separator: "/").last ?? Substring(path)
        guard let dot = file.lastIndex(of: ".") else { return "" }
        return String(file[file.index(after: dot)...])
    }

    static func isUnder(_ path: String, _ folders: [String]) -> Bool {
        folders.contains { $0.isEmpty || path.hasPrefix($0 + "/") }
    }
}
