import Foundation
import Synchronization

/// A finished child process.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
}

/// Runs a program with separate arguments (never through a shell) and collects its output.
/// For short helpers such as `ssh-keygen` and `kubectl get`; long phases stream instead.
public enum Command {
    /// A child that exits before reading all its input (ssh-keygen refusing a garbled signature) must
    /// not kill this process with SIGPIPE: the write fails with EPIPE instead and is handled. (Long
    /// phases started by LiveProcess get SIGPIPE's default back in the child.)
    static let sigpipeIgnored: Void = { signal(SIGPIPE, SIG_IGN) }()

    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                           environment: [String: String]? = nil, directory: String? = nil) throws -> CommandResult {
        _ = sigpipeIgnored
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try resolve(executable))
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
        let errData = Collected()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData.data.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() }
            group.leave()
        }
        if let stdin {
            input.fileHandleForWriting.writeSafely(stdin)
            try? input.fileHandleForWriting.close()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: outData,
                             stderr: String(decoding: errData.data.withLock { $0 }, as: UTF8.self))
    }

    /// The full path of `name` on PATH (or `name` itself when it contains a slash).
    public static func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CommandError("'\(name)' was not found on PATH")
    }
}

/// Output read on another thread, handed over under a lock.
private final class Collected: Sendable {
    let data = Mutex(Data())
}

public struct CommandError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
