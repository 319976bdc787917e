import Foundation
import Yams

/// `.dagctl/config.yaml` in the project's repository, read from a commit (never the work tree).
public struct ProjectConfig: Sendable, Equatable {
    public static let path = ".dagctl/config.yaml"

    /// What the project is, and so what kind its plans are.
    public enum Kind: String, Sendable, Equatable, CaseIterable { case dbt, sqlmesh }

    public var kind: Kind
    /// dbt projects: the only trigger for a new plan. SQLMesh projects have none (SQLMesh's own state
    /// is the trigger).
    public var version: Version?
    /// Folder holding dbt_project.yml (or SQLMesh's config), relative to the repo root, normalized ("" is the root).
    public var projectDir: String
    /// Requirements file relative to the repo root; `nil` when not set (the build then looks for
    /// `requirements.txt` at the repository's root).
    public var requirements: String?
    /// `requirements: none`: no virtualenv; the tool comes from PATH even where a requirements.txt exists.
    public var toolFromPATH = false
    public var dockerfile: String

    public init(kind: Kind = .dbt, version: Version?, projectDir: String = "", requirements: String? = nil, dockerfile: String = "Dockerfile") {
        self.kind = kind
        self.version = version
        self.projectDir = projectDir
        self.requirements = requirements
        self.dockerfile = dockerfile
    }

    public static func parse(_ text: String, file: String) throws(SpecIssues) -> ProjectConfig {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        let kindText = doc.string("kind")
        let kind = kindText.map { Kind(rawValue: $0) } ?? .dbt
        if let kindText, kind == nil { doc.invalid("kind", "'\(excerpt(kindText))' is not a project kind; use dbt or sqlmesh") }
        var version: Version?
        if kind == .sqlmesh {
            if doc.has("version") {
                _ = doc.node("version")
                doc.invalid("version", "a SQLMesh project has no version: SQLMesh's own state decides when a plan is due; remove it")
            }
        } else {
            version = readVersion(doc)
        }
        func path(_ key: String) -> String? {
            guard let value = doc.string(key) else { return nil }
            if let problem = RelativePath.problem(value) { doc.invalid(key, "'\(value)' \(problem)"); return nil }
            return RelativePath.normalize(value)
        }
        let projectDir = path("project_dir") ?? ""
        let toolFromPATH = doc.has("requirements") && MappingReader.stringValue(doc.node("requirements")!) == "none"
        let requirements = toolFromPATH ? nil : path("requirements")
        let dockerfile = path("dockerfile") ?? "Dockerfile"
        doc.finish()
        guard log.isEmpty, let kind, kind == .sqlmesh || version != nil else { throw SpecIssues(log.issues) }
        var config = ProjectConfig(kind: kind, version: version, projectDir: projectDir, requirements: requirements, dockerfile: dockerfile)
        config.toolFromPATH = toolFromPATH
        return config
    }

    /// The requirements file of an export of the project at `root`, or nil for the tool from PATH:
    /// `requirements:` when set, else `requirements.txt` at the root if it exists; `none` means nil.
    public func requirementsFile(in root: String) -> String? {
        if toolFromPATH { return nil }
        if let requirements { return "\(root)/\(requirements)" }
        let fallback = "\(root)/requirements.txt"
        return FileManager.default.fileExists(atPath: fallback) ? fallback : nil
    }

    private static func readVersion(_ doc: MappingReader) -> Version? {
        guard let node = doc.node("version") else {
            doc.invalid("version", "required key is missing; add e.g. 'version: 1'")
            return nil
        }
        if case .scalar(let s) = node, [Tag.Name.int, .str, .float].contains(MappingReader.tag(node)) {
            if let v = Version(s.string) { return v }
            if let problem = Version.boundsProblem(s.string) { doc.invalid("version", problem); return nil }
        }
        doc.invalid("version", "expected an integer >= 1 or a dotted number like \"1.4.2\", found \(MappingReader.kind(of: node))")
        return nil
    }
}
