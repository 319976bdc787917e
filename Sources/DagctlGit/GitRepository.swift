import CLibGit2
import Foundation

/// A full 40-hex commit or object id.
public struct ObjectID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let hex: String
    public init(hex: String) { self.hex = hex }
    public var description: String { hex }
    public var short: String { String(hex.prefix(10)) }
    public static func < (a: ObjectID, b: ObjectID) -> Bool { a.hex < b.hex }

    init(_ oid: git_oid) {
        var oid = oid
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_fmt(&buffer, &oid)
        buffer[40] = 0
        hex = String(cString: buffer)
    }

    var raw: git_oid? {
        var oid = git_oid()
        return git_oid_fromstrn(&oid, hex, hex.utf8.count) == 0 && hex.utf8.count == 40 ? oid : nil
    }
}

/// What went wrong in a git operation, with libgit2's own message.
public struct GitError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// Builds an error from libgit2's last error, which must be read right after the failing call.
    static func last(_ what: String, code: Int32) -> GitError {
        let detail = git_error_last().flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "error \(code)"
        return GitError("\(what): \(detail)")
    }
}

/// One changed path between two trees. Paths are relative to the repository root.
public struct TreeChange: Sendable, Equatable {
    public enum Kind: String, Sendable { case added, modified, deleted, renamed }
    public var path: String
    public var oldPath: String?
    public var kind: Kind

    public init(path: String, oldPath: String? = nil, kind: Kind) {
        self.path = path
        self.oldPath = oldPath
        self.kind = kind
    }
}

public struct CommitInfo: Sendable, Equatable {
    public var id: ObjectID
    public var authorName: String
    public var authorEmail: String
    public var summary: String
}

private let libgit2Ready: Int32 = git_libgit2_init()

/// A git repository read through libgit2. This is the only type in dagctl that touches libgit2.
/// One instance is used from one thread at a time.
public final class GitRepository: @unchecked Sendable {
    private let handle: OpaquePointer
    public let path: String

    private init(handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
    }

    deinit { git_repository_free(handle) }

    public static func open(_ path: String) throws(GitError) -> GitRepository {
        _ = libgit2Ready
        var repo: OpaquePointer?
        let code = git_repository_open_ext(&repo, path, 0, nil)
        guard code == 0, let repo else {
            if code == GIT_ENOTFOUND.rawValue {
                throw GitError("'\(path)' is not a git repository (or any parent up to the filesystem root); pass --repo DIR or set DAGCTL_REPO")
            }
            if code == GIT_EOWNER.rawValue {
                throw GitError.last("cannot open '\(path)': it is owned by another user; run dagctl as its owner, or add it with 'git config --global --add safe.directory \(path)'", code: code)
            }
            throw GitError.last("cannot open the git repository at '\(path)'", code: code)
        }
        return GitRepository(handle: repo, path: path)
    }

    /// The work tree's folder (nil for a bare repository).
    public var workTree: String? {
        git_repository_workdir(handle).map { String(cString: $0) }
    }

    /// The branch HEAD is on (`main`), or nil when it is detached or unborn.
    public var currentBranch: String? {
        var ref: OpaquePointer?
        guard git_repository_head(&ref, handle) == 0, let ref else { return nil }
        defer { git_reference_free(ref) }
        guard git_reference_is_branch(ref) == 1, let name = git_reference_shorthand(ref) else { return nil }
        return String(cString: name)
    }

    /// The commit HEAD points at.
    public func headCommit() throws(GitError) -> ObjectID {
        var oid = git_oid()
        let code = git_reference_name_to_id(&oid, handle, "HEAD")
        guard code == 0 else { throw GitError.last("the repository has no commit yet", code: code) }
        return ObjectID(oid)
    }

