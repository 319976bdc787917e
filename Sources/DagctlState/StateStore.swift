import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum StateError: Error, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case newerSchema(path: String, found: Int)
    case writeFailed(path: String, reason: String)
    case locked(path: String, holder: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "state file \(path) cannot be read: \(reason). It was left untouched; restore it from a backup or move it away to start afresh."
        case let .newerSchema(path, found):
            return "state file \(path) has schema_version \(found), newer than this dagctl understands (\(StateFile.currentSchemaVersion)). It was left untouched; upgrade dagctl."
        case let .writeFailed(path, reason):
            return "cannot write state file \(path): \(reason)"
        case let .locked(path, holder):
            return "another dagctl run holds the lock \(path): \(holder)"
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

    /// The state, or an empty one when the file does not exist yet.
    public func load() throws(StateError) -> StateFile {
        guard exists else { return StateFile() }
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
        do { return try JSONDecoder().decode(StateFile.self, from: data) } catch {
            throw .unreadable(path: path, reason: "it does not match the state schema (\(Self.describe(error)))")
        }
    }

    public func save(_ state: StateFile) throws(StateError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(state) + Data("\n".utf8) } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
        try Self.atomicWrite(data, to: path)
    }

    /// Writes `data` to `path` atomically and durably.
    public static func atomicWrite(_ data: Data, to path: String) throws(StateError) {
        let dir = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw .writeFailed(path: path, reason: "cannot create \(dir): \(error.localizedDescription)")
        }
        let temp = "\(dir)/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var failure: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; failure = String(cString: strerror(errno)); return }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil, rename(temp, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temp)
            throw .writeFailed(path: path, reason: failure)
        }
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
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

    public static func acquire(_ store: StateStore, command: String) throws(StateError) -> StateLock {
        let path = store.lockPath
        try? FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
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
    public static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }
}
