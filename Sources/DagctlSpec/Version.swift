/// The `version` of `.dagctl/config.yaml`: an integer >= 1 or a dotted numeric string ("1.4.2"),
/// compared numerically component by component ("1.10" > "1.9", "1.4" == "1.4.0").
public struct Version: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let text: String
    public let components: [Int]

    public init?(_ text: String) {
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
