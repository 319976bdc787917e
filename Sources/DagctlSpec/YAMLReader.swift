import Yams

/// Collects the problems found while reading files, so that validation can list every one of them.
public final class IssueLog {
    public private(set) var issues: [SpecIssue] = []
    public init() {}
    public func add(_ issue: SpecIssue) { issues.append(issue) }
    public var isEmpty: Bool { issues.isEmpty }
}

/// Strict reading of one YAML mapping: every key must be known, every value of the right type, and
/// every problem names the file, the line and the key. Keys are tracked as they are read; `finish()`
/// reports the ones nobody asked for.
public final class MappingReader {
    public let file: String
    public let line: Int?
    let mapping: Node.Mapping
    let keyPrefix: String
    let log: IssueLog
    private var known: Set<String> = []

    init(file: String, mapping: Node.Mapping, keyPrefix: String, log: IssueLog) {
        self.file = file
        self.mapping = mapping
        self.keyPrefix = keyPrefix
        self.log = log
        self.line = mapping.mark?.line
    }

    /// Parses `text` and returns a reader for its top-level mapping, or nil after logging why not.
    public static func document(_ text: String, file: String, log: IssueLog) -> MappingReader? {
        // Before Yams sees the text: its composer can be made to spin (see YAMLLimits).
        if let refusal = YAMLLimits.problem(text, file: file) {
            log.add(refusal)
            return nil
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            log.add(describe(error, file: file, text: text))
            return nil
        } catch {
            log.add(SpecIssue(file: file, message: "cannot parse YAML: \(error)"))
            return nil
        }
        guard let node else {
            log.add(SpecIssue(file: file, line: 1, message: "the file is empty; expected a mapping of keys"))
            return nil
        }
        guard case .mapping(let mapping) = node else {
            log.add(SpecIssue(file: file, line: node.mark?.line, message: "expected a mapping of keys at the top level, found \(kind(of: node))"))
            return nil
        }
        return MappingReader(file: file, mapping: mapping, keyPrefix: "", log: log)
    }

    private func issue(_ key: String, _ node: Node?, _ message: String) {
        log.add(SpecIssue(file: file, line: node?.mark?.line ?? line, key: keyPrefix + key, message: message))
    }

    /// The raw node for `key`, marking the key as known.
    public func node(_ key: String) -> Node? {
        known.insert(key)
        for (k, v) in mapping where k.string == key { return v }
        return nil
    }

    public func has(_ key: String) -> Bool {
        mapping.contains { $0.key.string == key }
    }

    public func line(of key: String) -> Int? {
        mapping.first { $0.key.string == key }?.key.mark?.line ?? line
    }

    private func missing(_ key: String, required: Bool) {
        if required { issue(key, nil, "required key is missing") }
    }

    /// `s` unless it holds a NUL, which no file name, argument or variable can carry (C cuts the
    /// text there, so `main\0x` would silently mean `main`).
    private func withoutNUL(_ s: String, _ key: String, _ node: Node) -> String? {
        guard s.utf8.contains(0) else { return s }
        issue(key, node, "contains a NUL character (\\0); remove it")
        return nil
    }

    public func string(_ key: String, required: Bool = false) -> String? {
        guard let node = node(key) else { missing(key, required: required); return nil }
        if let s = Self.stringValue(node) { return withoutNUL(s, key, node) }
        issue(key, node, "expected a string, found \(Self.kind(of: node))\(Self.quoteHint(node))")
        return nil
    }

    /// Free text (a comment): any scalar is taken as written, so `comment: no` stays "no".
    public func text(_ key: String) -> String? {
        guard let node = node(key) else { return nil }
        if case .scalar(let s) = node, Self.tag(node) != .null { return withoutNUL(s.string, key, node) }
        issue(key, node, "expected text, found \(Self.kind(of: node))")
        return nil
    }

