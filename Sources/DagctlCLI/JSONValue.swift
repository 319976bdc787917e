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
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(to: &out, indent: indent)
        return String(decoding: out, as: UTF8.self)
    }

    private func write(to out: inout [UInt8], indent: Int) {
        func pad(_ level: Int) { out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: level * 2)) }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let n): out.append(contentsOf: String(n).utf8)
        case .string(let s): JSONValue.escape(s, into: &out)
        case .array(let items):
            if items.isEmpty { out.append(contentsOf: "[]".utf8); return }
            out.append(contentsOf: "[\n".utf8)
            for (i, item) in items.enumerated() {
                pad(indent + 1)
                item.write(to: &out, indent: indent + 1)
                out.append(contentsOf: (i == items.count - 1 ? "\n" : ",\n").utf8)
            }
            pad(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            if pairs.isEmpty { out.append(contentsOf: "{}".utf8); return }
            out.append(contentsOf: "{\n".utf8)
            for (i, (key, value)) in pairs.enumerated() {
                pad(indent + 1)
                JSONValue.escape(key, into: &out)
                out.append(contentsOf: ": ".utf8)
                value.write(to: &out, indent: indent + 1)
                out.append(contentsOf: (i == pairs.count - 1 ? "\n" : ",\n").utf8)
            }
            pad(indent)
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func escape(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
            case 0..<0x20: out.append(contentsOf: String(format: "\\u%04x", byte).utf8)
            default: out.append(byte)  // UTF-8 passes through unchanged
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
