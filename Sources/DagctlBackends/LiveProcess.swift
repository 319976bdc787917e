import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a phase's output goes: every line to the log file as is, and to the console with a prefix
/// such as `[prod run] `. A quiet child still shows it is alive: after `heartbeat` seconds without
/// output the console gets an elapsed-time line.
public struct OutputSink: Sendable {
    public var prefix: String
    public var console: FileHandle
    public var heartbeat: TimeInterval

    public init(prefix: String, console: FileHandle, heartbeat: TimeInterval = 15) {
        self.prefix = prefix
        self.console = console
        self.heartbeat = heartbeat
    }

    public func say(_ line: String) { console.writeSafely("\(prefix)\(line)\n") }
}

public enum ProcessEnd: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
    case timedOut(TimeInterval)
    case interrupted(Int32)

    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let sig): return "killed by signal \(sig)"
        case .timedOut(let t): return "timed out after \(Int(t))s"
        case .interrupted(let sig): return "stopped because dagctl received \(Interruption.name(sig))"
        }
    }
}

/// Runs a child in its own process group (no shell: arguments go as they are), streams its merged
/// stdout/stderr line by line to a log file and the console, and can end it with all its children.
public enum LiveProcess {
    /// Runs `arguments[0]` with the rest as its arguments, in dagctl's working directory (so relative
    /// paths in dbt profiles stay stable between attempts). `started` gets the child's pid (also its
    /// process group) as soon as it exists, so a caller can record it before waiting.
    public static func run(_ arguments: [String], environment: [String: String],
                           log: FileHandle, sink: OutputSink, timeout: TimeInterval? = nil,
                           started: (pid_t) -> Void = { _ in }) throws -> ProcessEnd {
        Interruption.install()
        try Interruption.check(before: "starting \((arguments[0] as NSString).lastPathComponent)")
        let executable = try Command.resolve(arguments[0])
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CommandError("pipe: \(String(cString: strerror(errno)))") }
        let (readFD, writeFD) = (fds[0], fds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 1)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 2)
        posix_spawn_file_actions_addclose(&actions, readFD)
        posix_spawn_file_actions_addclose(&actions, writeFD)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, sig) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(writeFD)
        guard rc == 0 else {
            close(readFD)
            throw CommandError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        Interruption.childGroup.store(pid, ordering: .sequentiallyConsistent)
        defer { Interruption.childGroup.store(0, ordering: .sequentiallyConsistent) }
        // A signal that came between the check above and now was not forwarded: forward it.
        if Interruption.caught != nil { kill(-pid, SIGTERM) }
        started(pid)

        let start = Date()
        var lastOutput = Date()
        var pending = Data()
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        func emit(_ line: Data) {
            log.writeSafely(line + Data("\n".utf8))
            sink.say(String(decoding: line, as: UTF8.self))
        }
        while true {
            var poller = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 1000)
            if ready > 0 {
                let n = read(readFD, &buffer, buffer.count)
                if n == 0 { break }
                if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; break }
                pending.append(contentsOf: buffer[0..<n])
                while let newline = pending.firstIndex(of: 10) {
                    emit(pending[pending.startIndex..<newline])
                    pending.removeSubrange(pending.startIndex...newline)
                }
                lastOutput = Date()
            } else if ready < 0 && errno != EINTR {
                break
            }
            let elapsed = Date().timeIntervalSince(start)
            if let timeout, elapsed > timeout, !timedOut {
                timedOut = true
                sink.say("timed out after \(Int(timeout))s; stopping it")
                terminate(group: pid)
            }
            if Date().timeIntervalSince(lastOutput) >= sink.heartbeat {
                sink.say("… still running, \(formatDuration(elapsed)) elapsed")
                lastOutput = Date()
            }
        }
        if !pending.isEmpty { emit(pending) }
        close(readFD)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut, let timeout { return .timedOut(timeout) }
        let signaled = status & 0x7f
        let end: ProcessEnd = signaled != 0 ? .signaled(signaled) : .exited((status >> 8) & 0xff)
        // What happened is what is reported: a child that finished well despite the signal succeeded.
        if let sig = Interruption.caught, !end.succeeded { return .interrupted(sig) }
        return end
    }

    /// SIGTERM to the whole group, then SIGKILL to what is left after a grace period.
    public static func terminate(group: pid_t, grace: TimeInterval = 10) {
        kill(-group, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while Date() < deadline {
            if kill(-group, 0) != 0 { return }
            usleep(100_000)
        }
        kill(-group, SIGKILL)
    }

}

/// "1m05s", "42s", "1h02m".
public func formatDuration(_ seconds: TimeInterval) -> String {
    let s = Int(seconds.rounded())
    if s < 60 { return "\(s)s" }
    if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
}

extension LiveProcess {
    /// A process's start time (clock ticks since boot, field 22 of /proc/PID/stat), to tell it from a
    /// later process that reused its pid.
    public static func startTime(of pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Stops a child left running by a dagctl that died, if that very process is still alive.
    /// Returns true when it was found and stopped.
    @discardableResult
    public static func stopOrphan(pid: pid_t, startedAt start: UInt64?) -> Bool {
        guard pid > 0, let start, startTime(of: pid) == start else { return false }
        terminate(group: pid, grace: 5)
        return true
    }
}
