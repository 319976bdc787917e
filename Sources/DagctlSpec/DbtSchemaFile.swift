import Foundation
import Yams

/// The entries of a dbt properties file (`models/schema.yml`), each in a canonical form, so that two
/// versions can be compared by meaning: quoting, comments, key order and entry order do not count.
public enum DbtSchemaFile {
    public struct Entry: Sendable, Equatable {
        /// The entry as canonical JSON.
        public var full: String
        /// The same without any `description` (which dbt writes to the warehouse only with persist_docs).
        public var withoutDocs: String
        /// The same without descriptions and tests (`tests`, `data_tests`), and without columns left with
        /// nothing but their name: equal when only tests (or documentation) changed.
        public var withoutDocsOrTests: String
        /// Its tests by where they are declared (`""` for the entry, else the column's name), each in
        /// canonical form: a plain test is its JSON string (`"not_null"`).
        public var tests: [String: Set<String>] = [:]
    }

    /// `"models:customers"` → its entry, for every named entry of every top-level list; other
    /// top-level keys as `"<key>"`. Throws a message when the file is not a mapping dagctl can read
    /// within the bounds every YAML file gets.
    public static func entries(_ text: String, file: String) throws(SpecIssues) -> [String: Entry] {
        let scan = YAMLLimits.scan(text, file: file)
        if let refusal = scan.refusal { throw SpecIssues([refusal]) }
        let value: Any?
        do { value = try Yams.load(yaml: text) } catch {
            let first = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            throw SpecIssues([SpecIssue(file: file, message: "is not valid YAML (\(first))")])
        }
        guard let value else { return [:] }
        guard let top = value as? [String: Any] else {
            throw SpecIssues([SpecIssue(file: file, message: "is not a mapping of dbt properties")])
        }
        var out: [String: Entry] = [:]
        for (key, section) in top {
            if let list = section as? [Any] {
                for item in list {
                    guard let map = item as? [String: Any], let name = map["name"].map({ "\($0)" }) else {
                        out[key] = try entry(for: list, file: file)
                        break
                    }
                    out["\(key):\(name)"] = try entry(for: map, file: file)
                }
            } else {
                out[key] = try entry(for: section, file: file)
            }
        }
        return out
    }

    private static func entry(for value: Any, file: String) throws(SpecIssues) -> Entry {
        var bare = stripping(["description", "tests", "data_tests"], value)
        if var map = bare as? [String: Any], let columns = map["columns"] as? [Any] {
            map["columns"] = columns.filter { column in !((column as? [String: Any]).map { Set($0.keys) == ["name"] } ?? false) }
            bare = map
        }
        var tests: [String: Set<String>] = [:]
        if let map = value as? [String: Any] {
            func collect(_ owner: [String: Any], at location: String) {
                for key in ["tests", "data_tests"] {
                    for item in owner[key] as? [Any] ?? [] { tests[location, default: []].insert(canonical(item)) }
                }
            }
            collect(map, at: "")
            for column in map["columns"] as? [Any] ?? [] {
                if let column = column as? [String: Any], let name = column["name"].map({ "\($0)" }) { collect(column, at: name) }
            }
        }
        return Entry(full: canonical(value), withoutDocs: canonical(stripping(["description"], value)),
                     withoutDocsOrTests: canonical(bare), tests: tests)
    }

    static func stripping(_ keys: Set<String>, _ value: Any) -> Any {
        if let map = value as? [String: Any] {
            return map.filter { !keys.contains($0.key) }.mapValues { stripping(keys, $0) }
        }
        if let list = value as? [Any] { return list.map { stripping(keys, $0) } }
        return value
    }

    /// JSON with sorted keys; YAML scalars that JSON cannot hold (dates) as their text.
    static func canonical(_ value: Any) -> String {
        func plain(_ v: Any) -> Any {
            switch v {
            case let map as [String: Any]: return map.mapValues(plain)
            case let list as [Any]: return list.map(plain)
            case is String, is Int, is Double, is Bool: return v
            case is NSNull: return NSNull()
            default: return "\(v)"
            }
        }
        let object = plain(value)
        guard JSONSerialization.isValidJSONObject([object]),
              let data = try? JSONSerialization.data(withJSONObject: [object], options: [.sortedKeys, .fragmentsAllowed]) else { return "\(object)" }
        return String(decoding: data, as: UTF8.self)
    }
}
