import DagctlState
import Foundation
import Testing
import TestSupport

@Suite("state folder: temporary files, symbolic links, lock")
struct StateSafetyTests {
    @Test func staleTemporaryFilesOfThisStateFileAreRemoved() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        try store.save(StateFile())
        for name in [".state.json.tmp-12345", ".state.json.tmp-\(getpid())", ".state.json.tmp-12x", ".other.json.tmp-999", "keep.tmp-1"] {
            dir.write(name, "x")
        }
        #expect(store.removeStaleTemporaryFiles() == [dir.file(".state.json.tmp-12345")])
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == [".other.json.tmp-999", ".state.json.tmp-12x", ".state.json.tmp-\(getpid())", "keep.tmp-1", "state.json"].sorted(),
                "this process's own temporary file, other state files' and odd names are left")
        #expect(store.removeStaleTemporaryFiles().isEmpty)
    }

    @Test func aSymbolicLinkIsRefusedWithItsTarget() throws {
        let dir = TemporaryDirectory()
        let content = "{\"schema_version\": 1, \"environments\": {}}"
        dir.write("real/state.json", content)
        let realPath = URL(fileURLWithPath: dir.file("real/state.json")).resolvingSymlinksInPath().path
        #expect(symlink("real/state.json", dir.file("state.json")) == 0)
        let store = StateStore(path: dir.file("state.json"))
        #expect {
            try store.load()
        } throws: { error in
            guard case let .symbolicLink(path, target) = error as? StateError else { return false }
            return path == store.path && target == realPath && "\(error)".contains("point --state at \(realPath)")
        }
        #expect(throws: StateError.self) { try store.save(StateFile()) }
        var info = stat()
        #expect(lstat(store.path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK, "the link is still a link")
        #expect(dir.read("real/state.json") == content)
    }

    @Test func aDanglingSymbolicLinkIsNotAnEmptyState() throws {
        let dir = TemporaryDirectory()
        #expect(symlink("gone/state.json", dir.file("state.json")) == 0)
        #expect {
            try StateStore(path: dir.file("state.json")).load()
        } throws: { error in
            "\(error)".contains("is a symbolic link to \(dir.path)/gone/state.json (which does not exist)")
        }
    }

    @Test func lockIsExclusiveAndNamesItsHolder() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        var first: StateLock? = try StateLock.acquire(store, command: "dagctl reconcile")
        #expect {
            try StateLock.acquire(store, command: "second")
        } throws: { error in
            guard case .locked = error as? StateError else { return false }
            return "\(error)".contains("pid \(getpid())") && "\(error)".contains("dagctl reconcile")
        }
        _ = first
        first = nil
        #expect(throws: Never.self) { try StateLock.acquire(store, command: "third") }
    }

    /// Failures other than a held lock are `.lockFailed` with the path and the system's reason (the CLI
    /// exits 1 for them, 75 only for `.locked`). As root, permissions cannot be denied: use a lock path
    /// that is a folder (EISDIR) and one whose parent is a regular file (ENOTDIR).
    @Test(arguments: [("lock is a folder", "Is a directory"), ("parent is a file", "Not a directory")])
    func otherLockFailuresAreNotLocked(_ situation: String, _ reason: String) throws {
        let dir = TemporaryDirectory()
        let statePath: String
        if situation == "lock is a folder" {
            statePath = dir.file("state.json")
            try FileManager.default.createDirectory(atPath: statePath + ".lock", withIntermediateDirectories: true)
        } else {
            dir.write("file", "x")
            statePath = dir.file("file/state.json")
        }
        #expect {
            try StateLock.acquire(StateStore(path: statePath), command: "dagctl reconcile")
        } throws: { error in
            guard case let .lockFailed(path, why) = error as? StateError else { return false }
            return path == statePath + ".lock" && why == reason && "\(error)".contains("cannot take the run lock \(path): \(reason)")
        }
    }
}

@Suite("links in the state folder")
struct StateFolderLinkTests {
    /// The lock file is truncated when taken: through a link it would empty a file elsewhere.
    @Test func aLinkedLockFileIsRefusedAndItsTargetUntouched() throws {
        let dir = TemporaryDirectory()
        let victim = dir.file("victim")
        dir.write("victim", "precious data\n")
        try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
        #expect(symlink(victim, dir.file("state/state.json.lock")) == 0)
        let store = StateStore(path: dir.file("state/state.json"))
        #expect {
            _ = try StateLock.acquire(store, command: "test")
        } throws: { error in
            guard case StateError.lockFailed(_, let reason) = error else { return false }
            return reason.contains("symbolic link")
        }
        #expect(dir.read("victim") == "precious data\n")
    }

    @Test func aLinkedHistoryFileIsNotAppendedThrough() throws {
        let dir = TemporaryDirectory()
        dir.write("victim", "precious data\n")
        try FileManager.default.createDirectory(atPath: dir.file("state/history"), withIntermediateDirectories: true)
        #expect(symlink(dir.file("victim"), dir.file("state/history/prod.jsonl")) == 0)
        let store = StateStore(path: dir.file("state/state.json"))
        var state = StateFile(environments: ["prod": EnvironmentState(plans: [Samples.plan(1), Samples.plan(2, status: .pending)])])
        #expect(throws: StateError.self) { try store.archive(&state) }
        #expect(dir.read("victim") == "precious data\n")
    }
}
