import Foundation

/// One OpenSSH public key line from members.yaml (`ssh-ed25519 AAAA… comment`), parsed strictly.
///
/// The parts end up in the allowed-signers file of `ssh-keygen -Y verify`, which is read line by
/// line: a newline in a comment would add a signer. So the only way to get a value is `init(_:)`,
/// which checks every part, and users of a key build text from `type` and `blob`, never the line.
public struct SSHPublicKey: Sendable, Hashable, CustomStringConvertible {
    public let type: String
    /// The key in base64, exactly as written (canonical base64 of an SSH wire-format key of `type`).
    public let blob: String
    /// Free text after the key: one line of printable characters, or nil.
    public let comment: String?

    public static let supportedTypes = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                                        "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
                                        "sk-ecdsa-sha2-nistp256@openssh.com"]

    /// Why a line is not a key; the message quotes the start of the line.
    public struct Problem: Error, Sendable, Equatable {
        public var message: String
    }

    public init(_ line: String) throws(Problem) {
        func problem(_ what: String) -> Problem {
            Problem(message: "'\(excerpt(line))' \(what); copy the line of the .pub file unchanged ('ssh-ed25519 AAAA… comment')")
        }
        if let bad = line.unicodeScalars.first(where: isControl) {
            throw problem("contains a control character (\(escaped(bad))); a key is one line of printable text")
        }
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2 else { throw problem("is not 'TYPE BASE64 [comment]'") }
        let type = String(parts[0]), blob = String(parts[1])
        guard Self.supportedTypes.contains(type) else {
            throw problem("starts with '\(excerpt(type))', which is not a supported key type (\(Self.supportedTypes.joined(separator: ", ")))")
        }
        guard let data = Data(base64Encoded: blob), data.base64EncodedString() == blob else {
            throw problem("is not valid base64 after the key type")
        }
        guard let fields = Self.wireFields(data), fields.count >= 2 else {
            throw problem("is not an OpenSSH public key: its base64 part does not hold a key")
        }
        let inner = String(decoding: fields[0], as: UTF8.self)
        guard inner == type else {
            throw problem("holds an '\(excerpt(inner))' key but says '\(type)'")
        }
        let comment = parts.count == 3 ? parts[2].trimmingCharacters(in: .whitespaces) : ""
        self.type = type
        self.blob = blob
        self.comment = comment.isEmpty ? nil : comment
    }

    public var description: String { [type, blob, comment].compactMap { $0 }.joined(separator: " ") }

    /// The length-prefixed strings of an SSH wire-format key (RFC 4253 §6.6: type, then the key's
    /// own strings or mpints), or nil unless they fill `data` exactly.
    static func wireFields(_ data: Data) -> [Data]? {
        let bytes = [UInt8](data)
        var fields: [Data] = []
        var at = 0
        while at < bytes.count {
            guard bytes.count - at >= 4 else { return nil }
            let length = bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            at += 4
            guard bytes.count - at >= length else { return nil }
            fields.append(Data(bytes[at..<at + length]))
            at += length
        }
        return fields
    }
}
