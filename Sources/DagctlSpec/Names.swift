/// Names of environments and members become parts of paths and plan ids, so they are held to one
/// strict pattern: `^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`.
public enum Names {
    public static let pattern = "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 45 }
    }

    /// A plan id is `<env>-v<version>-<10 hex>`; it names folders, so it is checked before use.
    public static func isValidPlanID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (1...128).contains(bytes.count), !id.contains(".."), !id.hasPrefix(".") else { return false }
        return bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
    }
}
