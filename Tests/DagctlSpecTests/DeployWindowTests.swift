import Foundation
import Testing
@testable import DagctlSpec

/// Deploy windows on an injected clock: every time below is given, never read from the machine.
@Suite("Deploy windows")
struct DeployWindowTests {
    func at(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    func window(_ kind: DeployWindow.Kind, _ cron: String, _ duration: String, _ zone: String = "UTC") throws -> DeployWindow {
        DeployWindow(kind: kind, schedule: try CronSchedule(cron), duration: try DeployWindow.duration(duration), timeZone: TimeZone(identifier: zone)!)
    }

    @Test func allowWindowEdges() throws {
        let weekdayNights = [try window(.allow, "0 22 * * mon-fri", "2h")]
        // Monday 2026-11-30: open from 22:00 (inclusive) to 24:00 (exclusive).
        #expect(DeployWindows.verdict(weekdayNights, at: at("2026-11-30T21:59:00Z")) == .closed(until: at("2026-11-30T22:00:00Z")))
        #expect(DeployWindows.verdict(weekdayNights, at: at("2026-11-30T22:00:00Z")) == .open)
        #expect(DeployWindows.verdict(weekdayNights, at: at("2026-11-30T23:59:59Z")) == .open)
        #expect(DeployWindows.verdict(weekdayNights, at: at("2026-12-01T00:00:00Z")) == .closed(until: at("2026-12-01T22:00:00Z")))
        // Friday night's window, then the weekend: next Monday.
        #expect(DeployWindows.verdict(weekdayNights, at: at("2026-12-05T12:00:00Z")) == .closed(until: at("2026-12-07T22:00:00Z")))
    }

    @Test func aWindowSpanningMidnight() throws {
        let w = [try window(.allow, "0 22 * * *", "4h")]
        #expect(DeployWindows.verdict(w, at: at("2026-11-30T01:30:00Z")) == .open, "opened at 22:00 the day before")
        #expect(DeployWindows.verdict(w, at: at("2026-11-30T02:00:00Z")) == .closed(until: at("2026-11-30T22:00:00Z")))
    }

    @Test func denyWindowsWinOverAllowWindows() throws {
        let w = [try window(.allow, "0 0 * * *", "24h"), try window(.deny, "0 9 * * *", "8h")]
        #expect(DeployWindows.verdict(w, at: at("2026-11-30T08:59:00Z")) == .open)
        #expect(DeployWindows.verdict(w, at: at("2026-11-30T12:00:00Z")) == .closed(until: at("2026-11-30T17:00:00Z")))
        // Only deny windows: open outside them.
        #expect(DeployWindows.verdict([try window(.deny, "0 9 * * *", "8h")], at: at("2026-11-30T18:00:00Z")) == .open)
    }

    @Test func endOfMonth() throws {
        // The 31st: November has none, so after 2026-11-30 the next is 2026-12-31.
        let w = [try window(.allow, "0 0 31 * *", "1h")]
        #expect(DeployWindows.verdict(w, at: at("2026-11-29T00:00:00Z")) == .closed(until: nil), "not within 8 days")
        #expect(DeployWindows.verdict(w, at: at("2026-12-30T12:00:00Z")) == .closed(until: at("2026-12-31T00:00:00Z")))
        // Day-of-month or day-of-week, as cron reads both: the 1st, or any Sunday.
        let either = [try window(.allow, "0 0 1 * sun", "1h")]
        #expect(DeployWindows.verdict(either, at: at("2026-11-30T12:00:00Z")) == .closed(until: at("2026-12-01T00:00:00Z")))
    }

    /// Europe/Berlin goes from 02:00 to 03:00 on 2026-03-29: 02:30 does not exist that day, and the
    /// window opens right after the jump (03:00 local, 01:00 UTC), as cron runs such jobs.
    @Test func aWindowAtTwoThirtyOnASpringForwardDay() throws {
        let w = [try window(.allow, "30 2 * * *", "1h", "Europe/Berlin")]
        #expect(DeployWindows.verdict(w, at: at("2026-03-29T00:30:00Z")) == .closed(until: at("2026-03-29T01:00:00Z")))
        #expect(DeployWindows.verdict(w, at: at("2026-03-29T01:30:00Z")) == .open)
        #expect(DeployWindows.verdict(w, at: at("2026-03-29T02:00:00Z")) == .closed(until: at("2026-03-30T00:30:00Z")),
                "the next day 02:30 is 00:30 UTC again (summer time)")
        // Going back on 2026-10-25 (03:00 → 02:00): 02:30 happens twice and opens the window once.
        let back = DeployWindows.verdict(w, at: at("2026-10-25T01:45:00Z"))
        #expect(back == .closed(until: at("2026-10-26T01:30:00Z")), "opened at 00:30 UTC (the first 02:30), closed at 01:30: \(back)")
    }

    @Test func badFieldsAreRefusedWithWhatIsWrong() throws {
        for (cron, words) in [("0 22 * *", "5-field"), ("60 * * * *", "not a valid minute"), ("0 22 * * funday", "day of week"),
                              ("*/0 * * * *", "step"), ("0 5-2 * * *", "backwards")] {
            #expect(throws: WindowError.self) { try CronSchedule(cron) }
            do { _ = try CronSchedule(cron) } catch { #expect(error.description.contains(words), "\(cron): \(error)") }
        }
        for bad in ["2", "h", "2x", "0m", "800h", ""] {
            #expect(throws: WindowError.self, "\(bad)") { try DeployWindow.duration(bad) }
        }
        #expect(try DeployWindow.duration("2h30m") == 9000)
        #expect(try CronSchedule("0 9-17/2 * jan,dec 7").weekdays == [0])
    }
}