    /// Authors of the newest `limit` commits from `commit`, newest first, each email once.
    public func recentAuthors(from commit: ObjectID, limit: Int) throws(GitError) -> [(name: String, email: String)] {
        var walk: OpaquePointer?
        var code = git_revwalk_new(&walk, handle)
        guard code == 0, let walk else { throw GitError.last("cannot walk history", code: code) }
        defer { git_revwalk_free(walk) }
        git_revwalk_sorting(walk, GIT_SORT_TIME.rawValue)
        guard var start = commit.raw else { throw GitError("invalid commit id") }
        code = git_revwalk_push(walk, &start)
        guard code == 0 else { throw GitError.last("cannot walk from \(commit.short)", code: code) }
        var seen = Set<String>(), authors: [(name: String, email: String)] = []
        var oid = git_oid(), count = 0
        while count < limit, git_revwalk_next(&oid, walk) == 0 {
            count += 1
            var c: OpaquePointer?
            guard git_commit_lookup(&c, handle, &oid) == 0, let c else { continue }
            let who = info(c)
            git_commit_free(c)
            if !who.authorEmail.isEmpty, seen.insert(who.authorEmail.lowercased()).inserted {
                authors.append((who.authorName, who.authorEmail))
            }
        }
        return authors
    }

    /// Paths of files named `name` anywhere in `commit`'s tree, shallowest first.
    public func files(named name: String, at commit: ObjectID) throws(GitError) -> [String] {
        let root = try tree(of: commit)
        defer { git_tree_free(root) }
        var found: [String] = []
        var pending: [(git_oid, String)] = [(git_tree_id(root).pointee, "")]
        while !pending.isEmpty {
            let (id, prefix) = pending.removeFirst()
            for entry in try entries(ofTree: id) {
                let entryName = String(decoding: entry.name, as: UTF8.self)
                if entry.isTree { pending.append((entry.id, prefix + entryName + "/")) }
                else if entryName == name { found.append(prefix + entryName) }
            }
        }
        return found
    }

    // MARK: refs and commits

    /// The full reference an environment's `ref` names: a branch (`main`, `refs/heads/main`), a
    /// remote-tracking branch (`origin/main`, `refs/remotes/origin/main`) or a tag (`v1`, `refs/tags/v1`).
    /// Nothing else: no `HEAD`, no commit ids, no revision expressions (`main~1`, `main@{1}`, `:/text`),
    /// which would make what is deployed depend on more than the named branch or tag. A short name that
    /// is both a branch and a tag (or a remote-tracking branch) pointing at different commits is an error.
    public func reference(_ ref: String) throws(GitError) -> String {
        let kinds = ["refs/heads/", "refs/remotes/", "refs/tags/"]
        if ref.hasPrefix("refs/") {
            guard kinds.contains(where: ref.hasPrefix), hasReference(ref) else {
                throw GitError("ref '\(ref)' was not found in the repository '\(path)'; a ref is a branch, a remote-tracking branch or a tag")
            }
            return ref
        }
        guard git_reference_name_is_valid_shim("refs/heads/" + ref) else {
            throw GitError("'\(ref)' is not a branch, remote-tracking branch or tag name (revision expressions such as main~1, HEAD or a commit id are not refs)")
        }
        let found = kinds.map { $0 + ref }.filter(hasReference)
        guard let first = found.first else {
            throw GitError("ref '\(ref)' was not found in the repository '\(path)' (no branch, remote-tracking branch or tag of that name)")
        }
        let targets = Set(found.compactMap { try? peel($0) })
        if targets.count > 1 {
            throw GitError("ref '\(ref)' is ambiguous: \(found.joined(separator: " and ")) point at different commits; write the full name (e.g. \(first))")
        }
        return first
    }

    /// The commit an environment's `ref` names (see `reference(_:)`).
    public func resolveRef(_ ref: String) throws(GitError) -> ObjectID {
        try peel(try reference(ref))
    }

    /// A commit named by a ref (as `resolveRef`) or by its id or an unambiguous prefix of at least 4 hex
    /// digits (for `--base` and plan ids).
    public func resolveCommit(_ text: String) throws(GitError) -> ObjectID {
        let isHex = text.utf8.count >= 4 && text.utf8.count <= 40 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
        if !isHex { return try resolveRef(text) }
        var oid = git_oid()
        guard git_oid_fromstrn(&oid, text, text.utf8.count) == 0 else { throw GitError("'\(text)' is not a commit id") }
        var object: OpaquePointer?
        let code = git_object_lookup_prefix(&object, handle, &oid, text.utf8.count, GIT_OBJECT_COMMIT)
        guard code == 0, let object else {
            if code == GIT_EAMBIGUOUS.rawValue { throw GitError("commit id '\(text)' is ambiguous; give more digits") }
            if let ref = try? resolveRef(text) { return ref }
            throw GitError("commit '\(text)' was not found in the repository '\(path)'")
        }
        defer { git_object_free(object) }
        return ObjectID(git_object_id(object).pointee)
    }

