import Foundation

/// Where a symbolic link in an export leads, resolved the way the kernel would (component by
/// component, following links met on the way, `..` climbing), but without ever leaving the export:
/// a link is safe only when every step of its resolution stays under the export's root.
enum ExportPaths {
    /// More links than this in one resolution is a loop (the kernel's own limit is 40).
    static let maximumLinks = 40

    /// Whether the link at `link` (relative to `root`) resolves inside `root`, through any chain of
    /// links and linked folders. A dangling link counts by where it would lead once created.
    static func staysInside(root: String, link: String) -> Bool {
        var pending = link.split(separator: "/").map(String.init)  // components still to walk, in order
        var resolved: [String] = []  // the real path so far, relative to root
        var followed = 0
        while let next = pending.first {
            pending.removeFirst()
            switch next {
            case "", ".": continue
            case "..":
                guard !resolved.isEmpty else { return false }
                resolved.removeLast()
                continue
            default: break
            }
            let candidate = resolved + [next]
            let full = root + "/" + candidate.joined(separator: "/")
            var info = stat()
            if lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
                followed += 1
                guard followed <= maximumLinks, let target = readLink(full), !target.hasPrefix("/") else { return false }
                pending = target.split(separator: "/", omittingEmptySubsequences: false).map(String.init) + pending
            } else {
                resolved = candidate
            }
        }
        return true
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        buffer[n] = 0
        return String(cString: buffer)
    }
}
