import DagctlSpec
import Foundation

/// `scope_mode: precise` (SPEC §11): a change outside model files selects only the nodes it reaches,
/// found in the base commit's dependency index, each with why; what dbt uses without recording it
/// stays `all`, with the reason.
public struct PreciseScope {
    public enum Side: Sendable { case base, head }

    public let index: DependencyIndex
    public let categorizer: Categorizer
    /// A file's text at the base or head commit (a repository path), nil when it is not there.
    public let read: (String, Side) -> String?
    public let selectDownstream: Bool
    /// Bare names dbt's selector also matches (folders, the project): a model of such a name would
    /// select more than itself.
    public let otherNames: Set<String>

    public init(index: DependencyIndex, categorizer: Categorizer, read: @escaping (String, Side) -> String?,
                selectDownstream: Bool, otherNames: Set<String> = []) {
        self.index = index
        self.categorizer = categorizer
        self.read = read
        self.selectDownstream = selectDownstream
        self.otherNames = otherNames
    }

    public struct Decision: Sendable, Equatable {
        public var scope: Scope
        public var select: [String]
        /// Selector entry → why it was selected.
        public var reasons: [String: [String]]
        /// Why the plan is `all`, when it is.
        public var allBecause: String?
    }

    /// dbt calls these without recording it in `depends_on`: a change to them can change any node.
    static let implicitMacros: Set<String> = ["generate_schema_name", "generate_alias_name", "generate_database_name"]

    struct All: Error { var reason: String }

    public func decide(_ changes: [Change]) -> Decision {
        var reasons: [String: [String]] = [:]
        func add(_ selector: String, _ why: String) {
            if !(reasons[selector]?.contains(why) ?? false) { reasons[selector, default: []].append(why) }
        }
        do {
            for change in changes {
                if change.change != .deleted { try look(at: change.path, category: change.category, change.change, add) }
                if let old = change.oldPath, change.change == .renamed {
                    try look(at: old, category: categorizer.category(of: old), .deleted, add)
                }
                if change.change == .deleted { try look(at: change.path, category: change.category, .deleted, add) }
            }
        } catch {
            return Decision(scope: .all, select: [], reasons: [:], allBecause: error.reason)
        }
        if reasons.isEmpty { return Decision(scope: .buildOnly, select: [], reasons: [:], allBecause: nil) }
        return Decision(scope: .selective, select: reasons.keys.sorted(), reasons: reasons, allBecause: nil)
    }

    private func look(at path: String, category: Category, _ kind: ChangeKind, _ add: (String, String) -> Void) throws(All) {
        guard let rel = categorizer.projectRelative(path).map(String.init) else { return }
        let ext = Categorizer.fileExtension(Substring(rel))
        if ext == "yml" || ext == "yaml", category != .config, categorizer.dbtReads(path) {
            return try propertiesFile(path, rel, add)  // dbt reads properties in every resource folder
        }
        switch category {
        case .config:
            throw All(reason: "\(path) changed: dbt reads it for every node")
        case .model:
            guard kind != .deleted, ext == "sql" || ext == "py" else { return }
            try add(selector(type: "model", name: Categorizer.modelName(path)), "changed file")
        case .macro:
            try macroFile(path, rel, add)
        case .seed:
            guard kind != .deleted else { return }
            for name in names(definedIn: rel, type: "seed", fallback: Categorizer.modelName(path)) {
                try add(selector(type: "seed", name: name), "changed file")
            }
        case .snapshot:
            guard kind != .deleted else { return }
            let declared = Self.blockNames("snapshot", in: read(path, .head) ?? "")
            let known = index.nodes(definedIn: rel).compactMap { index.nodes[$0]?.type == "snapshot" ? index.nodes[$0]!.name : nil }
            let all = Set(declared + known)
            if all.isEmpty { throw All(reason: "\(path) changed and dagctl finds no snapshot in it") }
            for name in all.sorted() { try add(selector(type: "snapshot", name: name), "changed file") }
        case .test:
            if ext == "yml" || ext == "yaml" {
                try propertiesFile(path, rel, add)
            } else if index.macroFiles[rel] != nil || !Self.macroNames(in: read(path, .head) ?? "").isEmpty {
                try macroFile(path, rel, add)  // a generic test's definition (tests/generic/…)
            } else if kind != .deleted {
                for name in names(definedIn: rel, type: "test", fallback: Categorizer.modelName(path)) {
                    try add(selector(type: "test", name: name), "changed file")
                }
            }
        case .other:
            // A `{% docs %}` block reaches the warehouse through nodes that persist their docs.
            if ext == "md", index.nodes.values.contains(where: { $0.persistsDocs == true }) {
                throw All(reason: "\(path) changed and may hold docs blocks of nodes that persist their docs (persist_docs)")
            }
            return
        }
    }

