import Foundation

extension FileHandle {
    /// Writes without trapping: Foundation's `write(_ data:)` crashes the process when the write fails
    /// (a full disk, a closed pipe). A log line that cannot be written is lost, the run goes on and
    /// records its outcome; returns whether it was written.
    @discardableResult
    public func writeSafely(_ data: Data) -> Bool {
        do { try write(contentsOf: data); return true } catch { return false }
    }

    @discardableResult
    public func writeSafely(_ text: String) -> Bool { writeSafely(Data(text.utf8)) }
}
