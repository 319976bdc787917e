import DagctlPlanning
@testable import DagctlState
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("history files")
struct HistoryTests {
    /// Five plans of different lengths archived to `history/prod.jsonl`; returns the plans and the file's bytes.
    func writeHistory(_ store: StateStore) throws -> ([Plan], Data) {
        let plans = (1...5).map { Samples.plan($0, extra: $0 % 3) }
        var state = StateFile(environments: ["prod": EnvironmentState(plans: plans + [Samples.plan(9, status: .pending)])])
        try store.archive(&state)
        return (plans, try #require(Samples.bytes(store.historyDirectory + "/prod.jsonl")))
    }

    func everyLineIsAPlan(_ data: Data) -> Bool {
        guard data.last == UInt8(ascii: "\n") else { return false }
        return data.split(separator: UInt8(ascii: "\n")).allSatisfy { (try? JSONDecoder().decode(Plan.self, from: Data($0))) != nil }
    }

    /// A kill or a full disk can stop a write after any byte. Wherever the file ends, the reader returns the
    /// records that made it to disk whole (their newline aside; and at most one warning), and the next archive — which still
    /// has the cut records' plans in the state file — leaves a file of whole lines holding every record.
    @Test func everyCutKeepsTheWholeRecordsAndTheNextAppendRepairsIt() throws {
        let source = TemporaryDirectory()
        let (plans, full) = try writeHistory(StateStore(path: source.file("state.json")))
        let ends = full.indices.filter { full[$0] == UInt8(ascii: "\n") }.map { $0 + 1 }
        #expect(ends.count == plans.count)
        let dir = MemoryFolder()  // thousands of appends, each with an fsync
        let store = StateStore(path: dir.path + "/state.json")
        let path = dir.path + "/history/prod.jsonl"
        try FileManager.default.createDirectory(atPath: dir.path + "/history", withIntermediateDirectories: true)
        var failures: [String] = []
        for cut in 0...full.count {
            try full.prefix(cut).write(to: URL(fileURLWithPath: path))
            // A record whose bytes all made it but its newline is whole (and gets its newline back).
            let whole = ends.filter { $0 <= cut + 1 }.count
            let read = store.readHistory("prod")
            if read.plans != Array(plans.prefix(whole)) { failures.append("cut \(cut): read \(read.plans.map(\.version))") }
            let torn = cut > 0 && !ends.contains(cut) && !ends.contains(cut + 1)
            if read.warnings.count != (torn ? 1 : 0) { failures.append("cut \(cut): warnings \(read.warnings)") }
            if torn, !(read.warnings.first ?? "").contains("line \(whole + 1) has no newline") { failures.append("cut \(cut): \(read.warnings)") }

            var state = StateFile(environments: ["prod": EnvironmentState(plans: Array(plans[whole...]) + [Samples.plan(9, status: .pending)])])
            try store.archive(&state)
            let after = try #require(Samples.bytes(path))
            let again = store.readHistory("prod")
            // (A last record lacking only its newline gets it back with the next append that writes something.)
            let complete = after.last == UInt8(ascii: "\n") ? after : after + Data("\n".utf8)
            if !everyLineIsAPlan(complete) || again.plans != plans || !again.warnings.isEmpty {
                failures.append("cut \(cut): after an append, \(again.plans.map(\.version)) \(again.warnings)")
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    @Test func aWholeLastRecordWithoutItsNewlineIsKept() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        let (plans, full) = try writeHistory(store)
        try full.dropLast().write(to: URL(fileURLWithPath: store.historyDirectory + "/prod.jsonl"))
        #expect(store.readHistory("prod").plans == plans)
        #expect(store.readHistory("prod").warnings.isEmpty)
        var state = StateFile(environments: ["prod": EnvironmentState(plans: [Samples.plan(7), Samples.plan(9, status: .pending)])])
        try store.archive(&state)
        #expect(store.readHistory("prod").plans == plans + [Samples.plan(7)], "the record got its newline back, not cut")
        #expect(everyLineIsAPlan(try #require(Samples.bytes(store.historyDirectory + "/prod.jsonl"))))
    }

    @Test func badLinesAreSkippedAndReported() throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        let encoder = JSONEncoder()
        func line(_ plan: Plan) throws -> String { String(decoding: try encoder.encode(plan), as: UTF8.self) }
        var escaping = Samples.plan(2)
        escaping.id = "../../../escape-v2-1a2b3c4d5e"
        let stranger = Samples.plan(3, env: "dev")
        dir.write("history/prod.jsonl", [try line(Samples.plan(1)), "{broken", try line(escaping), try line(stranger), "", try line(Samples.plan(4))]
            .joined(separator: "\n") + "\n")
        let read = store.readHistory("prod")
        #expect(read.plans.map(\.version) == ["1", "4"])
        #expect(read.warnings.count == 3)
        #expect(read.warnings[0].hasPrefix(dir.file("history/prod.jsonl") + " line 2 is not a plan ("))
        #expect(read.warnings[1].contains("line 3 is not a valid plan of prod") && read.warnings[1].contains("'../../../escape-v2-1a2b3c4d5e'"))
        #expect(read.warnings[2].contains("line 4 is not a valid plan of prod") && read.warnings[2].contains("plan.environment: 'dev'"))
        #expect(store.history("prod").map(\.version) == ["1", "4"])
    }

    @Test func anUnreadableFileIsAWarning() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("history/prod.jsonl"), withIntermediateDirectories: true)
        let read = StateStore(path: dir.file("state.json")).readHistory("prod")
        #expect(read.plans.isEmpty)
        #expect(read.warnings == ["\(dir.file("history/prod.jsonl")) cannot be read (Is a directory); its plans are not shown"])
    }

