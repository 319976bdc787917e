import Foundation

/// A JSON document with keys in a fixed order, so `--output json` is byte-stable between runs.
enum JSONValue {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// Parses JSON text (objects get sorted keys); invalid text becomes a string.
    init(jsonText: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(jsonText.utf8), options: [.fragmentsAllowed]) else {
            self = .string(jsonText)
            return
        }
        self = JSONValue(any: object)
    }

    init(any: Any) {
        switch any {
        case let d as [String: Any]: self = .object(d.keys.sorted().map { ($0, JSONValue(any: d[$0]!)) })
        case let a as [Any]: self = .array(a.map(JSONValue.init(any:)))
        case let s as String: self = .string(s)
        case let n as NSNumber:
            // JSON booleans come back as NSNumbers of type 'c' (or 'B').
            let type = UInt8(bitPattern: n.objCType.pointee)
            self = type == UInt8(ascii: "c") || type == UInt8(ascii: "B") ? .bool(n.boolValue) : .int(n.intValue)
        default: self = .null
        }
    }

    static func string(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
    static func strings(_ list: [String]) -> JSONValue { .array(list.map { .string($0) }) }

    func rendered(indent: Int = 0) -> String {
        var out = ""
        write(to: &out, indent: indent)
        return out
    }

    private func write(to out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let n): out += String(n)
        case .string(let s): JSONValue.escape(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += pad
                item.write(to: &out, indent: indent + 1)
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += end + "]"
        case .object(let pairs):
            if pairs.isEmpty { out += "{}"; return }
            out += "{\n"
            for (i, (key, value)) in pairs.enumerated() {
                out += pad
                JSONValue.escape(key, into: &out)
                out += ": "
                value.write(to: &out, indent: indent + 1)
                out += i == pairs.count - 1 ? "\n" : ",\n"
            }
            out += end + "}"
        }
    }

    private static func escape(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
