/// One person in `members.yaml`.
public struct Member: Sendable, Equatable {
    public var name: String
    public var emails: [String]
    public var roles: [String]
    /// OpenSSH public keys used to verify this member's signatures.
    public var keys: [SSHPublicKey]

    public init(name: String, emails: [String] = [], roles: [String] = [], keys: [SSHPublicKey] = []) {
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
            members.append(Member(name: name, emails: emails, roles: roles, keys: keys))
        }
        doc.finish()
        guard log.isEmpty else { throw SpecIssues(log.issues) }
        return Members(members)
    }

    private static func readRest(_ entry: MappingReader) -> ([String], [String], [SSHPublicKey]) {
        let emails = entry.strings("emails") ?? []
        let roles = entry.strings("roles") ?? []
        // Each bad key is reported at its own line; only fully parsed keys are kept.
        let lines = entry.strings("keys") { line in
            do throws(SSHPublicKey.Problem) { _ = try SSHPublicKey(line); return nil } catch { return error.message }
        } ?? []
        entry.finish()
        return (emails, roles, lines.compactMap { try? SSHPublicKey($0) })
    }
}
