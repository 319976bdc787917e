import DagctlPlanning
import DagctlSpec
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Archived plans of one environment, and what was wrong with the lines that had to be skipped.
public struct HistoryRead: Sendable, Equatable {
    /// Oldest first; the last record of an id wins.
    public var plans: [Plan]
    /// One line per skipped line or unreadable file, naming the file and the line.
    public var warnings: [String]

    public init(plans: [Plan] = [], warnings: [String] = []) {
        self.plans = plans
        self.warnings = warnings
    }
}

/// Finished plans live in `<state-dir>/history/<env>.jsonl`, one JSON plan per line, appended and never
/// rewritten; the state file keeps only each environment's newest plan and the plans still to finish.
/// Reading and writing the state file therefore costs the same after ten plans or ten thousand.
///
/// A record counts once its newline is on disk. Appends are whole or nothing: a failed write is
/// truncated away, and a tail torn by a kill is cut off before the next append. Readers skip (and
/// report) a bad line instead of failing the whole file.
extension StateStore {
    public var historyDirectory: String { layout.history }

    public func historyPath(_ env: String) -> String? {
        Names.isValid(env) ? layout.history(env) : nil
    }

    /// A plan the state file need not keep: finished, and not its environment's newest.
    static func isArchivable(_ plan: Plan, newest: Bool) -> Bool {
        !newest && !plan.status.isLive
    }

    /// Moves archivable plans from `state` to the history files (appended and synced before the caller
    /// writes the slimmer state; a crash in between leaves a plan in both places, which readers
    /// resolve by id).
    public func archive(_ state: inout StateFile) throws(StateError) {
        for name in state.environments.keys.sorted() {
            let plans = state.environments[name]!.plans
            let keep = plans.enumerated().filter { !Self.isArchivable($0.element, newest: $0.offset == plans.count - 1) }.map(\.element)
            guard keep.count < plans.count, let path = historyPath(name) else { continue }
            let kept = Set(keep.map(\.id))
            let done = plans.filter { !kept.contains($0.id) }
            try append(done, to: path)
            state.environments[name]!.plans = keep
        }
    }

    /// Archived plans of `env`, oldest first (the last record of an id wins), for callers that do not
    /// report the skipped lines.
    public func history(_ env: String) -> [Plan] {
        readHistory(env).plans
    }

    /// Archived plans of `env` and warnings for what was skipped: a line that is not a valid plan of
    /// `env` (the checks of the state file), and a last line without its newline (a write cut short).
    public func readHistory(_ env: String) -> HistoryRead {
        guard let path = historyPath(env) else { return HistoryRead() }
        let (bytes, failure) = Self.readAll(path)
        if let failure { return HistoryRead(warnings: ["\(path) cannot be read (\(failure)); its plans are not shown"]) }
        guard let data = bytes else { return HistoryRead() }
        var read = HistoryRead()
        var index: [String: Int] = [:]
        let decoder = JSONDecoder()
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let torn = lines.removeLast()  // what follows the last newline: nothing, or a record cut short
        for (n, line) in lines.enumerated() where !line.isEmpty {
            let plan: Plan
            do { plan = try decoder.decode(Plan.self, from: Data(line)) } catch {
                read.warnings.append("\(path) line \(n + 1) is not a plan (\(Self.describe(error))); skipped")
                continue
            }
            let problems = plan.problems(environment: env, at: "plan")
            if !problems.isEmpty {
                read.warnings.append("\(path) line \(n + 1) is not a valid plan of \(env) (\(problems.joined(separator: "; "))); skipped")
                continue
            }
            if let i = index[plan.id] { read.plans[i] = plan } else {
                index[plan.id] = read.plans.count
                read.plans.append(plan)
            }
        }
        // A whole record that only lacks its newline (a hand edit, say) is a record.
        if !torn.isEmpty, let plan = try? decoder.decode(Plan.self, from: Data(torn)), plan.problems(environment: env, at: "plan").isEmpty {
            if let i = index[plan.id] { read.plans[i] = plan } else { read.plans.append(plan) }
        } else if !torn.isEmpty {
            read.warnings.append("\(path) line \(lines.count + 1) has no newline: a write cut short by a crash or a full disk; "
                + "skipped (the next archive removes it and appends its plan again from the state file)")
        }
        return read
    }

