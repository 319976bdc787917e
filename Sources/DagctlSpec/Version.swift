/// The `version` of `.dagctl/config.yaml`: an integer >= 1 or a dotted numeric string ("1.4.2"),
/// compared numerically component by component ("1.10" > "1.9", "1.4" == "1.4.0").
///
/// The text becomes part of plan ids, which name files and folders: `<env>-v<version>-<10 hex>` is
/// at most 32 + 2 + 64 + 11 = 109 bytes, under `Names.isValidPlanID`'s 128.
public struct Version: Comparable, Hashable, Sendable, CustomStringConvertible {
    public static let maxLength = 64
    /// Per component: 999,999,999 fits any Int, so no number is silently lost to overflow.
    public static let maxDigits = 9

    public let text: String
    public let components: [Int]

    public init?(_ text: String) {
        guard Self.boundsProblem(text) == nil else { return nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        var numbers: [Int] = []
        for part in parts {
            guard !part.isEmpty, part.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(part) else { return nil }
            numbers.append(n)
        }
        guard !numbers.isEmpty, numbers.contains(where: { $0 > 0 }) else { return nil }
        self.text = text
        self.components = numbers
    }

    public var description: String { text }

    /// Why `text` is too long or has too large a number to be a version, or nil.
    public static func boundsProblem(_ text: String) -> String? {
        if text.count > maxLength { return "version '\(excerpt(text, limit: 20))' is too long (at most \(maxLength) characters); versions become part of plan ids and folder names" }
        if text.split(separator: ".").contains(where: { $0.count > maxDigits }) {
            return "version '\(excerpt(text, limit: 20))' has a number longer than \(maxDigits) digits; each part is at most \(maxDigits) digits"
        }
        return nil
    }

    private func padded(to count: Int) -> [Int] { components + Array(repeating: 0, count: max(0, count - components.count)) }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        let n = max(lhs.components.count, rhs.components.count)
        return lhs.padded(to: n).lexicographicallyPrecedes(rhs.padded(to: n))
    }

    public static func == (lhs: Version, rhs: Version) -> Bool {
        let n = max(lhs.components.count, rhs.components.count)
        return lhs.padded(to: n) == rhs.padded(to: n)
    }

    public func hash(into hasher: inout Hasher) {
        var trimmed = components
        while trimmed.count > 1, trimmed.last == 0 { trimmed.removeLast() }
        hasher.combine(trimmed)
    }
}
