import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum StateError: Error, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case newerSchema(path: String, found: Int)
    case writeFailed(path: String, reason: String)
    /// Another run holds the lock (flock said EWOULDBLOCK): the only failure the CLI reports as exit 75.
    case locked(path: String, holder: String)
    /// The lock file could not be opened or locked for any other reason.
    case lockFailed(path: String, reason: String)
    case symbolicLink(path: String, target: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "state file \(path) cannot be read: \(reason). It was left untouched; restore it from a backup or move it away to start afresh."
        case let .newerSchema(path, found):
            return "state file \(path) has schema_version \(found), newer than this dagctl understands (\(StateFile.currentSchemaVersion)). It was left untouched; upgrade dagctl."
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason)"
        case let .locked(path, holder):
            return "another dagctl run holds the lock \(path): \(holder)"
        case let .lockFailed(path, reason):
            return "cannot take the run lock \(path): \(reason). dagctl creates and locks this file beside the state file: make sure that folder exists and this user can write there, or point --state elsewhere."
        case let .symbolicLink(path, target):
            return "state file \(path) is a symbolic link to \(target); point --state at \(target). dagctl keeps its lock, logs, builds and history beside the state file, so it must be named by its real path."
        }
    }
}

/// Reads and writes the state file. Writes are atomic (temp file in the same folder, fsync, rename,
/// fsync of the folder): a crash leaves the old state or the new one, never a torn file.
public struct StateStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The folder holding the state file; logs, builds and caches live below it.
    public var directory: String { (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent }
    public var lockPath: String { path + ".lock" }

    public var exists: Bool { FileManager.default.fileExists(atPath: path) }

    /// The state, or an empty one when the file does not exist yet; checked and repaired as `loadRepairing` says.
    public func load() throws(StateError) -> StateFile {
        try loadRepairing().state
    }

    /// The state, refused like a corrupt file when a value that becomes a path or a process argument is
    /// wrong (`StateFile.problems`), and with split deployments repaired (`repairingSplitDeployments`);
    /// `repairs` says what was repaired. Nothing is written: a caller holding the lock saves the result.
    public func loadRepairing() throws(StateError) -> (state: StateFile, repairs: [String]) {
        try refuseSymbolicLink()
        guard exists else { return (StateFile(), []) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "permission denied or not a file")
        }
        struct Header: Decodable { var schema_version: Int? }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: data) } catch {
            throw .unreadable(path: path, reason: "it is not valid JSON (\(Self.describe(error)))")
        }
        guard let version = header.schema_version else { throw .unreadable(path: path, reason: "it has no schema_version") }
        if version > StateFile.currentSchemaVersion { throw .newerSchema(path: path, found: version) }
        if version < 1 { throw .unreadable(path: path, reason: "schema_version \(version) is not valid") }
        let state: StateFile
        do { state = try JSONDecoder().decode(StateFile.self, from: data) } catch {
            throw .unreadable(path: path, reason: "it does not match the state schema (\(Self.describe(error)))")
        }
        let problems = state.problems()
        if !problems.isEmpty {
            throw .unreadable(path: path, reason: "it holds values dagctl will not use as names, paths or commits (was it edited by hand?): "
                + problems.joined(separator: "; "))
        }
        let (repaired, notes) = state.repairingSplitDeployments()
        return (repaired, notes)
    }

    /// Writes the state atomically. A state that `load` would refuse is not written: the old file stays
    /// readable, and the caller reports the error, rather than every later run stopping at load.
    public func save(_ state: StateFile) throws(StateError) {
        try refuseSymbolicLink()
        let problems = state.problems()
        if !problems.isEmpty {
            throw .writeFailed(path: path, reason: "the new state holds values dagctl would refuse to read back, so it was not written: "
                + problems.joined(separator: "; "))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(state) + Data("\n".utf8) } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
        try Self.atomicWrite(data, to: path)
    }

    /// A state file that is a symbolic link is refused rather than written through. The lock
    /// (`<state>.lock`), the temporary files and the logs, builds and history all live beside the path
    /// given, so two paths naming one file through a link would take two different locks and let two
    /// runs write the same state at once; and the atomic rename would replace the link by a regular file,
    /// silently parting the two. Naming the real file is one change to the caller's command line.
    func refuseSymbolicLink() throws(StateError) {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else { return }
        // Say where the link leads in a form usable as --state: resolved when it exists, else joined to the link's folder.
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        if realpath(path, &buffer) != nil {
            throw .symbolicLink(path: path, target: String(cString: buffer))
        }
        let n = readlink(path, &buffer, buffer.count - 1)
        let target = n < 0 ? "?" : String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let joined = target.hasPrefix("/") ? target : "\(directory)/\(target)"
        throw .symbolicLink(path: path, target: (joined as NSString).standardizingPath + " (which does not exist)")
    }

    /// Removes the `.<state file name>.tmp-<pid>` files that `atomicWrite` leaves when a run is killed
    /// between writing and renaming. Only this state file's temporaries are touched (another state file
    /// in the same folder has its own lock), and only those of other processes: the caller holds the
    /// lock, so no other process can be writing this state file. Returns the paths removed; a file that
    /// cannot be removed is left for the next run.
    public func removeStaleTemporaryFiles() -> [String] {
        let prefix = ".\((path as NSString).lastPathComponent).tmp-"
        let mine = "\(prefix)\(getpid())"
        var removed: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(prefix) && name != mine {
            let pid = name.dropFirst(prefix.count)
            guard !pid.isEmpty, pid.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { continue }
            let full = "\(directory)/\(name)"
            if unlink(full) == 0 { removed.append(full) }
        }
        return removed
    }

    /// Writes `data` to `path` atomically and durably.
    public static func atomicWrite(_ data: Data, to path: String) throws(StateError) {
        let dir = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw .writeFailed(path: path, reason: "cannot create \(dir): \(error.localizedDescription)")
        }
        let temp = "\(dir)/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        // A fresh file of our own: whatever was at the temporary name (a link, say) is removed first.
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var failure = writeAll(fd, data)
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        FailPoint.hit(FailPoint.stateTempWritten)
        if failure == nil, rename(temp, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temp)
            throw .writeFailed(path: path, reason: failure)
        }
        FailPoint.hit(FailPoint.stateRenamed)
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
    }

    /// Writes all of `data` to `fd` (retrying interrupted and short writes); the system's error, or nil.
    static func writeAll(_ fd: Int32, _ data: Data) -> String? {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return String(cString: strerror(errno)) }
                offset += n
            }
            return nil
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return c.debugDescription + Self.at(c.codingPath)
        case DecodingError.keyNotFound(let key, let c): return "missing '\(key.stringValue)'" + Self.at(c.codingPath)
        case DecodingError.typeMismatch(_, let c): return c.debugDescription + Self.at(c.codingPath)
        case DecodingError.valueNotFound(_, let c): return c.debugDescription + Self.at(c.codingPath)
        default: return "\(error)"
        }
    }

    private static func at(_ path: [CodingKey]) -> String {
        path.isEmpty ? "" : " at " + path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// The exclusive run lock beside the state file, held for the life of this object (and released by the
/// kernel if the process dies). The file records who holds it.
public final class StateLock: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Throws `.locked` only when another process holds the lock; any other failure (the lock file
    /// cannot be created or locked) is `.lockFailed`, so the CLI's exit 75 means "busy" and nothing else.
    public static func acquire(_ store: StateStore, command: String) throws(StateError) -> StateLock {
        let path = store.lockPath
        try? FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true)
        // Never through a link: the lock file is truncated, and a link could point anywhere.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link; remove it (dagctl makes its own)" : String(cString: strerror(errno))
            throw .lockFailed(path: path, reason: reason)
        }
        var rc: Int32
        repeat { rc = flock(fd, LOCK_EX | LOCK_NB) } while rc != 0 && errno == EINTR
        if rc != 0 {
            let error = errno
            guard error == EWOULDBLOCK else {
                close(fd)
                throw .lockFailed(path: path, reason: String(cString: strerror(error)))
            }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw .locked(path: path, holder: (holder?.isEmpty ?? true) ? "unknown process" : holder!)
        }
        let info = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName), \(command), since \(Timestamp.now())\n"
        ftruncate(fd, 0)
        _ = info.withCString { pwrite(fd, $0, strlen($0), 0) }
        return StateLock(path: path, fd: fd)
    }

    deinit {
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }
}