    /// A seed's or singular test's names: the base manifest's, or (new file) its file name.
    private func names(definedIn rel: String, type: String, fallback: String) -> [String] {
        let known = index.nodes(definedIn: rel).compactMap { index.nodes[$0]?.type == type ? index.nodes[$0]!.name : nil }
        return known.isEmpty ? [fallback] : known
    }

    /// A macro file: every node that calls one of its macros, at any depth.
    private func macroFile(_ path: String, _ rel: String, _ add: (String, String) -> Void) throws(All) {
        let base = read(path, .base) ?? "", head = read(path, .head) ?? ""
        // Jinja comments never render: a change to them alone changes nothing dbt compiles. (Not
        // trusted where `{#` could be text: raw blocks, or quoted.)
        if !base.isEmpty, !head.isEmpty, Self.commentsAreSimple(base), Self.commentsAreSimple(head),
           Self.withoutJinjaComments(base) == Self.withoutJinjaComments(head) { return }
        if Self.hasBlock("materialization", in: base) || Self.hasBlock("materialization", in: head) {
            throw All(reason: "\(path) defines a materialization, which dbt uses without recording it")
        }
        let declared = Set(Self.macroNames(in: base) + Self.macroNames(in: head))
        for name in declared.sorted() {
            if Self.implicitMacros.contains(name) {
                throw All(reason: "\(path) changes \(name), which dbt calls for every node without recording it")
            }
            if index.builtinMacros.contains(name) {
                throw All(reason: "\(path) changes \(name), an override of one of dbt's own macros, which dbt calls without recording it")
            }
        }
        let ids = index.macroFiles[rel] ?? []
        if ids.isEmpty && !base.isEmpty && !declared.isEmpty {
            throw All(reason: "\(path) changed, and the base manifest does not say which macros it defines")
        }
        // A macro the base did not have reaches no node, unless it takes another's place: a dispatch
        // implementation (`duckdb__x`), a macro of the same name elsewhere, or a context function.
        let known = Set(index.macroNames.values)
        for name in declared.sorted() where !ids.contains(where: { index.macroNames[$0] == name }) {
            if name.contains("__") || known.contains(name) || Self.contextFunctions.contains(name) {
                throw All(reason: "\(path) defines \(name), which can take the place of a macro or function dbt already calls")
            }
        }
        for id in ids {
            let name = index.macroNames[id] ?? id
            for caller in index.callingMacros(of: id) {
                let callerName = index.macroNames[caller] ?? caller
                if Self.implicitMacros.contains(callerName) || callerName.hasPrefix("materialization_") || index.builtinMacros.contains(callerName) {
                    throw All(reason: "\(path) changes \(name), which \(callerName) calls, and dbt uses \(callerName) without recording it")
                }
            }
            for (node, through) in index.callingNodes(of: id).sorted(by: { $0.key < $1.key }) {
                guard let info = index.nodes[node] else { continue }
                let via = through == id ? "" : " through \(index.macroNames[through] ?? through)"
                switch info.type {
                case "model", "seed", "snapshot", "test":
                    try add(selector(type: info.type, name: info.name), "calls macro \(name) (\(path))\(via)")
                case "analysis":
                    continue
                default:
                    throw All(reason: "\(path) changes \(name), which \(info.type) \(info.name) calls (a hook runs with every build, not by selection)")
                }
            }
        }
    }

    /// What a project macro of the same name replaces in dbt's context.
    static let contextFunctions: Set<String> = ["ref", "source", "config", "var", "env_var", "is_incremental", "run_query",
                                                 "statement", "log", "return", "adapter", "this", "target", "graph"]

    /// Whether `{#` and `#}` can only be comment markers: no raw block, none in quotes.
    static func commentsAreSimple(_ text: String) -> Bool {
        !text.contains("raw %}") && !text.contains("raw -%}") &&
            !["\"{#", "'{#", "#}\"", "#}'"].contains { text.contains($0) }
    }

