import Foundation

/// A 5-field cron schedule (minute hour day-of-month month day-of-week), as Vixie cron reads it:
/// `*`, lists, ranges, steps, month and weekday names, `7` for Sunday; when both day fields are
/// restricted, a day matches either.
public struct CronSchedule: Sendable, Equatable {
    public var text: String
    var minutes, hours, days, months, weekdays: Set<Int>
    var anyDay, anyWeekday: Bool

    public init(_ text: String) throws(WindowError) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw WindowError("'\(text)' is not a 5-field cron schedule (minute hour day-of-month month day-of-week), e.g. \"0 22 * * 1-5\"")
        }
        self.text = text
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        minutes = try Self.field(fields[0], "minute", 0...59)
        hours = try Self.field(fields[1], "hour", 0...23)
        days = try Self.field(fields[2], "day of month", 1...31)
        months = try Self.field(fields[3], "month", 1...12, names: monthNames, nameBase: 1)
        let weekdays = try Self.field(fields[4], "day of week", 0...7, names: dayNames, nameBase: 0)
        self.weekdays = Set(weekdays.map { $0 % 7 })
        anyDay = fields[2] == "*"
        anyWeekday = fields[4] == "*"
    }

    static func field(_ text: String, _ what: String, _ range: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0) throws(WindowError) -> Set<Int> {
        func value(_ s: Substring) throws(WindowError) -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let i = names.firstIndex(of: s.lowercased()) { return i + nameBase }
            throw WindowError("'\(s)' is not a valid \(what) (\(range.lowerBound)–\(range.upperBound)\(names.isEmpty ? "" : " or a name such as \(names[1])"))")
        }
        var out: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            var step = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1]), n > 0 else { throw WindowError("'\(part)' has a step that is not a positive number") }
                step = n
            }
            let span = pieces[0]
            let bounds: ClosedRange<Int>
            if span == "*" {
                bounds = range
            } else if let dash = span.firstIndex(of: "-") {
                let low = try value(span[..<dash]), high = try value(span[span.index(after: dash)...])
                guard low <= high else { throw WindowError("'\(part)' is a range that runs backwards") }
                bounds = low...high
            } else {
                let n = try value(span)
                bounds = n...(pieces.count == 2 ? range.upperBound : n)
            }
            out.formUnion(stride(from: bounds.lowerBound, through: bounds.upperBound, by: step))
        }
        return out
    }

    /// Whether the schedule fires at this wall-clock minute.
    func matches(_ c: DateComponents) -> Bool {
        guard let minute = c.minute, let hour = c.hour, let day = c.day, let month = c.month, let weekday = c.weekday else { return false }
        guard minutes.contains(minute), hours.contains(hour), months.contains(month) else { return false }
        let dayOK = days.contains(day), weekdayOK = weekdays.contains(weekday - 1)
        switch (anyDay, anyWeekday) {
        case (true, true): return true
        case (false, true): return dayOK
        case (true, false): return weekdayOK
        case (false, false): return dayOK || weekdayOK
        }
    }
}

public struct WindowError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One entry of an environment's `windows:` (SPEC §10).
public struct DeployWindow: Sendable, Equatable {
    public enum Kind: String, Sendable { case allow, deny }
    public var kind: Kind
    public var schedule: CronSchedule
    public var duration: TimeInterval
    public var timeZone: TimeZone

    public init(kind: Kind, schedule: CronSchedule, duration: TimeInterval, timeZone: TimeZone) {
        self.kind = kind
        self.schedule = schedule
        self.duration = duration
        self.timeZone = timeZone
    }

    /// A Go-style duration: `2h30m`, `45m`, `90s`; more than 0, at most 31 days.
    public static func duration(_ text: String) throws(WindowError) -> TimeInterval {
        var total: TimeInterval = 0
        var number = ""
        var any = false
        for ch in text {
            if ch.isASCII && ch.isNumber { number.append(ch); continue }
            guard let n = Double(number) else { throw WindowError("'\(text)' is not a duration such as 2h30m, 45m or 90s") }
            switch ch {
            case "h": total += n * 3600
            case "m": total += n * 60
            case "s": total += n
            default: throw WindowError("'\(text)' is not a duration such as 2h30m, 45m or 90s ('\(ch)' is not h, m or s)")
            }
            number = ""
            any = true
        }
        guard any, number.isEmpty else { throw WindowError("'\(text)' is not a duration such as 2h30m, 45m or 90s (every number needs its unit)") }
        guard total > 0, total <= 31 * 86400 else { throw WindowError("'\(text)' must be more than 0 and at most 31 days (744h)") }
        return total
    }

    /// The instants the window opens in [from, to): the schedule's wall-clock minutes in its time
    /// zone. A wall-clock time skipped when clocks go forward opens the window at the first minute
    /// after the jump (as cron runs such jobs); one that happens twice when clocks go back opens it
    /// at its first occurrence only.
    func openings(from: Date, to: Date) -> [Date] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var wall = Calendar(identifier: .gregorian)
        wall.timeZone = TimeZone(identifier: "UTC")!
        let units: Set<Calendar.Component> = [.year, .month, .day, .hour, .minute, .weekday]
        var out: [Date] = []
        var t = Date(timeIntervalSince1970: (from.timeIntervalSince1970 / 60).rounded(.down) * 60)
        // The latest wall-clock minute seen: minutes the clock repeats (going back) are not new.
        var highWater = wall.date(from: calendar.dateComponents(units, from: t.addingTimeInterval(-60)))!
        while t < to {
            let wallHere = wall.date(from: calendar.dateComponents(units, from: t))!
            if wallHere > highWater {
                // One minute, or after a jump forward the skipped ones too: they open the window now.
                var minute = wallHere
                while minute > highWater {
                    if schedule.matches(wall.dateComponents(units, from: minute)) { out.append(t); break }
                    minute = minute.addingTimeInterval(-60)
                }
                highWater = wallHere
            }
            t = t.addingTimeInterval(60)
        }
        return out
    }
}

/// Whether an environment may start a plan now, and if not, from when (SPEC §10).
public enum DeployWindows {
    public enum Verdict: Sendable, Equatable {
        case open
        /// Closed; opens at `until` (nil: not within the next 8 days).
        case closed(until: Date?)
    }

    public static let horizon: TimeInterval = 8 * 86400

    /// "until 2026-11-30T22:00:00Z", or that it will not open within the horizon.
    public static func describe(_ until: Date?) -> String {
        guard let until else { return "(no window opens within the next 8 days)" }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return "until \(f.string(from: until))"
    }

    public static func verdict(_ windows: [DeployWindow], at now: Date) -> Verdict {
        guard !windows.isEmpty else { return .open }
        let longest = windows.map(\.duration).max() ?? 0
        // Each window's intervals that touch [now, now + horizon).
        var allow: [Range<Date>] = [], deny: [Range<Date>] = []
        for w in windows {
            for start in w.openings(from: now.addingTimeInterval(-longest), to: now.addingTimeInterval(horizon)) {
                let interval = start..<start.addingTimeInterval(w.duration)
                if w.kind == .allow { allow.append(interval) } else { deny.append(interval) }
            }
        }
        let hasAllow = windows.contains { $0.kind == .allow }
        func isOpen(_ t: Date) -> Bool {
            (!hasAllow || allow.contains { $0.contains(t) }) && !deny.contains { $0.contains(t) }
        }
        if isOpen(now) { return .open }
        // It can only open where an allow window starts or a deny window ends.
        let candidates = (allow.map(\.lowerBound) + deny.map(\.upperBound)).filter { $0 > now }.sorted()
        return .closed(until: candidates.first(where: isOpen))
    }
}