    /// The commit a full reference name points at (tags peeled).
    private func peel(_ name: String) throws(GitError) -> ObjectID {
        var object: OpaquePointer?
        var code = git_revparse_single(&object, handle, name)
        guard code == 0, let object else { throw GitError.last("cannot resolve '\(name)'", code: code) }
        defer { git_object_free(object) }
        var commit: OpaquePointer?
        code = git_object_peel(&commit, object, GIT_OBJECT_COMMIT)
        guard code == 0, let commit else { throw GitError.last("'\(name)' does not point at a commit", code: code) }
        defer { git_object_free(commit) }
        return ObjectID(git_object_id(commit).pointee)
    }

    /// Whether a full reference name (`refs/tags/v1`) exists.
    public func hasReference(_ name: String) -> Bool {
        var ref: OpaquePointer?
        guard git_reference_lookup(&ref, handle, name) == 0 else { return false }
        git_reference_free(ref)
        return true
    }

    /// The full name of the branch or tag a ref names, as the remote would know it: `main` →
    /// `refs/heads/main`, `origin/main` → `refs/heads/main`, `v1` → `refs/tags/v1`.
    public func upstreamReference(_ ref: String) -> String {
        let full = (try? reference(ref)) ?? "refs/heads/\(ref)"
        if full.hasPrefix("refs/remotes/") {
            let rest = full.dropFirst("refs/remotes/".count)
            if let slash = rest.firstIndex(of: "/") { return "refs/heads/" + rest[rest.index(after: slash)...] }
        }
        return full
    }

    /// Whether `id` names a commit present in the repository.
    public func hasCommit(_ id: ObjectID) -> Bool {
        guard var oid = id.raw else { return false }
        var commit: OpaquePointer?
        guard git_commit_lookup(&commit, handle, &oid) == 0 else { return false }
        git_commit_free(commit)
        return true
    }

    public func commitInfo(_ id: ObjectID) throws(GitError) -> CommitInfo {
        let commit = try lookupCommit(id)
        defer { git_commit_free(commit) }
        return info(commit)
    }

    /// Whether `ancestor` is `commit` or in its history.
    public func isAncestor(_ ancestor: ObjectID, of commit: ObjectID) -> Bool {
        guard ancestor != commit else { return true }
        guard var a = commit.raw, var b = ancestor.raw else { return false }
        return git_graph_descendant_of(handle, &a, &b) == 1
    }

    /// How many commits `head` has that `pinned` does not.
    public func commitsAhead(_ head: ObjectID, of pinned: ObjectID) throws(GitError) -> Int {
        guard var a = head.raw, var b = pinned.raw else { throw GitError("invalid commit id") }
        var ahead = 0, behind = 0
        let code = git_graph_ahead_behind(&ahead, &behind, handle, &a, &b)
        guard code == 0 else { throw GitError.last("cannot count commits between \(pinned.short) and \(head.short)", code: code) }
        return ahead
    }

    // MARK: blobs

    /// Whether `path` is a file (or link) in `commit`.
    public func blobExists(_ path: String, at commit: ObjectID) throws(GitError) -> Bool {
        let c = try lookupCommit(commit)
        defer { git_commit_free(c) }
        return try blobID(path, inCommit: c) != nil
    }

    /// The largest file dagctl reads from a commit as content (configuration files of a few KiB).
    public static let maximumFileSize = 1 << 20

