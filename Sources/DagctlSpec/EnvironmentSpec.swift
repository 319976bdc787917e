import Foundation
/// `environments/<env>.yaml`: where an environment's plans come from and who may approve them.
public struct EnvironmentSpec: Sendable, Equatable {
    public var name: String
    public var file: String
    public var ref: String
    public var protected: Bool
    public var allowlist: [String]
    public var requiredRole: String?
    public var requiredApprovals: Int
    public var requireSignature: Bool
    public var target: String
    /// Relative to the desired-state directory; `nil` means `profiles/` there if it exists.
    public var profilesDir: String?
    public var env: [String: String]
    public var selectDownstream: Bool
    /// dbt projects: how a plan's scope is found (SPEC §3 path rules, or §11 precise).
    public var scopeMode: ScopeMode = .paths
    /// `suspend: true`: plans are explained and judged, but nothing new is built or run.
    public var suspended = false
    /// `windows:`: when an approved plan may start (SPEC §10).
    public var windows: [DeployWindow] = []
    public var backend: Backend
    /// SQLMesh projects: the SQLMesh environment to plan and apply, as written (nil: the default).
    public var sqlmeshEnvironmentSetting: String?
    /// SQLMesh projects: the gateway to use, if not the project's default.
    public var gateway: String?
    /// Keys that belong to one kind of project only, where they are written: the plan kind reports them
    /// as errors (with this line) once the project's kind is known.
    public var kindSpecificKeys: [String: Int] = [:]

    public enum ScopeMode: String, Sendable, Equatable { case paths, precise }

    /// The SQLMesh environment: as set, else `prod` for an environment named prod, else its name.
    public var sqlmeshEnvironment: String { sqlmeshEnvironmentSetting ?? name }

    public enum Backend: Sendable, Equatable {
        /// Processes on this machine; `timeoutSeconds` bounds each phase (none by default).
        case local(timeoutSeconds: Int? = nil)
        case kubernetes(KubernetesBackend)

        public static let local = Backend.local()
    }

    public struct KubernetesBackend: Sendable, Equatable {
        public var namespace: String
        public var image: String
        public var context: String
        public var kubectlContext: String?
        public var serviceAccount: String?
        public var secretEnv: [String]
        public var kanikoImage: String
        public var timeoutSeconds: Int
        /// A `kubernetes.io/dockerconfigjson` Secret: Kaniko pushes with it, the run Job pulls with it.
        public var registrySecret: String?
        /// SQLMesh projects: the image of the init container that clones the repository at the plan's commit.
        public var gitImage: String = defaultGitImage
        /// Where `image` and `context` are written, for errors that depend on the project's kind.
        public var lines: [String: Int] = [:]

        public static let defaultKanikoImage = "gcr.io/kaniko-project/executor:v1.23.2"
        public static let defaultGitImage = "alpine/git"

        /// Whether `image` names a tag or digest (`repo:tag`, `repo@sha256:…`).
        public var imageHasTag: Bool {
            image.contains("@") || (image.split(separator: "/").last?.contains(":") ?? false)
        }
    }

    public init(name: String, file: String = "", ref: String, protected: Bool = false, allowlist: [String] = [],
                requiredRole: String? = nil, requiredApprovals: Int = 1, requireSignature: Bool? = nil,
                target: String? = nil, profilesDir: String? = nil, env: [String: String] = [:],
                selectDownstream: Bool = false, backend: Backend = .local) {
        self.name = name
        self.file = file
        self.ref = ref
        self.protected = protected
        self.allowlist = allowlist
        self.requiredRole = requiredRole
        self.requiredApprovals = requiredApprovals
        self.requireSignature = requireSignature ?? protected
        self.target = target ?? name
        self.profilesDir = profilesDir
        self.env = env
        self.selectDownstream = selectDownstream
        self.backend = backend
    }