    /// A write that fails part way (as on a full disk: some bytes, then ENOSPC) is taken back: the file is
    /// byte for byte what it was, and the error names the file and the system's reason.
    @Test(arguments: [0, 1, 200, 701])
    func aFailedAppendLeavesTheFileAsItWas(failingAfter budget: Int) throws {
        let dir = TemporaryDirectory()
        let store = StateStore(path: dir.file("state.json"))
        let (_, before) = try writeHistory(store)
        let path = store.historyDirectory + "/prod.jsonl"
        var remaining = budget
        #expect {
            try store.append([Samples.plan(6, extra: 4), Samples.plan(7)], to: path) { fd, bytes, count in
                guard remaining > 0 else { errno = ENOSPC; return -1 }
                let n = Glibc.write(fd, bytes, min(count, remaining))
                remaining -= n
                return n
            }
        } throws: { error in
            guard case let .writeFailed(failed, reason) = error as? StateError else { return false }
            return failed == path && reason.hasPrefix("No space left on device; the history file was left as it was")
        }
        #expect(Samples.bytes(path) == before)
    }

    /// The same on a real full disk: a 64 KiB tmpfs filled up, so the append's write is cut short by the kernel.
    @Test(.enabled(if: TinyDisk.canMount, "needs root and mount -t tmpfs"))
    func anAppendOnAFullDiskLeavesTheFileAsItWas() throws {
        let disk = try #require(TinyDisk())
        let store = StateStore(path: disk.path + "/state.json")
        let (plans, before) = try writeHistory(store)
        let path = store.historyDirectory + "/prod.jsonl"
        disk.fill()
        let more = (6...30).map { Samples.plan($0, extra: 3) }
        var state = StateFile(environments: ["prod": EnvironmentState(plans: more + [Samples.plan(99, status: .pending)])])
        #expect {
            try store.archive(&state)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("No space left on device")
        }
        #expect(Samples.bytes(path) == before, "the history file is byte for byte as before")
        #expect(state.environments["prod"]!.plans.count == more.count + 1, "the state keeps the plans that were not archived")
        disk.unfill()
        try store.archive(&state)
        let after = try #require(Samples.bytes(path))
        #expect(everyLineIsAPlan(after))
        #expect(store.readHistory("prod") == HistoryRead(plans: plans + more))
    }
}

/// A 64 KiB tmpfs mounted on a temporary folder for the life of the value.
final class TinyDisk {
    let folder = TemporaryDirectory("dagctl-tmpfs")
    var path: String { folder.path }

    static let canMount: Bool = {
        guard getuid() == 0 else { return false }
        return TinyDisk() != nil
    }()

    init?() {
        guard run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", folder.path]).status == 0 else { return nil }
    }

    deinit { run("umount", [folder.path]) }

    /// Writes a filler file until the disk is full.
    func fill() {
        let fd = open(path + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let block = [UInt8](repeating: 120, count: 4096)
        while write(fd, block, block.count) > 0 {}
        close(fd)
    }

    func unfill() { unlink(path + "/filler") }
}

/// A temporary folder in /dev/shm (a tmpfs, where fsync costs nothing) when there is one, else in the
/// system's temporary folder.
final class MemoryFolder {
    let path: String

    init() {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        path = "\(base)/dagctl-test-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