    /// The content of the regular file at `path` in `commit`, or nil when the commit has no such file.
    /// A symbolic link there is an error (its "content" is only a path, which could lead anywhere), and
    /// so is a file larger than `maximumFileSize`.
    public func file(_ path: String, at commit: ObjectID) throws(GitError) -> Data? {
        let c = try lookupCommit(commit)
        defer { git_commit_free(c) }
        guard let blobID = try blobID(path, inCommit: c, regularOnly: true) else { return nil }
        guard var oid = blobID.raw else { throw GitError("invalid blob id") }
        var size: Int = 0, type = GIT_OBJECT_INVALID
        if git_odb_read_header_shim(&size, &type, handle, &oid) == 0, size > Self.maximumFileSize {
            throw GitError("'\(path)' in commit \(commit.short) is \(size) bytes; dagctl reads at most \(Self.maximumFileSize) bytes from it")
        }
        return try blob(blobID)
    }

    public func blob(_ id: ObjectID) throws(GitError) -> Data {
        guard var oid = id.raw else { throw GitError("invalid blob id") }
        var blob: OpaquePointer?
        let code = git_blob_lookup(&blob, handle, &oid)
        guard code == 0, let blob else { throw GitError.last("cannot read blob \(id.short)", code: code) }
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let raw = git_blob_rawcontent(blob) else { return Data() }
        return Data(bytes: raw, count: size)
    }

