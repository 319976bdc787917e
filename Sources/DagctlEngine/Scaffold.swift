import DagctlGit
import DagctlSpec
import Foundation

/// `dagctl init`: what a team needs to start, written next to what it has and never over it —
/// `.dagctl/config.yaml` in the repository's work tree (its project folder found at HEAD), and a
/// desired-state directory with the recent commit authors as commented-out members, an unprotected
/// `dev`, a protected `prod` and, for dbt, a profiles stub.
public struct Scaffold {
    public let repo: GitRepository
    public let desired: String

    public init(repo: GitRepository, desired: String) {
        self.repo = repo
        self.desired = desired
    }

    public struct Outcome {
        public var kind: ProjectConfig.Kind
        public var projectDir: String
        /// (path, written) in the order looked at; not written means it existed and was kept.
        public var files: [(path: String, written: Bool)] = []
        public var notes: [String] = []
        /// Member names suggested for prod's allowlist (from the authors).
        public var approvers: [String] = []
    }

    public func run(kind wanted: ProjectConfig.Kind?) throws -> Outcome {
        guard let workTree = repo.workTree else { throw EngineError("\(repo.path) is a bare repository; run init in a clone with a work tree") }
        let head = try repo.headCommit()
        let (kind, projectDir, notes) = try detect(wanted, at: head)
        var outcome = Outcome(kind: kind, projectDir: projectDir, notes: notes)
        // One person may commit under several emails: grouped by name, each email kept.
        var authors: [(name: String, emails: [String])] = []
        for author in try repo.recentAuthors(from: head, limit: 200) {
            if let i = authors.firstIndex(where: { $0.name.lowercased() == author.name.lowercased() }) {
                authors[i].emails.append(author.email)
            } else if authors.count < 8 {
                authors.append((author.name, [author.email]))
            }
        }
        var names: [String] = []
        var members = """
            # The team: who may approve plans, matched to commits by email. Uncomment the people who deploy,
            # give them the roles your environments require, and add each one's ssh public key
            # (keys: ["ssh-ed25519 AAAA… name@laptop"]) so they can sign approvals for prod.
            # These are the repository's recent commit authors:
            members:

            """
        for author in authors {
            let name = Self.memberName(author.name, email: author.emails[0], taken: Set(names))
            names.append(name)
            // Quoted: an email may hold '#', ',' or ']' (git does not check them).
            let emails = author.emails.map(Self.quoted).joined(separator: ", ")
            members += "#  - name: \(name)\n#    emails: [\(emails)]\n#    roles: [deployer]\n"
        }
        if authors.isEmpty { members += "#  - name: your-name\n#    emails: [you@example.com]\n#    roles: [deployer]\n" }
        outcome.approvers = Array((names.isEmpty ? ["your-name"] : names).prefix(2))
        let branch = repo.currentBranch ?? "main"

        let dagctlDir = (workTree as NSString).appendingPathComponent(".dagctl")
        var config = kind == .sqlmesh ? "# dagctl: a SQLMesh project; SQLMesh's own state decides when a plan is due.\nkind: sqlmesh\n"
            : "# dagctl: bump the version to ask for a new plan (each environment plans it and deploys it once approved).\nversion: 1\n"
        config += projectDir.isEmpty ? "project_dir: .\n" : "project_dir: \(projectDir)\n"
        config += "# requirements: requirements.txt   # the pip requirements of a build (default: requirements.txt if there is one)\n"
        config += "# requirements: none               # no virtualenv: \(kind == .sqlmesh ? "sqlmesh" : "dbt") from PATH\n"
        try write(config, to: "\(dagctlDir)/config.yaml", &outcome)

        try write(members, to: "\(desired)/members.yaml", &outcome)
        let dbtTarget = { (name: String) in kind == .dbt ? "target: \(name)          # the dbt target in profiles/profiles.yml\n" : "sqlmesh_environment: \(name)\n" }
        try write("""
            # Development: every new plan on \(branch) is deployed without approval.
            ref: \(branch)
            required_approvals: 0
            \(dbtTarget("dev"))backend:
              kind: local

            """, to: "\(desired)/environments/dev.yaml", &outcome)
        try write("""
            # Production: a plan runs only after a signed approval from someone on the allowlist
            # (not the person who asked for it).
            ref: \(branch)
            protected: true
            allowlist: [\(outcome.approvers.joined(separator: ", "))]
            required_approvals: 1
            require_signature: true
            \(dbtTarget("prod"))backend:
              kind: local

            """, to: "\(desired)/environments/prod.yaml", &outcome)
        if kind == .dbt {
            let profile = try dbtProfileName(at: head, projectDir: projectDir) ?? "default"
            try write("""
                # dbt profiles for the environments' targets (dbt runs with --profiles-dir pointing here).
                # Replace the outputs with your warehouse's; credentials belong in environment variables
                # ({{ env_var('…') }}), set in the environments' `env:` or where dagctl runs.
                \(profile):
                  target: dev
                  outputs:
                    dev:
                      type: duckdb
                      path: \(profile)_dev.duckdb
                    prod:
                      type: duckdb
                      path: \(profile)_prod.duckdb

                """, to: "\(desired)/profiles/profiles.yml", &outcome)
        }
        return outcome
    }

