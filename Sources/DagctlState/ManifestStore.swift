import DagctlPlanning
import Foundation

/// Each environment's kept dbt artifacts (SPEC §11), from its last successful deploy or a `dbt parse`
/// of its deployed commit: `manifests/<env>/manifest.json`, `partial_parse.msgpack` (for warm parses)
/// and `index.json`, the dependency index precise scope reads. Each file is replaced atomically.
public struct ManifestStore: Sendable {
    public let layout: StateLayout

    public init(layout: StateLayout) { self.layout = layout }

    public func folder(_ env: String) -> String { layout.manifests(env) }

    /// The kept index; nil when none was kept, an error (with the file) when it cannot be read.
    public func index(_ env: String) -> Result<DependencyIndex, StateError>? {
        let path = "\(folder(env))/index.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            let index = try JSONDecoder().decode(DependencyIndex.self, from: data)
            guard index.format == DependencyIndex.currentFormat else {
                return .failure(.unreadable(path: path, reason: "it has format \(index.format), not \(DependencyIndex.currentFormat)"))
            }
            return .success(index)
        } catch {
            return .failure(.unreadable(path: path, reason: "it is not a dependency index (\(error)); the next successful deploy replaces it"))
        }
    }

    /// Keeps a run's `target/` artifacts for `env`. Returns the index made from them.
    @discardableResult
    public func keep(_ env: String, target: String, commit: String, source: String, projectRoot: String? = nil) throws -> DependencyIndex {
        let manifestPath = "\(target)/manifest.json"
        guard let manifest = FileManager.default.contents(atPath: manifestPath) else {
            throw StateError.writeFailed(path: manifestPath, reason: "dbt left no manifest.json")
        }
        let index = try DependencyIndex.build(manifest: manifest, commit: commit, source: source)
        try keep(env, index: index, manifest: manifest, partialParse: FileManager.default.contents(atPath: "\(target)/partial_parse.msgpack"))
        // The path dbt saw the project at: its partial-parse file holds it, and is reused only there.
        if let projectRoot { try StateStore.atomicWrite(Data(projectRoot.utf8), to: "\(folder(env))/partial_parse.root") }
        return index
    }

    public func keep(_ env: String, index: DependencyIndex, manifest: Data?, partialParse: Data?) throws {
        try FileManager.default.createDirectory(atPath: folder(env), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        if let manifest { try StateStore.atomicWrite(manifest, to: "\(folder(env))/manifest.json") }
        if let partialParse { try StateStore.atomicWrite(partialParse, to: "\(folder(env))/partial_parse.msgpack") }
        // Last: the index names the commit, so a crash before it leaves the old index, still true of its commit.
        try StateStore.atomicWrite(try encoder.encode(index), to: "\(folder(env))/index.json")
    }
}
