import Foundation

/// A file read from the desired-state directory: its name's stem, its path, and what came of parsing it.
public struct LoadedFile<Value: Sendable>: Sendable {
    public var stem: String
    public var path: String
    public var result: Result<Value, SpecIssues>

    public init(stem: String, path: String, result: Result<Value, SpecIssues>) {
        self.stem = stem
        self.path = path
        self.result = result
    }
}

/// The desired-state directory: environments, members, approvals and retries.
///
/// Loading never stops at the first problem. A bad `members.yaml` is fatal for a run (`membersOK` is
/// false); a bad environment file only takes that environment out; approval and retry files are read
/// per plan and judged there.
public struct DesiredState: Sendable {
    public var root: String
    public var members: Members
    public var membersOK: Bool
    public var environments: [EnvironmentSpec]
    /// Problems by environment name (the file's stem) for environments that were skipped.
    public var environmentIssues: [String: [SpecIssue]]
    /// Every problem found, in file order.
    public var issues: [SpecIssue]
    /// The stems of every `environments/*.yaml`, read or not.
    public var environmentNames: [String] = []
    /// `notifications.yaml`, when it exists and is valid.
    public var notifications: NotificationsSpec?
    /// Its problems (also in `issues`): a bad file stops notifications, never deploys.
    public var notificationIssues: [SpecIssue] = []

    public func environment(_ name: String) -> EnvironmentSpec? { environments.first { $0.name == name } }

    /// Loads the directory. With `only`, environment files of other names are not read (a preview of
    /// one environment does not pay for parsing, or fail on, the others).
    public static func load(_ root: String, only: Set<String>? = nil) -> DesiredState {
        var issues: [SpecIssue] = []
        var state = DesiredState(root: root, members: Members([]), membersOK: false, environments: [],
                                 environmentIssues: [:], issues: [])
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            state.issues = [SpecIssue(file: root, message: "the desired-state directory does not exist; pass --desired DIR or set DAGCTL_DESIRED")]
            return state
        }
        let membersPath = join(root, Members.fileName)
        switch readText(membersPath) {
        case .success(let text):
            do {
                state.members = try Members.parse(text, file: membersPath)
                state.membersOK = true
            } catch { issues += error.issues }
        case .failure(let issue): issues.append(issue)
        }