    public func bool(_ key: String) -> Bool? {
        guard let node = node(key) else { return nil }
        if case .scalar = node, Self.tag(node) == .bool, let b = node.bool { return b }
        issue(key, node, "expected true or false, found \(Self.kind(of: node))")
        return nil
    }

    public func int(_ key: String, required: Bool = false, range: ClosedRange<Int>? = nil) -> Int? {
        guard let node = node(key) else { missing(key, required: required); return nil }
        guard case .scalar = node, Self.tag(node) == .int, let n = node.int else {
            issue(key, node, "expected a whole number, found \(Self.kind(of: node))")
            return nil
        }
        if let range, !range.contains(n) {
            issue(key, node, "\(n) is out of range; expected \(range.lowerBound)..\(range.upperBound)")
            return nil
        }
        return n
    }

    /// A list of strings; `check` (why an item is wrong, or nil) is reported at the item's own line.
    public func strings(_ key: String, required: Bool = false, check: ((String) -> String?)? = nil) -> [String]? {
        guard let node = node(key) else { missing(key, required: required); return nil }
        guard case .sequence(let seq) = node else {
            issue(key, node, "expected a list of strings, found \(Self.kind(of: node))")
            return nil
        }
        var out: [String] = []
        var ok = true
        for item in seq {
            guard let s = Self.stringValue(item) else {
                issue(key, item, "expected a string in the list, found \(Self.kind(of: item))\(Self.quoteHint(item))")
                ok = false
                continue
            }
            guard let s = withoutNUL(s, key, item) else { ok = false; continue }
            if let problem = check?(s) {
                issue(key, item, problem)
                ok = false
            }
            out.append(s)
        }
        return ok ? out : nil
    }

    /// A mapping of names to strings; `checkName` (why a name is wrong, or nil) is reported at the name's line.
    public func stringMap(_ key: String, checkName: ((String) -> String?)? = nil) -> [String: String]? {
        guard let node = node(key) else { return nil }
        guard case .mapping(let map) = node else {
            issue(key, node, "expected a mapping of names to strings, found \(Self.kind(of: node))")
            return nil
        }
        var out: [String: String] = [:]
        var ok = true
        for (k, v) in map {
            guard let name = Self.stringValue(k) else { issue(key, k, "expected a string key"); ok = false; continue }
            if let problem = checkName?(name) { issue(key, k, problem); ok = false; continue }
            if let s = Self.stringValue(v) {
                if let s = withoutNUL(s, "\(key).\(name)", v) { out[name] = s } else { ok = false }
            } else {
                issue("\(key).\(name)", v, "expected a string, found \(Self.kind(of: v))\(Self.quoteHint(v))")
                ok = false
            }
        }
        return ok ? out : nil
    }

    public func mapping(_ key: String) -> MappingReader? {
        guard let node = node(key) else { return nil }
        guard case .mapping(let map) = node else {
            issue(key, node, "expected a mapping, found \(Self.kind(of: node))")
            return nil
        }
        return MappingReader(file: file, mapping: map, keyPrefix: keyPrefix + key + ".", log: log)
    }

    /// Every sequence item that is a mapping, as a reader; other items are reported.
    public func mappings(_ key: String, required: Bool = false) -> [MappingReader]? {
        guard let node = node(key) else { missing(key, required: required); return nil }
        guard case .sequence(let seq) = node else {
            issue(key, node, "expected a list, found \(Self.kind(of: node))")
            return nil
        }
        var out: [MappingReader] = []
        for (i, item) in seq.enumerated() {
            if case .mapping(let map) = item {
                out.append(MappingReader(file: file, mapping: map, keyPrefix: "\(keyPrefix)\(key)[\(i)].", log: log))
            } else {
                issue("\(key)[\(i)]", item, "expected a mapping, found \(Self.kind(of: item))")
            }
        }
        return out
    }

