/// One problem found in a user's file: where it is, which key, what is wrong and, where we can tell,
/// what to do about it.
public struct SpecIssue: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String

    public init(file: String, line: Int? = nil, key: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let key { return "\(location): '\(key)': \(message)" }
        return "\(location): \(message)"
    }
}

/// Several problems at once: validation lists them all, not just the first.
public struct SpecIssues: Error, Sendable, CustomStringConvertible {
    public var issues: [SpecIssue]
    public init(_ issues: [SpecIssue]) { self.issues = issues }
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}