    /// Parses one environment file. `members` (when known) lets the allowlist be checked.
    public static func parse(_ text: String, name: String, file: String, members: Set<String>?) throws(SpecIssues) -> EnvironmentSpec {
        let log = IssueLog()
        guard Names.isValid(name) else {
            throw SpecIssues([SpecIssue(file: file, message: "'\(name)' is not a valid environment name; names match \(Names.pattern)")])
        }
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        let ref = doc.string("ref", required: true)
        if let ref, !isRefName(ref) {
            doc.invalid("ref", "'\(excerpt(ref))' is not a branch, remote-tracking branch or tag name (revision expressions such as main~1, HEAD or a commit id are not refs)")
        }
        let protected = doc.bool("protected") ?? false
        let allowlist = doc.strings("allowlist") ?? []
        for who in allowlist {
            if !Names.isValid(who) { doc.invalid("allowlist", "'\(who)' is not a valid member name") }
            else if let members, !members.contains(who) { doc.invalid("allowlist", "'\(who)' is not a member in members.yaml") }
        }
        if protected && allowlist.isEmpty && !doc.has("allowlist") {
            doc.invalid("allowlist", "a protected environment needs a non-empty allowlist of members who may approve")
        } else if protected && allowlist.isEmpty {
            doc.invalid("allowlist", "must not be empty for a protected environment")
        }
        let role = doc.string("required_role")
        let approvals = doc.int("required_approvals", range: protected ? 1...100 : 0...100) ?? 1
        let signature = doc.bool("require_signature")
        let target = doc.string("target")
        if let target, target.isEmpty || target.hasPrefix("-") { doc.invalid("target", "'\(target)' is not a dbt target name") }
        var profilesDir = doc.string("profiles_dir")
        if let dir = profilesDir, let problem = RelativePath.problem(dir) {
            doc.invalid("profiles_dir", "'\(dir)' \(problem); it is relative to the desired-state directory")
            profilesDir = nil
        }
        // Values with NUL are refused by the reader (a process environment cannot hold them).
        let env = doc.stringMap("env") { name in
            isEnvironmentVariableName(name) ? nil : "'\(excerpt(name))' is not a valid environment variable name; use letters, digits and '_'"
        } ?? [:]
        let downstream = doc.bool("select_downstream") ?? false
        let suspended = doc.bool("suspend") ?? false
        var windows: [DeployWindow] = []
        for entry in doc.mappings("windows") ?? [] {
            let kindText = entry.string("kind", required: true)
            let kind = kindText.flatMap(DeployWindow.Kind.init(rawValue:))
            if let kindText, kind == nil { entry.invalid("kind", "'\(excerpt(kindText))' is not a window kind; use allow or deny") }
            var schedule: CronSchedule?
            if let text = entry.string("schedule", required: true) {
                do { schedule = try CronSchedule(text) } catch { entry.invalid("schedule", error.description) }
            }
            var duration: TimeInterval?
            if let text = entry.string("duration", required: true) {
                do { duration = try DeployWindow.duration(text) } catch { entry.invalid("duration", error.description) }
            }
            var zone = TimeZone(identifier: "UTC")!
            if let text = entry.string("timezone") {
                if let z = TimeZone(identifier: text), text.contains("/") || text == "UTC" { zone = z } else {
                    entry.invalid("timezone", "'\(excerpt(text))' is not an IANA time zone name, such as Europe/Berlin, America/New_York or UTC")
                }
            }
            entry.finish()
            if let kind, let schedule, let duration {
                windows.append(DeployWindow(kind: kind, schedule: schedule, duration: duration, timeZone: zone))
            }
        }
        var scopeMode = ScopeMode.paths
        if let text = doc.string("scope_mode") {
            if let mode = ScopeMode(rawValue: text) { scopeMode = mode } else {
                doc.invalid("scope_mode", "'\(excerpt(text))' is not a scope mode; use paths (the default: a change outside model files builds all) or precise (select what the change reaches, from the deployed manifest)")
            }
        }
        let sqlmeshEnvironment = doc.string("sqlmesh_environment")
        if let value = sqlmeshEnvironment, !isSQLMeshEnvironmentName(value) {
            doc.invalid("sqlmesh_environment", "'\(excerpt(value))' is not a SQLMesh environment name; use lower-case letters, digits and '_' (at most 64)")
        }
        let gateway = doc.string("gateway")
        if let value = gateway, !isSQLMeshEnvironmentName(value) {
            doc.invalid("gateway", "'\(excerpt(value))' is not a gateway name; use lower-case letters, digits and '_'")
        }
        let backend = parseBackend(doc)
        var kindSpecific: [String: Int] = [:]
        for key in dbtOnlyKeys + sqlmeshOnlyKeys where doc.has(key) { kindSpecific[key] = doc.line(of: key) }
        doc.finish()
        guard log.isEmpty, let ref else { throw SpecIssues(log.issues) }
        var spec = EnvironmentSpec(name: name, file: file, ref: ref, protected: protected, allowlist: allowlist,
                                   requiredRole: role, requiredApprovals: approvals, requireSignature: signature,
                                   target: target, profilesDir: profilesDir, env: env, selectDownstream: downstream,
                                   backend: backend ?? .local)
        spec.sqlmeshEnvironmentSetting = sqlmeshEnvironment
        spec.gateway = gateway
        spec.scopeMode = scopeMode
        spec.suspended = suspended
        spec.windows = windows
        spec.kindSpecificKeys = kindSpecific
        return spec
    }