    /// A properties file: the nodes whose entries changed in meaning (descriptions only where dbt
    /// persists them) and, through dbt's indirect selection, the tests defined in those entries.
    private func propertiesFile(_ path: String, _ rel: String, _ add: (String, String) -> Void) throws(All) {
        let old: [String: DbtSchemaFile.Entry], new: [String: DbtSchemaFile.Entry]
        do {
            old = try read(path, .base).map { text throws(SpecIssues) in try DbtSchemaFile.entries(text, file: path) } ?? [:]
            new = try read(path, .head).map { text throws(SpecIssues) in try DbtSchemaFile.entries(text, file: path) } ?? [:]
        } catch {
            throw All(reason: "\(path) cannot be compared: \(error.issues.first?.message ?? "\(error)")")
        }
        for key in Set(old.keys).union(new.keys).sorted() where old[key] != new[key] {
            let parts = key.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                if key == "version" { continue }
                throw All(reason: "\(path) changed its '\(key)', which dagctl does not map to nodes")
            }
            let (section, name) = (parts[0], parts[1])
            let type: String
            switch section {
            case "models": type = "model"
            case "seeds": type = "seed"
            case "snapshots": type = "snapshot"
            case "sources":
                if old[key]?.withoutDocs == new[key]?.withoutDocs { continue }
                guard Explain.isSafeModelName(name) else { throw All(reason: "source '\(name)' cannot be selected exactly") }
                // Its tests and the models that read it (their SQL names its tables).
                add(selectDownstream ? "source:\(name)+" : "source:\(name)+1", "defined in \(path)")
                continue
            case "macros" where old[key]?.withoutDocs == new[key]?.withoutDocs:
                continue  // a macro's documentation
            default:
                throw All(reason: "\(path) changed '\(section)' entry '\(name)', which dagctl does not map to nodes")
            }
            // Descriptions reach the warehouse only with persist_docs; where they do, any change counts.
            let persists = index.nodes.values.contains { $0.type == type && $0.name == name && $0.persistsDocs == true }
            if let before = old[key], let after = new[key], !persists {
                if before.withoutDocs == after.withoutDocs { continue }  // descriptions only
                if before.withoutDocsOrTests == after.withoutDocsOrTests {
                    // Only its tests changed: those tests, not the node itself.
                    guard Explain.isSafeModelName(name) else { throw All(reason: "\(type) '\(name)' cannot be selected exactly") }
                    for selector in testSelectors(node: name, before: before.tests, after: after.tests) {
                        add(selector, "tests defined in \(path)")
                    }
                    continue
                }
            }
            try add(selector(type: type, name: name), "defined in \(path)")
        }
    }

    /// The tests added or changed in an entry. A plain test (`not_null`) on a column or the node is
    /// named as dbt names it (`not_null_customers_first_name`); any other (arguments, a package's
    /// test, a name dbt would shorten) selects every test that depends on the node.
    func testSelectors(node: String, before: [String: Set<String>], after: [String: Set<String>]) -> [String] {
        var names: [String] = []
        for (location, tests) in after {
            for test in tests.subtracting(before[location] ?? []) {
                // Canonical forms are one-element JSON arrays: `["not_null"]` for a plain test.
                guard let data = test.data(using: .utf8), let plain = (try? JSONDecoder().decode([String].self, from: data))?.first,
                      !plain.contains("."), Explain.isSafeModelName(plain) else { return ["\(node)+1,resource_type:test"] }
                // dbt names a test on a node without a column with a trailing `_`, and not predictably
                // for every version: such tests are selected through the node.
                guard !location.isEmpty else { return ["\(node)+1,resource_type:test"] }
                let name = [plain, node, location].joined(separator: "_")
                // dbt shortens long names with a hash; column names with other characters are changed too.
                guard name.count < 60, Explain.isSafeModelName(name) else { return ["\(node)+1,resource_type:test"] }
                names.append("\(name),resource_type:test")
            }
        }
        return names.sorted()
    }

    /// How a node is named on dbt's command line: a model by its name (with `+` for select_downstream),
    /// anything else by its name and resource type, so a seed never selects a model of the same name.
    func selector(type: String, name: String) throws(All) -> String {
        guard Explain.isSafeModelName(name) else {
            throw All(reason: "\(type) '\(name)' cannot be passed to dbt --select exactly")
        }
        if type == "model" {
            if otherNames.contains(name) { throw All(reason: "model '\(name)' also names a folder or the project, so dbt --select would run more") }
            // An ephemeral model is not built: it is inlined into the models that use it.
            let ephemeral = index.nodes.values.contains { $0.type == "model" && $0.name == name && $0.materialized == "ephemeral" }
            return selectDownstream || ephemeral ? name + "+" : name
        }
        return selectDownstream ? "\(name)+" : "\(name),resource_type:\(type)"
    }

    /// The text without Jinja comments and the lines they leave blank.
    static func withoutJinjaComments(_ text: String) -> String {
        guard let regex = try? NSRegularExpression(pattern: "\\{#.*?#\\}", options: [.dotMatchesLineSeparators]) else { return text }
        let stripped = regex.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "")
        return stripped.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.allSatisfy(\.isWhitespace) }.joined(separator: "\n")
    }

    static func macroNames(in text: String) -> [String] { blockNames("macro", in: text) + blockNames("test", in: text).map { "test_" + $0 } }

    static func hasBlock(_ keyword: String, in text: String) -> Bool { !blockNames(keyword, in: text).isEmpty }

    /// Names of `{% keyword name(…) %}` / `{%- keyword name %}` blocks.
    static func blockNames(_ keyword: String, in text: String) -> [String] {
        guard let regex = try? NSRegularExpression(pattern: "\\{%-?\\s*\(keyword)\\s+([A-Za-z_][A-Za-z0-9_]*)") else { return [] }
        let range = NSRange(text.startIndex..., in: text)
        return regex.matches(in: text, range: range).compactMap { Range($0.range(at: 1), in: text).map { String(text[$0]) } }
    }
}
