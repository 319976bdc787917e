/// Checks for user-given relative paths: they must stay inside the folder they are relative to.
public enum RelativePath {
    /// `nil` when `path` is a safe relative path; otherwise why it is not.
    public static func problem(_ path: String) -> String? {
        if path.isEmpty { return "must not be empty" }
        if path.hasPrefix("/") { return "must be relative, not absolute" }
        if path.contains("\0") { return "must not contain NUL" }
        if path.split(separator: "/").contains("..") { return "must not contain '..'" }
        return nil
    }

    /// "./a//b/" → "a/b"; "." → "".
    public static func normalize(_ path: String) -> String {
        path.split(separator: "/").filter { $0 != "." && !$0.isEmpty }.joined(separator: "/")
    }
}