    /// Keys that only a dbt project's environment takes, and only a SQLMesh project's.
    public static let dbtOnlyKeys = ["target", "select_downstream", "profiles_dir", "scope_mode"]
    public static let sqlmeshOnlyKeys = ["sqlmesh_environment", "gateway"]

    /// What a project of `kind` needs of a Kubernetes backend: dbt builds its image with Kaniko (an image
    /// repository without a tag, a Kaniko build context); SQLMesh runs on an existing image (with its
    /// tag) and clones the repository (a git URL).
    public func kubernetesProblems(for kind: ProjectConfig.Kind) -> [SpecIssue] {
        guard case .kubernetes(let k) = backend else { return [] }
        var out: [SpecIssue] = []
        func issue(_ key: String, _ message: String) {
            out.append(SpecIssue(file: file, line: k.lines[key], key: "backend.\(key)", message: message))
        }
        switch kind {
        case .dbt:
            if k.imageHasTag { issue("image", "give the image repository without a tag; the tag is derived from the plan id") }
            if !["git://", "dir://", "tar://", "gs://", "s3://"].contains(where: k.context.hasPrefix) {
                issue("context", "'\(excerpt(k.context))' is not a Kaniko build context (git://, dir://, tar://, gs:// or s3://)")
            }
        case .sqlmesh:
            if !k.imageHasTag {
                issue("image", "a SQLMesh project runs on an existing image: give it with its tag (e.g. \(excerpt(k.image)):1.4), an image holding Python and the project's sqlmesh")
            }
            if !["https://", "http://", "git://", "ssh://", "git@", "file://"].contains(where: k.context.hasPrefix) {
                issue("context", "'\(excerpt(k.context))' is not a git URL to clone the repository from (https://, ssh://, git@…, git://)")
            }
        }
        return out
    }

    /// The keys written here that a project of `kind` does not take, as file:line errors.
    public func keysNotFor(_ kind: ProjectConfig.Kind) -> [SpecIssue] {
        let foreign = kind == .sqlmesh ? Self.dbtOnlyKeys : Self.sqlmeshOnlyKeys
        let takes = kind == .sqlmesh ? "sqlmesh_environment and gateway" : "target, select_downstream, profiles_dir and scope_mode"
        return foreign.compactMap { key in
            kindSpecificKeys[key].map {
                SpecIssue(file: file, line: $0, key: key,
                          message: "does not apply to a \(kind.rawValue) project (.dagctl/config.yaml says kind: \(kind.rawValue)); its environments take \(takes): remove it")
            }
        } + kubernetesProblems(for: kind)
    }

    private static let kubernetesKeys = ["namespace", "image", "context", "kubectl_context", "service_account",
                                         "secret_env", "kaniko_image", "registry_secret", "git_image"]

