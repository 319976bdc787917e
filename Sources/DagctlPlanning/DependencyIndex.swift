import Foundation

/// What precise scope needs from a dbt manifest, derived once when the manifest is kept so that
/// explaining never reads a 20 MB manifest (SPEC §11): which macros and nodes call each macro, which
/// nodes each file defines or patches, and each node's type and name.
public struct DependencyIndex: Codable, Sendable, Equatable {
    public static let currentFormat = 2

    public struct Node: Codable, Sendable, Equatable {
        /// model, seed, snapshot, test, …
        public var type: String
        public var name: String
        /// Where it is defined (the yml for a generic test), relative to the project folder.
        public var file: String
        /// The yml that describes it (models, seeds, snapshots), relative to the project folder.
        public var patch: String?
        /// The model (or seed, snapshot) a generic test is attached to.
        public var attachedTo: String?
        /// `persist_docs` is on: a description change is written to the warehouse.
        public var persistsDocs: Bool?
        /// Models: `config.materialized` (an ephemeral model is inlined into its children).
        public var materialized: String?

        enum CodingKeys: String, CodingKey { case type, name, file, patch, materialized, attachedTo = "attached_to", persistsDocs = "persists_docs" }
    }

    public var format: Int
    /// The commit whose manifest this was made from.
    public var commit: String
    /// How the manifest was had: `the deploy of dev-v3-…` or `dbt parse`.
    public var source: String = ""
    public var project: String
    public var nodes: [String: Node]
    /// Macro id → the macro and node ids that call it directly.
    public var callers: [String: [String]]
    /// File (relative to the project folder) → the macro ids defined in it.
    public var macroFiles: [String: [String]]
    /// Macro id → its name.
    public var macroNames: [String: String]
    /// Names of dbt's own macros (packages `dbt` and `dbt_<adapter>`): a project macro of such a name
    /// overrides one that dbt calls without recording it.
    public var builtinMacros: Set<String>
    /// Source id (`source.shop.raw.orders`) → its yml file.
    public var sources: [String: String]

    enum CodingKeys: String, CodingKey {
        case format, commit, source, project, nodes, callers, sources
        case macroFiles = "macro_files", macroNames = "macro_names", builtinMacros = "builtin_macros"
    }

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Builds the index from `manifest.json`'s bytes. Paths in a manifest are relative to the project
    /// folder (the one holding dbt_project.yml); macros of installed packages count like the project's own.
    public static func build(manifest data: Data, commit: String, source: String = "") throws(Invalid) -> DependencyIndex {
        guard let doc = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw Invalid(description: "it is not a JSON object (a dbt manifest.json)")
        }
        guard let rawNodes = doc["nodes"] as? [String: Any], let rawMacros = doc["macros"] as? [String: Any] else {
            throw Invalid(description: "it has no 'nodes' or 'macros' (not a dbt manifest.json)")
        }
        let metadata = doc["metadata"] as? [String: Any]
        var index = DependencyIndex(format: currentFormat, commit: commit, source: source, project: metadata?["project_name"] as? String ?? "",
                                    nodes: [:], callers: [:], macroFiles: [:], macroNames: [:], builtinMacros: [], sources: [:])
        let adapter = metadata?["adapter_type"] as? String
        func patchFile(_ value: Any?) -> String? {
            guard let text = value as? String, let range = text.range(of: "://") else { return nil }
            return String(text[range.upperBound...])
        }
        func macros(of entry: [String: Any]) -> [String] { ((entry["depends_on"] as? [String: Any])?["macros"] as? [String]) ?? [] }
        for (id, value) in rawMacros {
            guard let macro = value as? [String: Any], let name = macro["name"] as? String else { continue }
            let package = macro["package_name"] as? String ?? ""
            index.macroNames[id] = name
            if package == "dbt" || (adapter.map { package == "dbt_\($0)" } ?? false) {
                index.builtinMacros.insert(name)
            } else if let file = macro["original_file_path"] as? String, package == index.project {
                index.macroFiles[file, default: []].append(id)
            }
            for callee in macros(of: macro) { index.callers[callee, default: []].append(id) }
        }
        for (id, value) in rawNodes {
            guard let node = value as? [String: Any], let type = node["resource_type"] as? String, let name = node["name"] as? String else { continue }
            let config = node["config"] as? [String: Any]
            let persist = config?["persist_docs"] as? [String: Any]
            index.nodes[id] = Node(type: type, name: name, file: node["original_file_path"] as? String ?? "",
                                   patch: patchFile(node["patch_path"]), attachedTo: node["attached_node"] as? String,
                                   persistsDocs: (persist?["relation"] as? Bool == true || persist?["columns"] as? Bool == true) ? true : nil,
                                   materialized: type == "model" ? config?["materialized"] as? String : nil)
            for callee in macros(of: node) { index.callers[callee, default: []].append(id) }
        }
        for (id, value) in (doc["sources"] as? [String: Any]) ?? [:] {
            if let file = (value as? [String: Any])?["original_file_path"] as? String { index.sources[id] = file }
        }
        for key in index.callers.keys { index.callers[key]!.sort() }
        for key in index.macroFiles.keys { index.macroFiles[key]!.sort() }
        return index
    }

    /// Ids of the nodes defined in `file` (seeds, snapshots, singular tests, models, generic tests of a yml).
    public func nodes(definedIn file: String) -> [String] {
        nodes.filter { $0.value.file == file }.map(\.key).sorted()
    }

    /// Ids of the nodes a yml file describes (`patch_path`).
    public func nodes(patchedBy file: String) -> [String] {
        nodes.filter { $0.value.patch == file }.map(\.key).sorted()
    }

    /// Every macro that calls `macro`, directly or through other macros.
    public func callingMacros(of macro: String) -> Set<String> {
        var seen: Set<String> = []
        var queue = [macro]
        while let current = queue.popLast() {
            for caller in callers[current] ?? [] where caller.hasPrefix("macro.") && seen.insert(caller).inserted { queue.append(caller) }
        }
        return seen
    }

    /// Every node that calls `macro`, directly or through other macros, with the chain's first macro
    /// that the node calls (for its reason).
    public func callingNodes(of macro: String) -> [String: String] {
        var found: [String: String] = [:]
        var seen: Set<String> = [macro]
        var queue = [macro]
        while let current = queue.popLast() {
            for caller in callers[current] ?? [] {
                if caller.hasPrefix("macro.") {
                    if seen.insert(caller).inserted { queue.append(caller) }
                } else if found[caller] == nil {
                    found[caller] = current
                }
            }
        }
        return found
    }
}
