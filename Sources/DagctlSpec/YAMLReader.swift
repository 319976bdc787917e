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
    ///
    /// A duplicate key does not stop the reading (Yams would refuse the whole file, hiding every
    /// other problem): each later occurrence is reported at its line, and Yams is given a copy of
    /// the text where that key is replaced by a placeholder. The placeholders are taken out of the
    /// tree again, so the first occurrence's value is the one read and no reader ever sees them.
    public static func document(_ text: String, file: String, log: IssueLog) -> MappingReader? {
        // A byte-order mark is not content (libyaml would count it as a column and see the first key indented).
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        // Before Yams sees the text: its composer can be made to spin (see YAMLLimits).
        let scan = YAMLLimits.scan(text, file: file)
        if let refusal = scan.refusal {
            log.add(refusal)
            return nil
        }
        for duplicate in scan.duplicates {
            log.add(SpecIssue(file: file, line: duplicate.line, key: excerpt(duplicate.key, limit: 64), message: duplicateMessage))
        }
        let rewrite = KeyRewrite(text, scan)
        var node: Node?
        do {
            node = try Yams.compose(yaml: rewrite?.text ?? text)
        } catch let error as YamlError {
            if case .duplicatedKeysInMapping = error, !scan.duplicates.isEmpty { return nil } // reported above
            log.add(describe(error, file: file, rewrite: rewrite))
            return nil
        } catch {
            log.add(SpecIssue(file: file, message: "cannot parse YAML: \(error)"))
            return nil
        }
        if let rewrite, let composed = node { node = rewrite.strip(composed) }
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

    static let duplicateMessage = "duplicate key; each key may appear only once"

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

    /// `rewrite`, when Yams read a rewritten text, gives back the column as the user wrote it.
    static func describe(_ error: YamlError, file: String, rewrite: KeyRewrite? = nil) -> SpecIssue {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let ctx = context.map { " (\($0.text))" } ?? ""
            let column = rewrite?.originalColumn(line: mark.line, column: mark.column) ?? mark.column
            return SpecIssue(file: file, line: mark.line, message: "malformed YAML: \(problem)\(ctx) at column \(column)")
        case let .duplicatedKeysInMapping(duplicates, context):
            // Not reached: the scan finds every duplicate Yams would (see DuplicateKey).
            return SpecIssue(file: file, line: context.mark.line, key: duplicates.first.map { excerpt($0, limit: 64) },
                             message: duplicateMessage)
        case let .reader(problem, _, _, _):
            return SpecIssue(file: file, message: "cannot read the file as UTF-8 YAML: \(problem)")
        default:
            return SpecIssue(file: file, message: "cannot parse YAML: \(error)")
        }
    }
}

/// A copy of a file's text in which every later duplicate key is replaced by a placeholder key,
/// so that Yams composes it; the lines stay where they were.
///
/// A replacement covers the key's node as written (with its tag and anchor, and quotes if it is
/// quoted) and becomes `"dagctl-duplicate-key-N"`, quoted so that it ends where any key may end
/// (`{"a":1}` too). An anchor on the key is kept in front of it so an alias to it still resolves
/// (to the placeholder text). A key written over several lines (`? ...`) keeps its line breaks, so
/// every later line keeps its number; only columns on the key's own last line move, and
/// `originalColumn` moves them back for Yams' error messages.
struct KeyRewrite {
    let text: String
    let placeholders: Set<String>
    /// For a 0-based line: from which column of the rewritten text (ascending) how much to add to
    /// get the column in the original text.
    private var shifts: [Int: [(from: Int, add: Int)]] = [:]

    /// Nil when there is nothing to replace.
    init?(_ original: String, _ scan: YAMLScan) {
        guard !scan.duplicates.isEmpty else { return nil }
        let bytes = Array(original.utf8)
        // libyaml's `index` counts Unicode scalars: find the byte offset of each scalar index needed,
        // in one pass (the keys come in text order and do not overlap).
        let wanted = scan.duplicates.flatMap { [Int($0.start.index), Int($0.end.index)] }
        var offsets: [Int] = []
        offsets.reserveCapacity(wanted.count)
        var scalar = 0
        for (offset, byte) in bytes.enumerated() where byte & 0xC0 != 0x80 {
            while offsets.count < wanted.count, wanted[offsets.count] == scalar { offsets.append(offset) }
            if offsets.count == wanted.count { break }
            scalar += 1
        }
        while offsets.count < wanted.count, wanted[offsets.count] == scalar { offsets.append(bytes.count) }
        guard offsets.count == wanted.count else { return nil }

        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + scan.duplicates.count * 32)
        var placeholders: Set<String> = []
        var cursor = 0
        var counter = 0
        var last: (line: Int, add: Int) = (-1, 0)
        for (i, duplicate) in scan.duplicates.enumerated() {
            let start = offsets[2 * i], end = offsets[2 * i + 1]
            guard cursor <= start, start <= end else { return nil }
            var placeholder: String
            repeat {
                counter += 1
                placeholder = DuplicateKey.placeholderPrefix + String(counter)
            } while scan.placeholderLikeKeys.contains(placeholder)
            placeholders.insert(placeholder)
            var replacement = duplicate.anchor.map { "&\($0) " } ?? ""
            // An empty key right after '?' needs a space, or '?"' would start a plain scalar.
            if start == end, start > 0, bytes[start - 1] == UInt8(ascii: "?") { replacement = " " + replacement }
            replacement += "\"\(placeholder)\""
            let startLine = Int(duplicate.start.line), endLine = Int(duplicate.end.line)
            out.append(contentsOf: bytes[cursor..<start])
            out.append(contentsOf: replacement.utf8)
            out.append(contentsOf: repeatElement(UInt8(ascii: "\n"), count: endLine - startLine))
            cursor = end
            // Columns after the replacement, on its last line.
            let startColumn = Int(duplicate.start.column), endColumn = Int(duplicate.end.column)
            let newEnd = startLine == endLine
                ? startColumn - (last.line == startLine ? last.add : 0) + replacement.unicodeScalars.count
                : 0
            last = (endLine, endColumn - newEnd)
            shifts[endLine, default: []].append((from: newEnd, add: last.add))
        }
        out.append(contentsOf: bytes[cursor...])
        text = String(decoding: out, as: UTF8.self)
        self.placeholders = placeholders
    }

    /// The column (from 1) in the original text of Yams' `line` and `column` (from 1) in `text`.
    func originalColumn(line: Int, column: Int) -> Int {
        guard let moves = shifts[line - 1], let move = moves.last(where: { $0.from <= column - 1 }) else { return column }
        return column + move.add
    }

    /// `node` without the placeholder keys and their values.
    func strip(_ node: Node) -> Node {
        switch node {
        case .mapping(let mapping):
            let pairs = mapping.compactMap { pair -> (Node, Node)? in
                if case .scalar(let key) = pair.key, placeholders.contains(key.string) { return nil }
                return (pair.key, strip(pair.value))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark, mapping.anchor))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map(strip), sequence.tag, sequence.style, sequence.mark, sequence.anchor))
        case .scalar, .alias:
            return node
        }
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
