import Crypto

/// SHA-256 in hex, for cache keys and short stable name suffixes.
public enum Hashing {
    public static func sha256Hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        Crypto.SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined()
    }
}
