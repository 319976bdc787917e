import DagctlGit
import DagctlPlanning
import DagctlSpec
import Foundation

/// Explains plans from a repository: reads the version and dbt paths at a commit, diffs it against
/// the base, and applies the pure planning rules. The git side of SPEC §3.
public struct Explainer {
    public let repo: GitRepository
    public let members: Members

    public init(repo: GitRepository, members: Members) {
        self.repo = repo
        self.members = members
    }

    /// `.dagctl/config.yaml` at `commit`; `label` (a ref name) makes errors read like `main:.dagctl/config.yaml:3`.
    public func config(at commit: ObjectID, label: String) throws -> ProjectConfig {
        let file = "\(label):\(ProjectConfig.path)"
        guard let data = try repo.file(ProjectConfig.path, at: commit) else {
            throw EngineError("\(file) does not exist (commit \(commit.short)); add it with a version, e.g. 'version: 1'")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw EngineError("\(file) is not UTF-8 text") }
        do { return try ProjectConfig.parse(text, file: file) } catch { throw EngineError(error.description) }
    }

    /// Explains the plan for `env` at `commit` against `base` (the last successful deployment, or nil).
    public func explain(env: EnvironmentSpec, commit: ObjectID, config: ProjectConfig, base: String?,
                        label: String) throws -> Plan {
        let dbtFile = config.projectDir.isEmpty ? "dbt_project.yml" : "\(config.projectDir)/dbt_project.yml"
        guard let dbtData = try repo.file(dbtFile, at: commit) else {
            throw EngineError("\(label):\(dbtFile) does not exist (commit \(commit.short)); set project_dir in \(ProjectConfig.path) to the folder holding dbt_project.yml")
        }
        let paths: DbtPaths
        do { paths = try DbtPaths.parse(String(decoding: dbtData, as: UTF8.self), file: "\(label):\(dbtFile)") } catch {
            throw EngineError(error.description)
        }
        let categorizer = Categorizer(projectDir: config.projectDir, paths: paths)

        let situation: BaseSituation
        var baseCommit: ObjectID?
        if let base {
            let id = ObjectID(hex: base)
            if isFullSHA(base) && repo.hasCommit(id) {
                situation = .known
                baseCommit = id
            } else {
                situation = .missing(base)
            }
        } else {
            situation = .firstDeploy
        }

        let changes: [Change]
        if case .missing = situation {
            changes = []
        } else {
            changes = try repo.diff(from: baseCommit, to: commit).map {
                Explain.categorize(path: $0.path, oldPath: $0.oldPath, kind: ChangeKind(rawValue: $0.kind.rawValue)!, using: categorizer)
            }
        }
        let decision = Explain.scope(of: changes, base: situation, categorizer: categorizer, selectDownstream: env.selectDownstream)
        return Plan(id: Plan.id(environment: env.name, version: config.version, commit: commit.hex),
                    environment: env.name, version: config.version.text, commit: commit.hex, base: base,
                    author: try author(from: baseCommit, to: commit), createdAt: nil, changes: changes,
                    scope: decision.scope, select: decision.select, warnings: decision.warnings)
    }

    /// The member who authored the newest commit in `base..commit` that changed the version.
    func author(from base: ObjectID?, to commit: ObjectID) throws -> String? {
        func version(_ data: Data?) -> Version? {
            guard let data, let text = String(data: data, encoding: .utf8) else { return nil }
            return try? ProjectConfig.parse(text, file: ProjectConfig.path).version
        }
        let bump = try repo.newestCommit(changing: ProjectConfig.path, from: base, to: commit) { old, new in
            version(old) != version(new)
        }
        guard let bump else { return nil }
        return members.member(withEmail: bump.authorEmail)?.name
    }
}

public struct EngineError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
