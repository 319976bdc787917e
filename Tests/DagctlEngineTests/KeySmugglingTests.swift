import DagctlBackends
import DagctlSpec
import Foundation
import Testing
import TestSupport

/// `ssh-keygen -Y verify` reads its allowed-signers file line by line: a newline in a key's comment in
/// members.yaml must never become another allowed signer.
@Suite("keys smuggled through members.yaml", .serialized)
struct KeySmugglingTests {
    let dir = TemporaryDirectory("dagctl-smuggle")
    let payload = "dagctl-approval-v2\nplan: prod-v8-1a2b3c4d5e\nby: bob\n"

    init() {
        for name in ["bob", "mallory"] {
            let r = run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "\(name)@laptop", "-f", dir.file(name)])
            precondition(r.status == 0, r.stderr)
        }
    }

    func publicKey(_ name: String) -> String { dir.read(name + ".pub")!.trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test func malloryCannotSignAsBob() throws {
        // Line 5 holds bob's key, whose "comment" carries a second line naming mallory's key for anyone.
        let smuggled = publicKey("bob") + "\\n* namespaces=\\\"dagctl\\\" " + publicKey("mallory")
        let text = "members:\n  - name: bob\n    emails: [bob@example.com]\n    keys:\n      - \"\(smuggled)\"\n"
        let signature = try SSHSignatures.sign(payload: payload, keyPath: dir.file("mallory"))

        let parsed = Result { () throws(SpecIssues) in try Members.parse(text, file: "members.yaml") }
        if case .success(let members) = parsed {
            let bob = try #require(members["bob"])
            #expect(SSHSignatures.verify(payload: payload, signature: signature, member: bob) != nil,
                    "mallory's signature verified as bob")
        }
        guard case .failure(let error) = parsed else { Issue.record("the smuggled key was accepted"); return }
        #expect(error.issues.count == 1)
        #expect(error.issues.first?.description.hasPrefix("members.yaml:5: 'members[0].keys': ") == true, "\(error)")
    }

    @Test func bobsOwnKeyStillVerifiesAndTheCommentIsLeftOut() throws {
        let text = "members:\n  - name: bob\n    keys: [\"\(publicKey("bob")) Bob's laptop, 2024\"]\n"
        let bob = try #require(try Members.parse(text, file: "members.yaml")["bob"])
        let good = try SSHSignatures.sign(payload: payload, keyPath: dir.file("bob"))
        #expect(SSHSignatures.verify(payload: payload, signature: good, member: bob) == nil)
        let bad = try SSHSignatures.sign(payload: payload, keyPath: dir.file("mallory"))
        #expect(SSHSignatures.verify(payload: payload, signature: bad, member: bob) != nil)

        let parts = publicKey("bob").split(separator: " ")
        #expect(SSHSignatures.allowedSigners(for: bob) == "bob namespaces=\"dagctl\" \(parts[0]) \(parts[1])\n")
    }
}