        let envDir = join(root, "environments")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: envDir)) ?? []
        if names.isEmpty { issues.append(SpecIssue(file: envDir, message: "no environment files; add environments/<env>.yaml")) }
        for fileName in names.sorted() {
            let path = join(envDir, fileName)
            guard fileName.hasSuffix(".yaml") else {
                if fileName.hasSuffix(".yml") {
                    let issue = SpecIssue(file: path, message: "environment files end in .yaml; rename it to \(fileName.dropLast(4)).yaml")
                    issues.append(issue)
                    state.environmentIssues[String(fileName.dropLast(4)), default: []].append(issue)
                }
                continue
            }
            let stem = String(fileName.dropLast(5))
            state.environmentNames.append(stem)
            if let only, !only.contains(stem) { continue }
            let result: Result<EnvironmentSpec, SpecIssues> = readText(path).mapError { SpecIssues([$0]) }.flatMap { text in
                Result { () throws(SpecIssues) in
                    try EnvironmentSpec.parse(text, name: stem, file: path, members: state.membersOK ? state.members.names : nil)
                }
            }
            switch result {
            case .success(let env): state.environments.append(env)
            case .failure(let error):
                issues += error.issues
                state.environmentIssues[stem, default: []] += error.issues
            }
        }
        let notificationsPath = join(root, NotificationsSpec.fileName)
        if FileManager.default.fileExists(atPath: notificationsPath) || (try? FileManager.default.destinationOfSymbolicLink(atPath: notificationsPath)) != nil {
            let result: Result<NotificationsSpec, SpecIssues> = readText(notificationsPath).mapError { SpecIssues([$0]) }.flatMap { text in
                Result { () throws(SpecIssues) in
                    try NotificationsSpec.parse(text, file: notificationsPath, environments: Set(state.environmentNames))
                }
            }
            switch result {
            case .success(let spec): state.notifications = spec
            case .failure(let error):
                state.notificationIssues = error.issues
                issues += error.issues
            }
        }
        state.issues = issues
        return state
    }

    /// The dbt profiles folder for `env`: its `profiles_dir` relative to this directory, else `profiles/` if present.
    public func profilesDir(for env: EnvironmentSpec) -> String? {
        if let dir = env.profilesDir { return DesiredState.join(root, dir) }
        let fallback = DesiredState.join(root, "profiles")
        return FileManager.default.fileExists(atPath: fallback) ? fallback : nil
    }

    /// Every file in `approvals/<plan-id>/`, parsed (not yet judged). Only `<member>.yaml` can count:
    /// any other entry (`bob.yml`, `bob.copy.yaml`, a folder, a link) comes back as a failed file with
    /// the reason, so one person can never be counted twice and nothing is silently ignored.
    public func approvals(for planID: String) -> [LoadedFile<ApprovalFile>] {
        guard Names.isValidPlanID(planID) else { return [] }
        let dir = DesiredState.join(root, "approvals/\(planID)")
        var info = stat()
        guard lstat(dir, &info) == 0 else { return [] }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            let issue = SpecIssue(file: dir, message: "is not a folder, so it holds no approvals; approvals of plan \(planID) go in \(dir)/<member>.yaml")
            return [LoadedFile(stem: planID, path: dir, result: .failure(SpecIssues([issue])))]
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().map { fileName in
            let path = DesiredState.join(dir, fileName)
            guard let stem = Self.memberStem(fileName) else {
                let issue = SpecIssue(file: path, message: "only files named <member>.yaml count as approvals (a valid member name and the .yaml extension); this one never counts: rename or remove it")
                return LoadedFile(stem: fileName, path: path, result: .failure(SpecIssues([issue])))
            }
            return Self.decisionFile(path, stem: stem, parse: ApprovalFile.parse)
        }
    }

    /// A decision file read and parsed: a regular file, never a link (see `readText`).
    static func decisionFile<Value>(_ path: String, stem: String,
                                    parse: (String, String) throws(SpecIssues) -> Value) -> LoadedFile<Value> {
        let result = readText(path, allowLink: false).mapError { SpecIssues([$0]) }.flatMap { text in
            Result { () throws(SpecIssues) in try parse(text, path) }
        }
        return LoadedFile(stem: stem, path: path, result: result)
    }

    /// Whether anything (a file, a link, a folder) is at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// `bob.yaml` → `bob`; nil for any name that is not a member name followed by `.yaml`.
    static func memberStem(_ fileName: String) -> String? {
        guard fileName.hasSuffix(".yaml") else { return nil }
        let stem = String(fileName.dropLast(5))
        return Names.isValid(stem) ? stem : nil
    }

    /// `retries/<plan-id>.yaml`, parsed, if it exists.
    public func retry(for planID: String) -> LoadedFile<RetryFile>? {
        guard Names.isValidPlanID(planID) else { return nil }
        let path = DesiredState.join(root, "retries/\(planID).yaml")
        return Self.exists(path) ? Self.decisionFile(path, stem: planID, parse: RetryFile.parse) : nil
    }

    /// `rollbacks/<env>.yaml`, parsed, if it exists (a link or an oversized file comes back as a
    /// failed file: it is still there, and it still pins the environment until it is fixed or removed).
    public func rollback(for env: String) -> LoadedFile<RollbackFile>? {
        guard Names.isValid(env) else { return nil }
        let path = DesiredState.join(root, "rollbacks/\(env).yaml")
        return Self.exists(path) ? Self.decisionFile(path, stem: env, parse: RollbackFile.parse) : misnamedRollback(for: env)
    }

    /// A file that looks meant as `env`'s rollback request but is not `rollbacks/<env>.yaml`
    /// (`rollbacks/prod.yml`, `Prod.yaml`, `prod-rollback.yaml`, `prod~`, or anything in a `rollback/`
    /// folder): it is not read as a request, yet it must not be taken for "no rollback" either, so it
    /// comes back as a failed file and holds the environment.
    func misnamedRollback(for env: String) -> LoadedFile<RollbackFile>? {
        for folder in ["rollbacks", "rollback"] {
            let dir = DesiredState.join(root, folder)
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                let proper = folder == "rollbacks" && name.hasSuffix(".yaml") && environmentNames.contains(String(name.dropLast(5)))
                guard !proper, Self.environment(ofMisnamed: name, among: environmentNames) == env else { continue }
                let path = DesiredState.join(dir, name)
                let issue = SpecIssue(file: path, message: "is not rollbacks/\(env).yaml, so it is not read as a rollback request, but it looks meant as one and holds '\(env)': rename it to rollbacks/\(env).yaml or delete it")
                return LoadedFile(stem: env, path: path, result: .failure(SpecIssues([issue])))
            }
        }
        return nil
    }

    /// The environment a misnamed rollback file looks meant for: its name, lowercased and without
    /// spaces and leading dots, is an environment's name followed by nothing or by anything but a letter
    /// or digit; the longest such name wins.
    static func environment(ofMisnamed fileName: String, among names: [String]) -> String? {
        let name = Substring(fileName.lowercased().filter { !$0.isWhitespace }).drop { $0 == "." }
        return names.filter { env in
            guard name.hasPrefix(env) else { return false }
            guard let next = name.dropFirst(env.count).first else { return true }
            return !(next.isLetter || next.isNumber)
        }.max { $0.count < $1.count }
    }

    /// Syntax problems in every approval, retry and rollback file (for `dagctl validate`).
    public func decisionFileIssues() -> [SpecIssue] {
        var issues: [SpecIssue] = []
        let fm = FileManager.default
        let approvalsDir = DesiredState.join(root, "approvals")
        for planID in ((try? fm.contentsOfDirectory(atPath: approvalsDir)) ?? []).sorted() {
            if !Names.isValidPlanID(planID) {
                issues.append(SpecIssue(file: DesiredState.join(approvalsDir, planID), message: "'\(planID)' is not a plan id"))
                continue
            }
            for file in approvals(for: planID) {
                switch file.result {
                case .failure(let error): issues += error.issues
                case .success(let approval):
                    if approval.by != file.stem {
                        issues.append(SpecIssue(file: file.path, key: "by", message: "'\(approval.by)' differs from the file name '\(file.stem)'"))
                    }
                    if approval.plan != planID {
                        issues.append(SpecIssue(file: file.path, key: "plan", message: "'\(approval.plan)' differs from its folder '\(planID)'"))
                    }
                    if membersOK && members[approval.by] == nil {
                        issues.append(SpecIssue(file: file.path, key: "by", message: "'\(approval.by)' is not a member in members.yaml"))
                    }
                }
            }
        }
        let retriesDir = DesiredState.join(root, "retries")
        for fileName in ((try? fm.contentsOfDirectory(atPath: retriesDir)) ?? []).sorted() {
            guard fileName.hasSuffix(".yaml"), let file = retry(for: String(fileName.dropLast(5))) else {
                issues.append(SpecIssue(file: DesiredState.join(retriesDir, fileName), message: "only files named <plan-id>.yaml are retry requests; this one is never read: rename or remove it"))
                continue
            }
            switch file.result {
            case .failure(let error): issues += error.issues
            case .success(let retry):
                if retry.plan != file.stem {
                    issues.append(SpecIssue(file: file.path, key: "plan", message: "'\(retry.plan)' differs from the file name '\(file.stem)'"))
                }
                if membersOK && members[retry.by] == nil {
                    issues.append(SpecIssue(file: file.path, key: "by", message: "'\(retry.by)' is not a member in members.yaml"))
                }
            }
        }
        let rollbacksDir = DesiredState.join(root, "rollbacks")
        for fileName in ((try? fm.contentsOfDirectory(atPath: DesiredState.join(root, "rollback"))) ?? []).sorted() {
            issues.append(SpecIssue(file: DesiredState.join(root, "rollback/\(fileName)"), message: "rollback requests go in rollbacks/<environment>.yaml, not in rollback/; this one is not read as one" + Self.holds(fileName, environmentNames)))
        }
        for fileName in ((try? fm.contentsOfDirectory(atPath: rollbacksDir)) ?? []).sorted() {
            let stem = fileName.hasSuffix(".yaml") ? String(fileName.dropLast(5)) : ""
            guard environmentNames.contains(stem), let file = rollback(for: stem) else {
                issues.append(SpecIssue(file: DesiredState.join(rollbacksDir, fileName), message: "only files named <environment>.yaml, for an environment in environments/, are rollback requests; this one is not read as one" + Self.holds(fileName, environmentNames)))
                continue
            }
            switch file.result {
            case .failure(let error): issues += error.issues
            case .success(let rollback):
                if rollback.env != file.stem {
                    issues.append(SpecIssue(file: file.path, key: "env", message: "'\(rollback.env)' differs from the file name '\(file.stem)'"))
                }
                if membersOK && members[rollback.by] == nil {
                    issues.append(SpecIssue(file: file.path, key: "by", message: "'\(rollback.by)' is not a member in members.yaml"))
                }
            }
        }
        return issues
    }

    /// What a misnamed rollback file does, for `validate`'s message.
    static func holds(_ fileName: String, _ names: [String]) -> String {
        environment(ofMisnamed: fileName, among: names).map { " but holds '\($0)', whose request it looks like: rename it to rollbacks/\($0).yaml or remove it" }
            ?? ", and looks meant for no environment: rename or remove it"
    }

    static func join(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }

    /// The most any desired-state file may hold (the YAML bound); real ones are a few KiB.
    public static let maximumFileSize = YAMLLimits.maxBytes

    /// Reads a desired-state file: a regular file (a FIFO or device would block or never end) of at most
    /// `maximumFileSize` bytes, UTF-8. Approval and retry files (`allowLink: false`) must not be symbolic
    /// links either: a link could make one member's file read as another's, or reach outside the folder.
    public static func readText(_ path: String, allowLink: Bool = true) -> Result<String, SpecIssue> {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            return .failure(SpecIssue(file: path, message: errno == ENOENT ? "the file does not exist" : "cannot read the file: \(String(cString: strerror(errno)))"))
        }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            guard allowLink else { return .failure(SpecIssue(file: path, message: "is a symbolic link; decision files must be regular files")) }
            guard stat(path, &info) == 0 else { return .failure(SpecIssue(file: path, message: "is a symbolic link to nothing (\(String(cString: strerror(errno))))")) }
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            return .failure(SpecIssue(file: path, message: "is not a regular file"))
        }
        guard Int(info.st_size) <= maximumFileSize else {
            return .failure(SpecIssue(file: path, message: "is \(info.st_size) bytes; desired-state files may hold at most \(maximumFileSize) bytes"))
        }
        // O_NONBLOCK: should the file be swapped for a FIFO after the check, the open does not hang.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (allowLink ? 0 : O_NOFOLLOW))
        guard fd >= 0 else { return .failure(SpecIssue(file: path, message: "cannot read the file: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while data.count <= maximumFileSize {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(SpecIssue(file: path, message: "cannot read the file: \(String(cString: strerror(errno)))")) }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        guard data.count <= maximumFileSize else {
            return .failure(SpecIssue(file: path, message: "holds more than \(maximumFileSize) bytes; desired-state files may hold at most that"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(SpecIssue(file: path, message: "the file is not UTF-8 text"))
        }
        return .success(text)
    }
}
