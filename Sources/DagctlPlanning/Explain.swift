import DagctlSpec

/// What a plan will run, decided from its changes alone.
public struct ScopeDecision: Sendable, Equatable {
    public var scope: Scope
    public var select: [String]
    public var warnings: [String]
}

/// Why the diff cannot be trusted to pick models, if it cannot.
public enum BaseSituation: Sendable, Equatable {
    /// The environment has a deployed commit that is in the repository.
    case known
    /// Nothing was ever deployed here.
    case firstDeploy
    /// The deployed commit is not in the repository (force-push, shallow clone).
    case missing(String)
}

public enum Explain {
    /// A raw tree change, put into its category (SPEC §3). A rename is categorized by its new path.
    public static func categorize(path: String, oldPath: String?, kind: ChangeKind, using categorizer: Categorizer) -> Change {
        Change(path: path, oldPath: kind == .renamed ? oldPath : nil, change: kind, category: categorizer.category(of: path))
    }

    /// Scope and selection (SPEC §3): `all` on a first deploy, a missing base, or any test, macro, seed,
    /// snapshot or config change (on either side of a rename); `selective` when models were added,
    /// modified or renamed to a model path; `build_only` otherwise.
    /// `otherNames` are what else dbt's selector matches by bare name (folder names, the project's
    /// name): a model of such a name would select more than itself.
    public static func scope(of changes: [Change], base: BaseSituation, categorizer: Categorizer,
                             selectDownstream: Bool, otherNames: Set<String> = []) -> ScopeDecision {
        var warnings: [String] = []
        var deleted: [(name: String, path: String)] = []
        var selected: Set<String> = []
        var forcing: [Change] = []

        for change in changes {
            let oldCategory = change.oldPath.map(categorizer.category(of:))
            if change.category.forcesFullBuild || (oldCategory?.forcesFullBuild ?? false) { forcing.append(change) }
            switch change.change {
            case .deleted where change.category == .model:
                deleted.append((Categorizer.modelName(change.path), change.path))
            case .renamed:
                if change.category == .model { selected.insert(Categorizer.modelName(change.path)) }
                if oldCategory == .model, let old = change.oldPath,
                   change.category != .model || Categorizer.modelName(old) != Categorizer.modelName(change.path) {
                    deleted.append((Categorizer.modelName(old), old))
                }
            case .added, .modified:
                if change.category == .model { selected.insert(Categorizer.modelName(change.path)) }
            case .deleted:
                break
            }
        }
        // A name still selected (moved to another folder) is not gone from the warehouse.
        for gone in deleted where !selected.contains(gone.name) {
            warnings.append("model '\(gone.name)' (\(gone.path)) was removed; its relation stays in the warehouse until dropped by hand")
        }

        switch base {
        case .firstDeploy:
            return ScopeDecision(scope: .all, select: [], warnings: warnings)
        case .missing(let sha):
            warnings.insert("base commit \(sha) is not in the repository; planning a full build", at: 0)
            return ScopeDecision(scope: .all, select: [], warnings: warnings)
        case .known:
            break
        }
        if !forcing.isEmpty {
            return ScopeDecision(scope: .all, select: [], warnings: warnings)
        }
        // Names come from file names in the repository: one that a selector cannot name exactly (or
        // that would read as an option) is never put on dbt's command line; the plan builds everything.
        let unsafe = selected.filter { !isSafeModelName($0) }.sorted()
        if !unsafe.isEmpty {
            warnings.append("model name\(unsafe.count == 1 ? "" : "s") \(unsafe.map { "'\($0)'" }.joined(separator: ", ")) cannot be passed to dbt --select exactly (use letters, digits, '_' and '-'); planning a full build")
            return ScopeDecision(scope: .all, select: [], warnings: warnings)
        }
        let ambiguous = selected.intersection(otherNames).sorted()
        if !ambiguous.isEmpty {
            warnings.append("model name\(ambiguous.count == 1 ? "" : "s") \(ambiguous.map { "'\($0)'" }.joined(separator: ", ")) also name\(ambiguous.count == 1 ? "s" : "") a folder or the project, so dbt --select would run more than the model; planning a full build")
            return ScopeDecision(scope: .all, select: [], warnings: warnings)
        }
        if !selected.isEmpty {
            let names = selected.sorted().map { selectDownstream ? $0 + "+" : $0 }
            return ScopeDecision(scope: .selective, select: names, warnings: warnings)
        }
        return ScopeDecision(scope: .buildOnly, select: [], warnings: warnings)
    }

    /// Letters, digits, `_` and `-`, not starting with `-`: a name dbt's selector matches as itself.
    public static func isSafeModelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first != UInt8(ascii: "-") else { return false }
        return name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 95 || $0 == 45 }
    }

    /// The dbt command of the run phase, without backend-specific paths; nil for `build_only`.
    public static func dbtCommand(scope: Scope, select: [String], target: String) -> [String]? {
        switch scope {
        case .buildOnly, .sqlmesh: return nil
        case .all: return ["dbt", "build", "--target", target]
        case .selective: return ["dbt", "build", "--select"] + select + ["--target", target]
        }
    }
}

/// What to do when an environment's head has been read (SPEC §3, "When a plan is created").
public enum NextPlanDecision: Sendable, Equatable {
    /// The head has the newest plan's version: no new plan.
    case keep(Plan)
    /// No plan is due and there is none to keep (a SQLMesh environment in sync at its head).
    case nothingDue
    /// Explain a new plan; `supersede` lists the ids of older pending plans it replaces.
    case create(supersede: [String])
    /// The head's version is lower than the newest plan's: an error for this environment.
    case versionWentBackwards(newest: Plan, head: Version)
    /// `rollbacks/<env>.yaml` asks to go back to `to`: explain the rollback plan (SPEC §10).
    case rollback(to: Plan, supersede: [String])

    /// The error of `versionWentBackwards`, as `plan` and `reconcile` both report it.
    public func error(ref: String) -> String? {
        guard case .versionWentBackwards(let newest, let version) = self else { return nil }
        return "version went backwards: \(ref) has version \(version) but the newest plan \(newest.id) has version \(newest.version); bump the version above \(newest.version)"
    }

    /// `plans` are the environment's plans, oldest first. After a rollback plan the version to beat
    /// is the deployed one: a rollback that went through makes the ref's version new again (it is
    /// explained afresh, under a fresh id), one that did not changes nothing.
    public static func decide(headVersion: Version, plans: [Plan], deployedVersion: String? = nil) -> NextPlanDecision {
        guard let newest = plans.last,
              let newestVersion = Version(newest.rollback != nil ? deployedVersion ?? newest.version : newest.version) else {
            return .create(supersede: [])
        }
        if headVersion == newestVersion {
            // A rollback withdrawn after part of it ran: the ref's version is planned again.
            if newest.rollback != nil, newest.status == .superseded, newest.attempts.contains(where: { $0.phase == .run }) {
                return .create(supersede: [])
            }
            return .keep(newest)
        }
        if headVersion < newestVersion { return .versionWentBackwards(newest: newest, head: headVersion) }
        return .create(supersede: plans.filter { $0.status == .pending }.map(\.id))
    }
}
