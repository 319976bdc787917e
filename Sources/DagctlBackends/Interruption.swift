import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP, as dagctl handles them: the signal is remembered and forwarded to the
/// running child's process group, the child's end is recorded truthfully, and nothing new starts
/// afterwards (`LiveProcess.run` refuses, and the engine checks `caught` between steps).
public enum Interruption {
    private static let receivedSignal = Atomic<Int32>(0)
    /// The process group of the child running now (0 when none), for the handler to forward to.
    static let childGroup = Atomic<Int32>(0)

    private static let handlers: Void = {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { s in
                Interruption.receivedSignal.store(s, ordering: .sequentiallyConsistent)
                let group = Interruption.childGroup.load(ordering: .sequentiallyConsistent)
                if group > 0 { kill(-group, SIGTERM) }
            }
        }
    }()

    /// Installs the handlers (once). Call it before the first step that must not be cut short.
    public static func install() { _ = handlers }

    /// The signal caught, if any.
    public static var caught: Int32? {
        let s = receivedSignal.load(ordering: .sequentiallyConsistent)
        return s == 0 ? nil : s
    }

    /// "SIGTERM" for 15.
    public static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(sig)"
        }
    }

    /// Throws when a signal was received: the caller must not start anything new.
    public static func check(before what: String) throws {
        if let sig = caught { throw InterruptedError(signal: sig, before: what) }
    }

}

/// dagctl was asked to stop before `before` started.
public struct InterruptedError: Error, CustomStringConvertible, Sendable {
    public var signal: Int32
    public var before: String
    public var description: String { "dagctl received \(Interruption.name(signal)) and stopped before \(before)" }
}
