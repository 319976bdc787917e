import DagctlSpec
import Foundation

/// SSH signatures in the format of `ssh-keygen -Y sign`, namespace `dagctl`, made and checked with
/// OpenSSH's own `ssh-keygen`.
public enum SSHSignatures {
    public static let namespace = "dagctl"

    /// Why `signature` over `payload` is not a valid signature by one of `member`'s keys, or nil when it is.
    public static func verify(payload: String, signature: String, member: Member) -> String? {
        // The name is the principal on each line: only a checked name may go there.
        guard Names.isValid(member.name) else { return "'\(excerpt(member.name))' is not a valid member name" }
        let dir: URL
        do { dir = try temporaryDirectory() } catch { return "cannot create a temporary folder: \(error)" }
        defer { try? FileManager.default.removeItem(at: dir) }
        let signers = allowedSigners(for: member)
        let signersFile = dir.appendingPathComponent("allowed_signers")
        let signatureFile = dir.appendingPathComponent("signature")
        do {
            try Data(signers.utf8).write(to: signersFile)
            try Data((signature.hasSuffix("\n") ? signature : signature + "\n").utf8).write(to: signatureFile)
            let result = try Command.run("ssh-keygen", ["-Y", "verify", "-n", namespace, "-I", member.name,
                                                        "-f", signersFile.path, "-s", signatureFile.path],
                                         stdin: Data(payload.utf8))
            if result.status == 0 { return nil }
            // ssh-keygen says why on stderr, and "Could not verify signature." on stdout.
            let detail = Self.explanation(result.stderr + "\n" + String(decoding: result.stdout, as: UTF8.self)) ?? "exit \(result.status)"
            return "not made by any of \(member.name)'s keys over this plan's exact details (\(detail))"
        } catch {
            return "cannot run ssh-keygen: \(error)"
        }
    }

    /// The allowed-signers file for `member`: one line per key, built only from the key's parsed type
    /// and base64 (both checked, neither can hold a space or newline). The comment is left out: the
    /// file is read line by line, and free text has no business in it.
    public static func allowedSigners(for member: Member) -> String {
        member.keys.map { "\(member.name) namespaces=\"\(namespace)\" \($0.type) \($0.blob)\n" }.joined()
    }

    /// ssh-keygen's own words for a failed verification, on one line: its lines end in "\r\n" (one
    /// Character in Swift, so split on every newline kind), and "Could not verify signature." is said
    /// anyway, so the lines before it carry the reason.
    static func explanation(_ stderr: String) -> String? {
        let lines = stderr.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let specific = lines.filter { $0 != "Could not verify signature." }
        let chosen = specific.isEmpty ? lines : specific
        return chosen.isEmpty ? nil : chosen.joined(separator: "; ")
    }

    /// Signs `payload` with the private key at `keyPath`; returns the armored signature.
    public static func sign(payload: String, keyPath: String) throws -> String {
        guard FileManager.default.isReadableFile(atPath: keyPath) else { throw CommandError("cannot read the key \(keyPath)") }
        let result = try Command.run("ssh-keygen", ["-q", "-Y", "sign", "-n", namespace, "-f", keyPath], stdin: Data(payload.utf8))
        guard result.status == 0, let text = String(data: result.stdout, encoding: .utf8), text.contains("BEGIN SSH SIGNATURE") else {
            throw CommandError("ssh-keygen could not sign with \(keyPath): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return text
    }

    /// The public key of a private key file, as one line.
    public static func publicKey(ofPrivateKey keyPath: String) throws -> String {
        let result = try Command.run("ssh-keygen", ["-y", "-f", keyPath])
        guard result.status == 0 else { throw CommandError("cannot read the public key of \(keyPath): \(result.stderr)") }
        return String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dagctl-sig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
