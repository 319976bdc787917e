// libyaml's event parser, the one Yams is built on. Yams does not export it, and CYaml is not a product
// of the Yams package, so this import relies on SwiftPM making the module of a dependency's C target
// visible to its dependents. It is the only way to look at the events before Yams composes them.
import CYaml

/// Bounds on the work any file dagctl reads can cause, checked before Yams composes a tree.
///
/// Measured: in `Yams.compose` a key that is an alias of a nested anchor (`? *a8`, 460 bytes standing
/// for 10^9 nodes) spins for minutes in the composer's duplicate-key check, which hashes each key's
/// whole expanded tree. Building the tree itself is cheap (aliases share nodes), so the limits are
/// checked on libyaml's events, one linear pass that stops at the first problem.
public enum YAMLLimits {
    /// dagctl's own files are a few KiB; a large dbt_project.yml is tens of KiB. 1 MiB leaves room
    /// for both while bounding the parse.
    public static let maxBytes = 1 << 20
    /// Nodes in the document with every alias expanded into a copy of its anchor. Real files have
    /// hundreds to a few thousand; a billion-laughs file reaches this within a few lines.
    public static let maxNodes = 100_000
    /// Nested lists and mappings. dbt_project.yml nests by folder; a few dozen levels at most.
    public static let maxDepth = 64

    /// One pass over the events of `text`: the first reason it is refused, or else every duplicate
    /// key up to the end of the first document. A YAML syntax error is left to Yams to report (it
    /// stops at the same event), so its message stays the same as before; the duplicates before it
    /// are still found.
    static func scan(_ text: String, file: String) -> YAMLScan {
        let size = text.utf8.count
        if size > maxBytes {
            return YAMLScan(refusal: SpecIssue(file: file, message: "the file is too large (\(size) bytes; dagctl reads at most \(maxBytes) bytes, 1 MiB); check that this is the right file"))
        }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { return YAMLScan() }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var scan = EventScan(file: file)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    if let refusal = nestingError(parser, file: file) { return YAMLScan(refusal: refusal) }
                    return scan.found
                }
                defer { yaml_event_delete(&event) }
                switch scan.next(event) {
                case .more: continue
                case .done: return scan.found
                case .refuse(let issue): return YAMLScan(refusal: issue)
                }
            }
        }
    }

    static func tooDeep(_ file: String, line: Int) -> SpecIssue {
        SpecIssue(file: file, line: line, message: "lists and mappings are nested more than \(maxDepth) levels deep; flatten the file")
    }

    /// libyaml scans ahead through flow brackets and stops at its own limit (1000 levels) before it
    /// yields an event; that error is reported like ours rather than in libyaml's words.
    private static func nestingError(_ parser: yaml_parser_t, file: String) -> SpecIssue? {
        guard let problem = parser.problem, String(cString: problem).contains("nesting level") else { return nil }
        return tooDeep(file, line: Int(parser.problem_mark.line) + 1)
    }
}

/// What one pass over a file's events found.
struct YAMLScan {
    /// The first reason the file is refused; when set, nothing else is reported for the file.
    var refusal: SpecIssue?
    /// Every later occurrence of a key that its mapping already has, in file order.
    var duplicates: [DuplicateKey] = []
    /// Keys written in the file that start with `DuplicateKey.placeholderPrefix`, so that no
    /// placeholder is ever one of the file's own keys.
    var placeholderLikeKeys: Set<String> = []
}

/// A key written again in a mapping that already has it.
///
/// Keys are compared by their scalar value as written, after unquoting and escapes and without
/// their tag: `ref`, `"ref"`, `'ref'` and `"r\x65f"` are one key, and so are `1` and `"1"` (which
/// is how `MappingReader` looks keys up). Lists, mappings and aliases as keys are refused before
/// this matters.
struct DuplicateKey {
    /// Placeholder keys start with this (see `MappingReader.document`).
    static let placeholderPrefix = "dagctl-duplicate-key-"

    var key: String
    /// The key's anchor, if it has one: a replacement keeps it, so an alias to it still resolves.
    var anchor: String?
    /// The key's node as written, from its anchor or tag (if any) to its end: libyaml's marks, with
    /// `index` counting Unicode scalars from the start of the text (not bytes), `line` and
    /// `column` from 0.
    var start: yaml_mark_t
    var end: yaml_mark_t

    /// The line of the key, from 1.
    var line: Int { Int(start.line) + 1 }
}