    /// Logs a problem with the value of `key` (for checks beyond types, like name patterns).
    public func invalid(_ key: String, _ message: String) {
        issue(key, mapping.first { $0.key.string == key }?.value, message)
    }

    /// Reports every key that was never read.
    public func finish() {
        for (k, _) in mapping {
            let name = k.string ?? "?"
            guard !known.contains(name) else { continue }
            var message = "unknown key"
            // A typo is within 2 edits of a known key, so only short names are compared: edit
            // distance costs length × length, and a hostile file may hold many long keys.
            let typo = name.count <= 64 ? known.min { editDistance($0, name) < editDistance($1, name) } : nil
            if let typo, editDistance(typo, name) <= 2 {
                message += "; did you mean '\(keyPrefix)\(typo)'?"
            } else if !known.isEmpty {
                message += "; known keys: \(known.sorted().joined(separator: ", "))"
            }
            log.add(SpecIssue(file: file, line: k.mark?.line, key: keyPrefix + excerpt(name, limit: 64), message: message))
        }
    }

    // MARK: - helpers

    /// The resolved YAML tag of a node (`!!str`, `!!int`, …).
    public static func tag(_ node: Node) -> Tag.Name { Tag.Name(rawValue: node.tag.description) }

    static func stringValue(_ node: Node) -> String? {
        guard case .scalar(let s) = node, tag(node) == .str else { return nil }
        return s.string
    }

    static func kind(of node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            switch tag(node) {
            case .int: return "a number (\(s.string))"
            case .float: return "a number (\(s.string))"
            case .bool: return "a boolean (\(s.string))"
            case .null: return "nothing (null)"
            case .str: return "a string"
            default: return "'\(s.string)'"
            }
        }
    }

    static func quoteHint(_ node: Node) -> String {
        if case .scalar(let s) = node, tag(node) != .null { return "; quote it if you mean the text \"\(s.string)\"" }
        return ""
    }

    static func describe(_ error: YamlError, file: String, text: String) -> SpecIssue {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let ctx = context.map { " (\($0.text))" } ?? ""
            return SpecIssue(file: file, line: mark.line, message: "malformed YAML: \(problem)\(ctx) at column \(mark.column)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let key = duplicates.first ?? "?"
            return SpecIssue(file: file, line: secondOccurrence(of: key, in: text) ?? context.mark.line, key: key,
                             message: "duplicate key; each key may appear only once")
        case let .reader(problem, _, _, _):
            return SpecIssue(file: file, message: "cannot read the file as UTF-8 YAML: \(problem)")
        default:
            return SpecIssue(file: file, message: "cannot parse YAML: \(error)")
        }
    }

    /// The line where `key:` is written a second time, for a precise duplicate-key report.
    static func secondOccurrence(of key: String, in text: String) -> Int? {
        var seen = 0
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("- ") { line = line.dropFirst(2).drop { $0 == " " } }
            for prefix in ["\(key):", "\"\(key)\":", "'\(key)':"] where line.hasPrefix(prefix) {
                seen += 1
                if seen == 2 { return i + 1 }
            }
        }
        return nil
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}

/// User text for a message: at most `limit` characters, with control and invisible formatting
/// characters written as escapes, so that a message stays one line and shows what is really there.
public func excerpt(_ text: String, limit: Int = 40) -> String {
    var out = ""
    for (i, scalar) in text.unicodeScalars.enumerated() {
        if i == limit { return out + "…" }
        out += isControl(scalar) ? escaped(scalar) : String(scalar)
    }
    return out
}

/// Control, formatting (bidi overrides), line/paragraph separators and code points without a
/// character: nothing a reader can see on one line.
func isControl(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned: return true
    default: return false
    }
}

func escaped(_ scalar: Unicode.Scalar) -> String {
    switch scalar {
    case "\n": return "\\n"
    case "\r": return "\\r"
    case "\t": return "\\t"
    case "\0": return "\\0"
    default: return "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
    }
}