    private func blobID(_ path: String, inCommit commit: OpaquePointer, regularOnly: Bool = false) throws(GitError) -> ObjectID? {
        var tree: OpaquePointer?
        var code = git_commit_tree(&tree, commit)
        guard code == 0, let tree else { throw GitError.last("cannot read a commit's tree", code: code) }
        defer { git_tree_free(tree) }
        var entry: OpaquePointer?
        code = git_tree_entry_bypath(&entry, tree, path)
        if code == GIT_ENOTFOUND.rawValue { return nil }
        guard code == 0, let entry else { throw GitError.last("cannot look up '\(path)'", code: code) }
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return nil }
        if regularOnly, git_tree_entry_filemode(entry) == GIT_FILEMODE_LINK {
            throw GitError("'\(path)' is a symbolic link in commit \(ObjectID(git_commit_id(commit).pointee).short); dagctl reads it only as a regular file: commit the file itself")
        }
        return ObjectID(git_tree_entry_id(entry).pointee)
    }

    // MARK: diff

    /// The changes from `base`'s tree (the empty tree when nil) to `commit`'s, with rename detection
    /// and no limit on the number of renames. Sorted by path.
    ///
    /// The trees are compared here, descending only into subtrees whose ids differ (libgit2's own
    /// tree diff walks every entry of both trees, which costs milliseconds per thousand files). Renames
    /// are paired exactly by blob id first; only what is left of the added and deleted files goes to
    /// libgit2's similarity detection.
    public func diff(from base: ObjectID?, to commit: ObjectID) throws(GitError) -> [TreeChange] {
        let newTree = try tree(of: commit)
        defer { git_tree_free(newTree) }
        let oldTree = try base.map { (b: ObjectID) throws(GitError) in try tree(of: b) }
        defer { if let oldTree { git_tree_free(oldTree) } }

        var added: [String: ObjectID] = [:], deleted: [String: ObjectID] = [:]
        var changes: [TreeChange] = []
        let oldEntries = try oldTree.map { (t: OpaquePointer) throws(GitError) in try entries(ofTree: git_tree_id(t).pointee) } ?? []
        try compare(oldEntries, try entries(ofTree: git_tree_id(newTree).pointee), prefix: "",
                    added: &added, deleted: &deleted, modified: &changes)

        // Exact renames: the same blob under a new path.
        var deletedByBlob: [ObjectID: [String]] = [:]
        for (path, id) in deleted { deletedByBlob[id, default: []].append(path) }
        for key in deletedByBlob.keys { deletedByBlob[key]!.sort(by: >) }
        for path in added.keys.sorted() {
            let id = added[path]!
            guard let old = deletedByBlob[id]?.popLast() else { continue }
            changes.append(TreeChange(path: path, oldPath: old, kind: .renamed))
            added[path] = nil
            deleted[old] = nil
        }
        if !added.isEmpty && !deleted.isEmpty {
            let renames = try similarRenames(from: oldTree, to: newTree, paths: Array(added.keys) + Array(deleted.keys))
            for (old, new) in renames where added[new] != nil && deleted[old] != nil {
                changes.append(TreeChange(path: new, oldPath: old, kind: .renamed))
                added[new] = nil
                deleted[old] = nil
            }
        }
        changes += added.keys.map { TreeChange(path: $0, kind: .added) }
        changes += deleted.keys.map { TreeChange(path: $0, kind: .deleted) }
        return changes.sorted { $0.path < $1.path }
    }

    /// One entry of a tree, with its name as bytes for git-order comparison.
    struct Entry {
        var name: [UInt8]
        var id: git_oid
        var mode: git_filemode_t
        var isTree: Bool { mode == GIT_FILEMODE_TREE }
    }

    /// Tree ids as dictionary keys (20 raw bytes, no hex formatting).
    struct TreeKey: Hashable {
        var a: UInt64, b: UInt64, c: UInt32
        init(_ oid: git_oid) {
            var oid = oid
            (a, b, c) = withUnsafeBytes(of: &oid.id) { raw in
                (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
            }
        }
    }

    /// Trees read so far, in git's order. Environments diff different bases against the same head, so
    /// most subtrees are read once per run, not once per environment.
    private var treeCache: [TreeKey: [Entry]] = [:]

    private func entries(ofTree id: git_oid) throws(GitError) -> [Entry] {
        let key = TreeKey(id)
        if let cached = treeCache[key] { return cached }
        var id = id
        let tree = try lookupTree(&id)
        defer { git_tree_free(tree) }
        let count = git_tree_entrycount(tree)
        var result: [Entry] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            guard let e = git_tree_entry_byindex(tree, i), let name = git_tree_entry_name(e) else { continue }
            let bytes = UnsafeRawBufferPointer(start: name, count: strlen(name))
            result.append(Entry(name: Array(bytes), id: git_tree_entry_id(e).pointee, mode: git_tree_entry_filemode(e)))
        }
        treeCache[key] = result
        return result
    }

    /// Git's tree order: names compared bytewise, a tree's name as if it ended in '/'.
    static func gitOrder(_ a: Entry, _ b: Entry) -> Int {
        let n = min(a.name.count, b.name.count)
        for i in 0..<n where a.name[i] != b.name[i] { return a.name[i] < b.name[i] ? -1 : 1 }
        let ca: UInt8 = a.name.count > n ? a.name[n] : (a.isTree ? UInt8(ascii: "/") : 0)
        let cb: UInt8 = b.name.count > n ? b.name[n] : (b.isTree ? UInt8(ascii: "/") : 0)
        return ca == cb ? 0 : (ca < cb ? -1 : 1)
    }

    /// Walks two trees side by side in git order; identical subtrees (same id) are skipped unread.
    private func compare(_ a: [Entry], _ b: [Entry], prefix: String, added: inout [String: ObjectID],
                         deleted: inout [String: ObjectID], modified: inout [TreeChange]) throws(GitError) {
        var i = 0, j = 0
        while i < a.count || j < b.count {
            let order = i == a.count ? 1 : j == b.count ? -1 : Self.gitOrder(a[i], b[j])
            if order == 0 {
                var x = a[i], y = b[j]
                i += 1; j += 1
                if git_oid_equal(&x.id, &y.id) == 1 && x.mode == y.mode { continue }
                let path = prefix + String(decoding: x.name, as: UTF8.self)
                if x.isTree {
                    try compare(try entries(ofTree: x.id), try entries(ofTree: y.id), prefix: path + "/",
                                added: &added, deleted: &deleted, modified: &modified)
                } else if x.mode != GIT_FILEMODE_COMMIT || y.mode != GIT_FILEMODE_COMMIT {
                    modified.append(TreeChange(path: path, kind: .modified))
                }
            } else if order < 0 {
                try gone(a[i], prefix: prefix, into: &deleted)
                i += 1
            } else {
                try gone(b[j], prefix: prefix, into: &added)
                j += 1
            }
        }
    }

    /// An entry on one side only: a file, or every file of a folder. Submodules are not files.
    private func gone(_ entry: Entry, prefix: String, into side: inout [String: ObjectID]) throws(GitError) {
        let path = prefix + String(decoding: entry.name, as: UTF8.self)
        if entry.isTree {
            for child in try entries(ofTree: entry.id) { try gone(child, prefix: path + "/", into: &side) }
        } else if entry.mode != GIT_FILEMODE_COMMIT {
            side[path] = ObjectID(entry.id)
        }
    }

    private func lookupTree(_ id: inout git_oid) throws(GitError) -> OpaquePointer {
        var tree: OpaquePointer?
        let code = git_tree_lookup(&tree, handle, &id)
        guard code == 0, let tree else { throw GitError.last("cannot read a tree", code: code) }
        return tree
    }

    /// libgit2's similarity-based rename detection, limited to `paths` (the added and deleted files
    /// that were not exact renames). Returns (old path, new path) pairs.
    private func similarRenames(from old: OpaquePointer?, to new: OpaquePointer, paths: [String]) throws(GitError) -> [(String, String)] {
        var options = git_diff_options()
        git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION))
        options.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH.rawValue
        // The C strings must outlive the diff call.
        let cStrings = paths.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var diff: OpaquePointer?
        var code: Int32 = 0
        var pointers = cStrings
        pointers.withUnsafeMutableBufferPointer { buffer in
            options.pathspec = git_strarray(strings: buffer.baseAddress, count: buffer.count)
            code = git_diff_tree_to_tree(&diff, handle, old, new, &options)
        }
        guard code == 0, let diff else { throw GitError.last("cannot diff for rename detection", code: code) }
        defer { git_diff_free(diff) }

        var find = git_diff_find_options()
        git_diff_find_options_init(&find, UInt32(GIT_DIFF_FIND_OPTIONS_VERSION))
        find.flags = GIT_DIFF_FIND_RENAMES.rawValue
        find.rename_limit = Int.max  // the default (1,000) would stop large renames
        code = git_diff_find_similar(diff, &find)
        guard code == 0 else { throw GitError.last("rename detection failed", code: code) }

        var renames: [(String, String)] = []
        for i in 0..<git_diff_num_deltas(diff) {
            guard let delta = git_diff_get_delta(diff, i)?.pointee, delta.status == GIT_DELTA_RENAMED else { continue }
            renames.append((String(cString: delta.old_file.path), String(cString: delta.new_file.path)))
        }
        return renames
    }

    /// The names of every folder below `path` (the root when empty) in `commit`, at any depth.
    public func folderNames(under path: String, at commit: ObjectID) throws(GitError) -> Set<String> {
        let root = try tree(of: commit)
        defer { git_tree_free(root) }
        var start = git_tree_id(root).pointee
        if !path.isEmpty {
            var entry: OpaquePointer?
            guard git_tree_entry_bypath(&entry, root, path) == 0, let entry else { return [] }
            defer { git_tree_entry_free(entry) }
            guard git_tree_entry_type(entry) == GIT_OBJECT_TREE else { return [] }
            start = git_tree_entry_id(entry).pointee
        }
        var names = Set<String>()
        var pending = [start]
        while let id = pending.popLast() {
            for child in try entries(ofTree: id) where child.isTree {
                names.insert(String(decoding: child.name, as: UTF8.self))
                pending.append(child.id)
            }
        }
        return names
    }

    /// The unified diff of one file between two commits (`oldPath` for a rename; a side that lacks the
    /// file is empty), at most `maxLines` lines, the rest counted in a last line. Binary files say so.
    public func unifiedDiff(path: String, oldPath: String?, from base: ObjectID?, to commit: ObjectID, maxLines: Int = 2000) throws(GitError) -> String {
        func blobAt(_ path: String, _ commit: ObjectID?) throws(GitError) -> OpaquePointer? {
            guard let commit else { return nil }
            let c = try lookupCommit(commit)
            defer { git_commit_free(c) }
            guard let id = try blobID(path, inCommit: c), var oid = id.raw else { return nil }
            var blob: OpaquePointer?
            guard git_blob_lookup(&blob, handle, &oid) == 0 else { return nil }
            return blob
        }
        let old = try blobAt(oldPath ?? path, base)
        defer { if let old { git_blob_free(old) } }
        let new = try blobAt(path, commit)
        defer { if let new { git_blob_free(new) } }
        var patch: OpaquePointer?
        let code = git_patch_from_blobs(&patch, old, oldPath ?? path, new, path, nil)
        guard code == 0, let patch else { throw GitError.last("cannot diff \(path)", code: code) }
        defer { git_patch_free(patch) }
        var buffer = git_buf()
        defer { git_buf_dispose(&buffer) }
        guard git_patch_to_buf(&buffer, patch) == 0, let raw = buffer.ptr else { throw GitError.last("cannot print the diff of \(path)", code: -1) }
        let text = String(decoding: UnsafeRawBufferPointer(start: raw, count: buffer.size), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > maxLines else { return text }
        return lines.prefix(maxLines).joined(separator: "\n") + "\n… \(lines.count - maxLines) more lines not shown (at most \(maxLines) per file)\n"
    }

    // MARK: history

    /// The newest commit in `base..commit` (all of `commit`'s history when `base` is nil or absent)
    /// whose `path` differs from every parent's and for which `changed(old, new)` holds; `old` is the
    /// file in the first parent. Walks newest first and stops at the first match.
    public func newestCommit(changing path: String, from base: ObjectID?, to commit: ObjectID,
                             where changed: (Data?, Data?) throws -> Bool) throws -> CommitInfo? {
        var walk: OpaquePointer?
        var code = git_revwalk_new(&walk, handle)
        guard code == 0, let walk else { throw GitError.last("cannot walk history", code: code) }
        defer { git_revwalk_free(walk) }
        git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_TIME.rawValue)
        guard var start = commit.raw else { throw GitError("invalid commit id") }
        code = git_revwalk_push(walk, &start)
        guard code == 0 else { throw GitError.last("cannot walk from \(commit.short)", code: code) }
        if let base, hasCommit(base), var hide = base.raw {
            code = git_revwalk_hide(walk, &hide)
            guard code == 0 else { throw GitError.last("cannot walk from \(base.short)", code: code) }
        }
        var oid = git_oid()
        while git_revwalk_next(&oid, walk) == 0 {
            var c: OpaquePointer?
            code = git_commit_lookup(&c, handle, &oid)
            guard code == 0, let c else { throw GitError.last("cannot read a commit", code: code) }
            defer { git_commit_free(c) }
            let mine = try blobID(path, inCommit: c)
            var parentBlobs: [ObjectID?] = []
            for p in 0..<git_commit_parentcount(c) {
                var parent: OpaquePointer?
                code = git_commit_parent(&parent, c, p)
                guard code == 0, let parent else { throw GitError.last("cannot read a parent commit", code: code) }
                defer { git_commit_free(parent) }
                parentBlobs.append(try blobID(path, inCommit: parent))
            }
            // Like git's TREESAME: a merge that took the file from one parent did not change it.
            if parentBlobs.contains(where: { $0 == mine }) { continue }
            let old = try parentBlobs.first.flatMap { $0 }.map { (id: ObjectID) throws(GitError) in try blob(id) }
            let new = try mine.map { (id: ObjectID) throws(GitError) in try blob(id) }
            if try changed(old, new) { return info(c) }
        }
        return nil
    }

    // MARK: export

    /// What an export left out, for the build log.
    public struct ExportNotes: Sendable, Equatable {
        /// Submodules (not part of the commit's own tree).
        public var skippedSubmodules: [String] = []
        /// Symbolic links whose target leaves the export (absolute, or through `..`, other links or
        /// linked folders), as (path, target). They are not created.
        public var droppedLinks: [(path: String, target: String)] = []

        public static func == (a: ExportNotes, b: ExportNotes) -> Bool {
            a.skippedSubmodules == b.skippedSubmodules && a.droppedLinks.map(\.path) == b.droppedLinks.map(\.path)
        }
    }

    /// Writes the tree of `commit` into `directory` (which must not exist yet): the exact commit, never
    /// the work tree. Executable bits are kept; submodules are skipped. Symbolic links are kept only when
    /// they resolve inside the export: nothing the repository contains may lead a build to read or
    /// write outside its own folder.
    @discardableResult
    public func export(_ commit: ObjectID, to directory: String) throws(GitError) -> ExportNotes {
        let root = try tree(of: commit)
        defer { git_tree_free(root) }
        guard mkdir(directory, 0o755) == 0 else {
            throw GitError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        var notes = ExportNotes()
        var links: [(path: String, target: String)] = []
        try write(tree: root, to: directory, prefix: "", skipped: &notes.skippedSubmodules, links: &links)
        // Checked once every link exists, so chains resolve the same whatever the order.
        let escaping = links.filter { !ExportPaths.staysInside(root: directory, link: $0.path) }
        for link in escaping { unlink(directory + "/" + link.path) }
        notes.droppedLinks = escaping
        return notes
    }

    private func write(tree: OpaquePointer, to directory: String, prefix: String, skipped: inout [String],
                       links: inout [(path: String, target: String)]) throws(GitError) {
        for i in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, i) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            // Names come from the repository: never let one leave the export folder.
            guard !name.isEmpty, name != ".", name != "..", name != ".git", !name.contains("/") else {
                throw GitError("refusing to export the unsafe path '\(prefix)\(name)'")
            }
            let path = directory + "/" + name
            let mode = git_tree_entry_filemode(entry)
            switch mode {
            case GIT_FILEMODE_TREE:
                var sub: OpaquePointer?
                let code = git_tree_lookup(&sub, handle, git_tree_entry_id(entry))
                guard code == 0, let sub else { throw GitError.last("cannot read folder \(prefix)\(name)", code: code) }
                defer { git_tree_free(sub) }
                guard mkdir(path, 0o755) == 0 else { throw GitError("cannot create \(path): \(String(cString: strerror(errno)))") }
                try write(tree: sub, to: path, prefix: prefix + name + "/", skipped: &skipped, links: &links)
            case GIT_FILEMODE_BLOB, GIT_FILEMODE_BLOB_EXECUTABLE:
                let data = try blob(ObjectID(git_tree_entry_id(entry).pointee))
                guard FileManager.default.createFile(atPath: path, contents: data,
                                                     attributes: [.posixPermissions: mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0o755 : 0o644]) else {
                    throw GitError("cannot write \(path)")
                }
            case GIT_FILEMODE_LINK:
                let target = String(decoding: try blob(ObjectID(git_tree_entry_id(entry).pointee)), as: UTF8.self)
                guard symlink(target, path) == 0 else { throw GitError("cannot create the link \(path): \(String(cString: strerror(errno)))") }
                links.append((prefix + name, target))
            default:
                skipped.append(prefix + name)
            }
        }
    }

    // MARK: helpers

    private func lookupCommit(_ id: ObjectID) throws(GitError) -> OpaquePointer {
        guard var oid = id.raw else { throw GitError("'\(id.hex)' is not a full commit id") }
        var commit: OpaquePointer?
        let code = git_commit_lookup(&commit, handle, &oid)
        guard code == 0, let commit else { throw GitError.last("commit \(id.short) is not in the repository '\(path)'", code: code) }
        return commit
    }

    private func tree(of commit: ObjectID) throws(GitError) -> OpaquePointer {
        let c = try lookupCommit(commit)
        defer { git_commit_free(c) }
        var tree: OpaquePointer?
        let code = git_commit_tree(&tree, c)
        guard code == 0, let tree else { throw GitError.last("cannot read the tree of \(commit.short)", code: code) }
        return tree
    }

    private func info(_ commit: OpaquePointer) -> CommitInfo {
        let author = git_commit_author(commit)?.pointee
        return CommitInfo(id: ObjectID(git_commit_id(commit).pointee),
                          authorName: author?.name.map { String(cString: $0) } ?? "",
                          authorEmail: author?.email.map { String(cString: $0) } ?? "",
                          summary: git_commit_summary(commit).map { String(cString: $0) } ?? "")
    }
}