/// Walks one document's events: tracks which node is a key, how deep the nesting is, how many
/// nodes each anchor stands for (so that an alias costs its anchor's full size), and which keys
/// each mapping has already (for duplicates).
private struct EventScan {
    enum Step { case more, done, refuse(SpecIssue) }

    struct Container {
        var isMapping: Bool
        var anchor: String?
        /// Nodes inside so far, counting the container itself; aliases count their anchor's size.
        var nodes = 1
        /// Children seen; in a mapping, even positions are keys.
        var children = 0
        /// In a mapping, the keys seen so far.
        var keys: Set<String> = []
    }

    let file: String
    var open: [Container] = []
    var anchorSizes: [String: Int] = [:]
    var total = 0
    var sawAlias = false
    var found = YAMLScan()

    init(file: String) { self.file = file }

    mutating func next(_ event: yaml_event_t) -> Step {
        let line = Int(event.start_mark.line) + 1
        switch event.type {
        case YAML_DOCUMENT_END_EVENT, YAML_STREAM_END_EVENT:
            return .done // Yams reads one document; a second one is its error to report.
        case YAML_SCALAR_EVENT:
            let isKey = nextIsKey
            if let refusal = child(line: line, isAlias: false, isContainer: false) { return refusal }
            if isKey { key(event) }
            return add(1, anchor: name(event.data.scalar.anchor), line: line)
        case YAML_ALIAS_EVENT:
            if let refusal = child(line: line, isAlias: true, isContainer: false) { return refusal }
            sawAlias = true
            // An undefined alias counts as one node; Yams reports it.
            return add(name(event.data.alias.anchor).flatMap { anchorSizes[$0] } ?? 1, anchor: nil, line: line)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            if let refusal = child(line: line, isAlias: false, isContainer: true) { return refusal }
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            let anchor = name(isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
            open.append(Container(isMapping: isMapping, anchor: anchor))
            if open.count > YAMLLimits.maxDepth { return .refuse(YAMLLimits.tooDeep(file, line: line)) }
            total += 1
            return check(line: line)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let done = open.popLast() else { return .more }
            if let anchor = done.anchor { anchorSizes[anchor] = done.nodes }
            if !open.isEmpty { open[open.count - 1].nodes += done.nodes }
            return .more
        default:
            return .more
        }
    }

    /// Whether the next child of the innermost container is a key.
    private var nextIsKey: Bool {
        guard let last = open.last else { return false }
        return last.isMapping && last.children % 2 == 0
    }

    /// Counts a new child of the innermost container; refuses an alias or a list/mapping used as a key.
    private mutating func child(line: Int, isAlias: Bool, isContainer: Bool) -> Step? {
        guard !open.isEmpty else { return nil }
        let isKey = nextIsKey
        open[open.count - 1].children += 1
        guard isKey else { return nil }
        if isAlias {
            return .refuse(SpecIssue(file: file, line: line, message: "aliases may not be used as keys; write the key out"))
        }
        if isContainer {
            return .refuse(SpecIssue(file: file, line: line, message: "a key must be plain text, not a list or mapping; write the key as text"))
        }
        return nil
    }

    /// Notes a scalar key of the innermost mapping, and any earlier occurrence of it there.
    private mutating func key(_ event: yaml_event_t) {
        let scalar = event.data.scalar
        let key = scalar.value.map { String(decoding: UnsafeBufferPointer(start: $0, count: scalar.length), as: UTF8.self) } ?? ""
        if key.hasPrefix(DuplicateKey.placeholderPrefix) { found.placeholderLikeKeys.insert(key) }
        guard !open[open.count - 1].keys.insert(key).inserted else { return }
        found.duplicates.append(DuplicateKey(key: key, anchor: name(scalar.anchor), start: event.start_mark, end: event.end_mark))
    }

    /// Adds a finished node of `size` nodes to the innermost container and the total.
    private mutating func add(_ size: Int, anchor: String?, line: Int) -> Step {
        if let anchor { anchorSizes[anchor] = size }
        if !open.isEmpty { open[open.count - 1].nodes += size }
        total += size
        return check(line: line)
    }

    /// Every anchor's size is part of `total`, which stays at most `maxNodes` until this refuses: no overflow.
    private func check(line: Int) -> Step {
        guard total > YAMLLimits.maxNodes else { return .more }
        let message = sawAlias
            ? "aliases expand to more than \(YAMLLimits.maxNodes) values; write the values out instead of nesting aliases"
            : "the file holds more than \(YAMLLimits.maxNodes) values; check that this is the right file"
        return .refuse(SpecIssue(file: file, line: line, message: message))
    }

    private func name(_ anchor: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        anchor.map { String(cString: $0) }
    }
}
