/// One person in `members.yaml`.
public struct Member: Sendable, Equatable {
    public var name: String
    public var emails: [String]
    public var roles: [String]
    /// OpenSSH public keys ("ssh-ed25519 AAAA… comment") used to verify this member's signatures.
    public var keys: [String]

    public init(name: String, emails: [String] = [], roles: [String] = [], keys: [String] = []) {
        self.name = name
        self.emails = emails
        self.roles = roles
        self.keys = keys
    }
}

public struct Members: Sendable, Equatable {
    public static let fileName = "members.yaml"
    public var all: [Member]

    public init(_ all: [Member]) { self.all = all }

    public subscript(name: String) -> Member? { all.first { $0.name == name } }
    public var names: Set<String> { Set(all.map(\.name)) }

    /// The member whose emails include `email` (case-insensitive), if any.
    public func member(withEmail email: String) -> Member? {
        let wanted = email.lowercased()
        return all.first { $0.emails.contains { $0.lowercased() == wanted } }
    }

    public static func parse(_ text: String, file: String) throws(SpecIssues) -> Members {
        let log = IssueLog()
        guard let doc = MappingReader.document(text, file: file, log: log) else { throw SpecIssues(log.issues) }
        var members: [Member] = []
        var seenNames: [String: Int] = [:]
        var seenEmails: [String: String] = [:]
        for entry in doc.mappings("members", required: true) ?? [] {
            guard let name = entry.string("name", required: true) else { _ = readRest(entry); continue }
            if !Names.isValid(name) {
                entry.invalid("name", "'\(name)' is not a valid member name; names match \(Names.pattern)")
            } else if let line = seenNames[name] {
                entry.invalid("name", "member '\(name)' is listed twice (first at line \(line))")
            }
            seenNames[name] = entry.line ?? 0
            let (emails, roles, keys) = readRest(entry)
            for email in emails {
                if !email.contains("@") { entry.invalid("emails", "'\(email)' is not an email address") }
                if let other = seenEmails[email.lowercased()], other != name {
                    entry.invalid("emails", "'\(email)' also belongs to '\(other)'; an email must identify one member")
                }
                seenEmails[email.lowercased()] = name
            }
            for key in keys where !isPublicKey(key) {
                entry.invalid("keys", "'\(key.prefix(40))' is not an OpenSSH public key ('ssh-ed25519 AAAA… comment')")
            }
            members.append(Member(name: name, emails: emails, roles: roles, keys: keys))
        }
        doc.finish()
        guard log.isEmpty else { throw SpecIssues(log.issues) }
        return Members(members)
    }

    private static func readRest(_ entry: MappingReader) -> ([String], [String], [String]) {
        let emails = entry.strings("emails") ?? []
        let roles = entry.strings("roles") ?? []
        let keys = entry.strings("keys") ?? []
        entry.finish()
        return (emails, roles, keys)
    }

    static func isPublicKey(_ key: String) -> Bool {
        let parts = key.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2 else { return false }
        let types = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                     "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]
        guard types.contains(String(parts[0])) else { return false }
        return parts[1].utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 43 || $0 == 47 || $0 == 61 }
    }
}
