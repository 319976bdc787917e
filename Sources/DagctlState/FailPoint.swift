import Foundation
import Synchronization

/// Named places where a test can have dagctl kill itself (`SIGKILL`), to prove that a crash exactly
/// there loses nothing: `DAGCTL_FAILPOINT=<name>:<n>` kills the process the n-th time `<name>` is
/// reached. Unset (always, outside tests) it costs one comparison. The places are inside the writes
/// that matter: between writing a state file's temporary copy and renaming it, after the rename,
/// half-way through a history append, and after an append before the state that drops its plans.
public enum FailPoint {
    public static let stateTempWritten = "state-temp-written"
    public static let stateRenamed = "state-renamed"
    public static let historyHalfWritten = "history-half-written"
    public static let historyAppended = "history-appended"
    public static let all = [stateTempWritten, stateRenamed, historyHalfWritten, historyAppended]

    private static let armed: (name: String, count: Int)? = {
        guard let value = ProcessInfo.processInfo.environment["DAGCTL_FAILPOINT"],
              let colon = value.lastIndex(of: ":"), let n = Int(value[value.index(after: colon)...]), n > 0 else { return nil }
        return (String(value[..<colon]), n)
    }()
    private static let hits = Atomic<Int>(0)

    /// Kills the process here if this is the armed place and its n-th hit.
    public static func hit(_ name: String) {
        guard let armed, armed.name == name else { return }
        if hits.add(1, ordering: .sequentiallyConsistent).newValue == armed.count { kill(getpid(), SIGKILL) }
    }
}