    /// The bytes of `path`, nil when it does not exist, or why it cannot be read.
    private static func readAll(_ path: String) -> (Data?, failure: String?) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno == ENOENT ? (nil, nil) : (nil, String(cString: strerror(errno))) }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 { if errno == EINTR { continue }; return (nil, String(cString: strerror(errno))) }
            if n == 0 { return (data, nil) }
            data.append(buffer, count: n)
        }
    }

    /// The system's write(2); tests pass one that fails part way, as a full disk does.
    typealias WriteCall = (Int32, UnsafeRawPointer, Int) -> Int

    /// Appends `plans` as whole lines, or nothing: the file is left as it was when any write fails.
    func append(_ plans: [Plan], to path: String, write: WriteCall = { Glibc.write($0, $1, $2) }) throws(StateError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        do { for plan in plans { data += try encoder.encode(plan) + Data("\n".utf8) } } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
        try? FileManager.default.createDirectory(atPath: historyDirectory, withIntermediateDirectories: true)
        let isNew = access(path, F_OK) != 0
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            throw .writeFailed(path: path, reason: errno == ELOOP ? "it is a symbolic link; history files must be dagctl's own regular files" : String(cString: strerror(errno)))
        }
        defer { close(fd) }
        let before = try Self.cutTornTail(fd, path: path)
        var failure: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                // Written in two halves only so that a test's kill can land between them.
                let half = offset == 0 && raw.count > 1 ? raw.count / 2 : raw.count - offset
                let n = write(fd, raw.baseAddress! + offset, half)
                if n < 0 { if errno == EINTR { continue }; failure = String(cString: strerror(errno)); return }
                if n == 0 { failure = "the system wrote nothing"; return }
                offset += n
                if offset < raw.count { FailPoint.hit(FailPoint.historyHalfWritten) }
            }
            if fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        }
        guard let failure else {
            // A new file's name must be on disk too before the caller writes a state without its plans.
            if isNew { for dir in [historyDirectory, directory] { Self.syncFolder(dir) } }
            FailPoint.hit(FailPoint.historyAppended)
            return
        }
        // Take back the part of the records that reached the file, so that it ends in a whole line.
        if ftruncate(fd, before) != 0 || fsync(fd) != 0 {
            throw .writeFailed(path: path, reason: "\(failure); cutting it back to its previous \(before) bytes also failed "
                + "(\(String(cString: strerror(errno)))), so it ends in a partial line that the next append removes")
        }
        throw .writeFailed(path: path, reason: "\(failure); the history file was left as it was (\(before) bytes) and the plans "
            + "stay in the state file until an append succeeds. Free some space or fix the folder, then run again")
    }

    private static func syncFolder(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// A file whose last byte is not a newline ends in a record cut short (a kill mid-write, or a failed
    /// write whose cleanup did not happen). Appending after it would glue the next record onto it and
    /// make both unreadable, so it is cut back to just after its last newline. Nothing is lost: `archive`
    /// appends a plan before the state file lets go of it, so the torn record's plan is still in the
    /// state file and this append (or a later one) writes it again. Returns the size kept.
    private static func cutTornTail(_ fd: Int32, path: String) throws(StateError) -> off_t {
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var end = size
        var keep: off_t = 0
        scan: while end > 0 {
            let start = max(0, end - off_t(buffer.count))
            let want = Int(end - start)
            let n = pread(fd, &buffer, want, start)
            guard n == want else { throw .writeFailed(path: path, reason: "cannot read its end: \(String(cString: strerror(errno)))") }
            if end == size && buffer[want - 1] == UInt8(ascii: "\n") { return size }
            if let i = buffer[0..<want].lastIndex(of: UInt8(ascii: "\n")) {
                keep = start + off_t(i) + 1
                break scan
            }
            end = start
        }
        // A last line that is a whole record and only lacks its newline is kept: it gets the newline.
        if keep < size {
            var tail = [UInt8](repeating: 0, count: Int(size - keep))
            if pread(fd, &tail, tail.count, keep) == tail.count, (try? JSONDecoder().decode(Plan.self, from: Data(tail))) != nil {
                guard write(fd, "\n", 1) == 1 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
                return size + 1
            }
        }
        if keep < size, ftruncate(fd, keep) != 0 {
            throw .writeFailed(path: path, reason: "cannot cut off its torn last line: \(String(cString: strerror(errno)))")
        }
        return keep
    }
}