    /// The project's kind and folder: where dbt_project.yml (or SQLMesh's config) is, shallowest first.
    func detect(_ wanted: ProjectConfig.Kind?, at head: ObjectID) throws -> (ProjectConfig.Kind, String, [String]) {
        var notes: [String] = []
        func folder(_ path: String) -> String { (path as NSString).deletingLastPathComponent }
        let dbt = try repo.files(named: "dbt_project.yml", at: head)
        let sqlmesh = try (["config.yaml", "config.yml", "config.py"].flatMap { try repo.files(named: $0, at: head) })
            .filter { path in (try? repo.folderNames(under: folder(path), at: head).contains("models")) == true && !path.hasPrefix(".") }
            .sorted { $0.split(separator: "/").count < $1.split(separator: "/").count }
        let kind = wanted ?? (dbt.isEmpty && !sqlmesh.isEmpty ? .sqlmesh : .dbt)
        let candidates = kind == .dbt ? dbt : sqlmesh
        guard let first = candidates.first else {
            throw EngineError("no \(kind == .dbt ? "dbt_project.yml" : "SQLMesh config (config.yaml or config.py beside a models/ folder)") in the repository's HEAD commit; commit the project first, or pass --kind")
        }
        if candidates.count > 1 {
            notes.append("found \(candidates.count) projects (\(candidates.prefix(4).joined(separator: ", "))); chose \(first): change project_dir in .dagctl/config.yaml if that is not the one")
        }
        return (kind, folder(first), notes)
    }

    func dbtProfileName(at head: ObjectID, projectDir: String) throws -> String? {
        let path = projectDir.isEmpty ? "dbt_project.yml" : "\(projectDir)/dbt_project.yml"
        guard let data = try repo.file(path, at: head), let text = String(data: data, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("profile:") {
            let value = line.dropFirst("profile:".count).trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            if !value.isEmpty, value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { return value }
        }
        return nil
    }

    /// A member name (the pattern environment and member names follow) from an author's name or email.
    static func memberName(_ name: String, email: String, taken: Set<String>) -> String {
        func slug(_ s: String) -> String {
            let lowered = s.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "-" }
            return String(lowered).split(separator: "-").joined(separator: "-")
        }
        var base = slug(name.split(separator: " ").first.map(String.init) ?? "")
        if base.isEmpty || !Names.isValid(base) { base = slug(String(email.prefix { $0 != "@" })) }
        if base.isEmpty || !Names.isValid(String(base.prefix(30))) { base = "member" }
        base = String(base.prefix(28)).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        var candidate = base, n = 2
        while taken.contains(candidate) { candidate = "\(base)-\(n)"; n += 1 }
        return candidate
    }

    /// A YAML double-quoted scalar (JSON's string syntax, which YAML reads the same).
    static func quoted(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self).dropFirst().dropLast().description
    }

    /// Writes a file unless something is there already (nothing is ever overwritten).
    func write(_ text: String, to path: String, _ outcome: inout Outcome) throws {
        if FileManager.default.fileExists(atPath: path) {
            outcome.files.append((path, false))
            return
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw EngineError("cannot write \(path)") }
        outcome.files.append((path, true))
    }
}