public enum Timestamp {
    /// The current time as RFC 3339 UTC, second precision.
    public static func now() -> String { string(Date()) }

    public static func string(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    /// Whether `text` is an RFC 3339 date-time (`2024-05-01T12:00:00Z`, optional fraction, `Z` or an
    /// offset), checked by its shape so that validating a long history costs no date parsing.
    public static func isValid(_ text: String) -> Bool {
        let b = Array(text.utf8)
        func digits(_ r: Range<Int>) -> Bool { r.upperBound <= b.count && b[r].allSatisfy { $0 >= 48 && $0 <= 57 } }
        func at(_ i: Int, _ c: Character) -> Bool { i < b.count && b[i] == c.asciiValue! }
        guard digits(0..<4), at(4, "-"), digits(5..<7), at(7, "-"), digits(8..<10), at(10, "T") || at(10, "t"),
              digits(11..<13), at(13, ":"), digits(14..<16), at(16, ":"), digits(17..<19) else { return false }
        var i = 19
        if at(i, ".") {
            i += 1
            let start = i
            while digits(i..<(i + 1)) { i += 1 }
            if i == start { return false }
        }
        if (at(i, "Z") || at(i, "z")) && i + 1 == b.count { return true }
        return (at(i, "+") || at(i, "-")) && digits((i + 1)..<(i + 3)) && at(i + 3, ":") && digits((i + 4)..<(i + 6)) && i + 6 == b.count
    }

    /// The instant of an RFC 3339 date-time, or nil.
    public static func date(_ text: String) -> Date? {
        guard isValid(text) else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }
}
