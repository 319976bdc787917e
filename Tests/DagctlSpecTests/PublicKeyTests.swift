import Testing
@testable import DagctlSpec

/// Real keys made with `ssh-keygen -t ed25519` / `-t ecdsa`.
enum RealKeys {
    static let bobBlob = "AAAAC3NzaC1lZDI1NTE5AAAAIFw5oaVjN9+3AyXphdzuF4XYxsQ7rkcAGU58myEEPUKm"
    static let bob = "ssh-ed25519 \(bobBlob) bob@laptop"
    static let mallory = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGkOhCNSooUOk8VuP3vz3KRdL0tOsxrTHXQxceRMA7lt mallory"
    static let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLnVmaN6I/53V4QjpzLh9zF9ZS3V2+AdSBPX/Zq0iPAxn/16o1jHsKfA0kat1uWI6UA+wR7VvbpI5zQtC3wFito= ops@host"
}

/// members.yaml with bob's good key on line 6 and `key` (YAML double-quoted text, escapes allowed) on line 7.
func membersWithKey(_ key: String) -> String {
    """
    members:
      - name: alice
      - name: bob
        emails: [bob@example.com]
        keys:
          - "\(RealKeys.bob)"
          - "\(key)"
    """
}

@Suite("public keys in members.yaml")
struct PublicKeyTests {
    func refusal(_ key: String) -> SpecIssue? {
        let found = issues { try Members.parse(membersWithKey(key), file: "members.yaml") }
        #expect(found.count == 1, "\(key): \(found)")
        #expect(found.first?.key == "members[1].keys")
        #expect(found.first?.line == 7, "\(found)")
        #expect(found.first?.description.contains("\n") == false, "\(found)")
        #expect(found.first?.description.contains("\r") == false, "\(found)")
        return found.first
    }

    @Test func aSecondSignerSmuggledInACommentIsRefused() {
        let issue = refusal("\(RealKeys.bob)\\n* namespaces=\\\"dagctl\\\" \(RealKeys.mallory)")
        #expect(issue?.message.contains("control character") == true, "\(String(describing: issue))")
        #expect(issue?.description.hasPrefix("members.yaml:7: 'members[1].keys': ") == true)
    }

    @Test func controlCharactersInTheCommentAreRefused() {
        for comment in ["bob\\tlaptop", "bob\\rlaptop", "bob\\u0085x", "bob\\x7F", "bob\\u202Egnp.exe"] {
            let issue = refusal("ssh-ed25519 \(RealKeys.bobBlob) \(comment)")
            #expect(issue?.message.contains("control character") == true, "\(comment): \(String(describing: issue))")
        }
    }

    @Test func theTypeMustMatchTheBlob() {
        let issue = refusal("ssh-rsa \(RealKeys.bobBlob) bob@laptop")
        #expect(issue?.message.contains("holds an 'ssh-ed25519' key but says 'ssh-rsa'") == true, "\(String(describing: issue))")
    }

    @Test func badBase64() {
        for blob in ["AAAA!!!!", "AAAAC3NzaC1lZDI1NTE5AAAAIB0", "AAAAC3NzaC1lZDI1NTE5AAAAIFw5oaVjN9+3AyXphdzuF4XYxsQ7rkcAGU58myEEPUKm=="] {
            let issue = refusal("ssh-ed25519 \(blob) bob")
            #expect(issue?.message.contains("not valid base64") == true, "\(blob): \(String(describing: issue))")
        }
    }

    @Test func blobsThatAreNotKeys() {
        // Valid base64 of text, and of a key truncated after its type.
        for blob in ["aGVsbG8gd29ybGQ=", "AAAAC3NzaC1lZDI1NTE5", "AAAAC3NzaC1lZDI1NTE5AAAAIFw5"] {
            let issue = refusal("ssh-ed25519 \(blob) bob")
            #expect(issue?.message.contains("is not an OpenSSH public key") == true, "\(blob): \(String(describing: issue))")
        }
    }

    @Test func unsupportedTypesAndShapes() {
        #expect(refusal("ssh-dss AAAAB3NzaC1kc3M= bob")?.message.contains("not a supported key type") == true)
        #expect(refusal("ssh-ed25519")?.message.contains("'TYPE BASE64 [comment]'") == true)
        #expect(refusal("")?.message.contains("'TYPE BASE64 [comment]'") == true)
        #expect(refusal("command=\\\"x\\\" \(RealKeys.bob)")?.message.contains("not a supported key type") == true)
    }

    @Test func goodKeysAreRead() throws {
        let m = try Members.parse(membersWithKey(RealKeys.ecdsa), file: "members.yaml")
        #expect(m["bob"]?.keys.count == 2)
        let spaced = try Members.parse(membersWithKey("ssh-ed25519 \(RealKeys.bobBlob) Bob Smith (laptop, 2024) — café"), file: "members.yaml")
        #expect(spaced["bob"]?.keys.count == 2)
        let bare = try Members.parse(membersWithKey("ssh-ed25519 \(RealKeys.bobBlob)"), file: "members.yaml")
        #expect(bare["bob"]?.keys.count == 2)
    }
}