    private static func parseBackend(_ doc: MappingReader) -> Backend? {
        guard let backend = doc.mapping("backend") else { return .local }
        let kind = backend.string("kind", required: true)
        switch kind {
        case "local":
            for key in kubernetesKeys where backend.has(key) {
                _ = backend.node(key)
                backend.invalid(key, "only applies to 'kind: kubernetes'")
            }
            let timeout = backend.int("timeout_seconds", range: 1...604_800)
            backend.finish()
            return .local(timeoutSeconds: timeout)
        case "kubernetes":
            let namespace = backend.string("namespace", required: true)
            if let ns = namespace, !isDNSLabel(ns) { backend.invalid("namespace", "'\(ns)' is not a valid Kubernetes namespace") }
            // Whether `image` may carry a tag and what `context` must be depend on the project's kind
            // (dbt: Kaniko builds the image; SQLMesh: an existing image clones the repository), which
            // is known only at a commit: `kubernetesProblems(for:)` says.
            let image = backend.string("image", required: true)
            let context = backend.string("context", required: true)
            let gitImage = backend.string("git_image") ?? KubernetesBackend.defaultGitImage
            let kubectlContext = backend.string("kubectl_context")
            let serviceAccount = backend.string("service_account")
            if let sa = serviceAccount, !isDNSSubdomain(sa) { backend.invalid("service_account", "'\(sa)' is not a valid service account name") }
            let secrets = backend.strings("secret_env") ?? []
            for s in secrets where !isDNSSubdomain(s) { backend.invalid("secret_env", "'\(s)' is not a valid Secret name") }
            let kaniko = backend.string("kaniko_image") ?? KubernetesBackend.defaultKanikoImage
            let timeout = backend.int("timeout_seconds", range: 1...604_800) ?? 3600
            let registrySecret = backend.string("registry_secret")
            if let r = registrySecret, !isDNSSubdomain(r) { backend.invalid("registry_secret", "'\(r)' is not a valid Secret name") }
            backend.finish()
            guard let namespace, let image, let context else { return nil }
            var k = KubernetesBackend(namespace: namespace, image: image, context: context,
                                      kubectlContext: kubectlContext, serviceAccount: serviceAccount,
                                      secretEnv: secrets, kanikoImage: kaniko, timeoutSeconds: timeout,
                                      registrySecret: registrySecret)
            k.gitImage = gitImage
            k.lines = ["image": backend.line(of: "image") ?? 0, "context": backend.line(of: "context") ?? 0]
            return .kubernetes(k)
        case let other?:
            backend.invalid("kind", "'\(other)' is not a backend; use 'local' or 'kubernetes'")
            backend.finish()
            return nil
        case nil:
            backend.finish()
            return nil
        }
    }
}

/// SQLMesh lower-cases environment names; letters, digits and '_' keep them the same everywhere.
func isSQLMeshEnvironmentName(_ s: String) -> Bool {
    (1...64).contains(s.utf8.count) && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
}

/// A name git would accept for a branch or tag (check-ref-format), so an expression never passes as
/// a ref; whether it exists, and is a branch, remote-tracking branch or tag, is the repository's to say.
func isRefName(_ ref: String) -> Bool {
    guard !ref.isEmpty, ref != "HEAD", ref != "@", !ref.hasPrefix("-"), !ref.hasPrefix("/"), !ref.hasSuffix("/"),
          !ref.hasSuffix("."), !ref.hasSuffix(".lock"), !ref.contains(".."), !ref.contains("@{"), !ref.contains("//") else { return false }
    let forbidden: Set<UInt8> = [32, 126, 94, 58, 63, 42, 91, 92, 127]  // space ~ ^ : ? * [ \ DEL
    return ref.utf8.allSatisfy { $0 >= 32 && !forbidden.contains($0) }
        && !ref.split(separator: "/").contains { $0.hasPrefix(".") }
}

func isEnvironmentVariableName(_ s: String) -> Bool {
    guard let first = s.utf8.first, first == 95 || (first | 0x20 >= 97 && first | 0x20 <= 122) else { return false }
    return s.utf8.allSatisfy { $0 == 95 || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || ($0 >= 48 && $0 <= 57) }
}

/// RFC 1123 label: lower-case alphanumerics and '-', at most 63, alphanumeric at both ends.
public func isDNSLabel(_ s: String) -> Bool {
    let b = Array(s.utf8)
    guard (1...63).contains(b.count) else { return false }
    func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
    return alnum(b.first!) && alnum(b.last!) && b.allSatisfy { alnum($0) || $0 == 45 }
}

func isDNSSubdomain(_ s: String) -> Bool {
    s.utf8.count <= 253 && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
}

extension EnvironmentSpec.Backend {
    public var kindName: String {
        switch self {
        case .local: return "local"
        case .kubernetes: return "kubernetes"
        }
    }
}
