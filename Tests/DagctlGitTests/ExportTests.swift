import DagctlGit
import Foundation
import Testing
import TestSupport

/// An export holds exactly the commit's files, and nothing in it leads outside it.
@Suite("export of a commit")
struct ExportTests {
    func link(_ f: GitFixture, _ path: String, to target: String) {
        let full = f.dir.file(path)
        try? FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        precondition(symlink(target, full) == 0)
    }

    /// Exports `f`'s HEAD into a fresh folder nested a few levels deep (so `..` chains have somewhere
    /// to climb to) and returns (export root, notes).
    func export(_ f: GitFixture, _ out: TemporaryDirectory) throws -> (String, GitRepository.ExportNotes) {
        let root = out.file("state/builds/plan/attempt-1/project")
        try FileManager.default.createDirectory(atPath: (root as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let notes = try GitRepository.open(f.path).export(ObjectID(hex: f.git("rev-parse", "HEAD")), to: root)
        return (root, notes)
    }

    @Test func linksLeavingTheExportAreLeftOut() throws {
        let f = GitFixture()
        f.write("models/a.sql", "select 1\n")
        f.write("README.md", "hi\n")
        link(f, "target/manifest.json", to: "../../../../history/prod.jsonl")   // relative escape
        link(f, "target/run_results.json", to: "/tmp/state.json")              // absolute
        link(f, "seeds/secret.csv", to: "../../../../../../etc/passwd")
        link(f, "chain1", to: "chain2")                                        // a chain whose end escapes
        link(f, "chain2", to: "../outside")
        link(f, "up", to: "models/..")                                         // a linked folder inside...
        link(f, "through", to: "up/../escape")                                  // ...climbed out of through another link
        link(f, "loop1", to: "loop2")
        link(f, "loop2", to: "loop1")
        link(f, "docs/readme.md", to: "../README.md")                           // stays inside: kept
        link(f, "models/same.sql", to: "a.sql")                                 // kept
        link(f, "dangling-inside", to: "models/not-yet")                        // kept: would be created inside
        f.commit("links")
        let out = TemporaryDirectory()
        let (root, notes) = try export(f, out)
        let dropped = Set(notes.droppedLinks.map(\.path))
        #expect(dropped == ["target/manifest.json", "target/run_results.json", "seeds/secret.csv", "chain1", "chain2",
                            "through", "loop1", "loop2"])
        for path in dropped {
            var info = stat()
            #expect(lstat(root + "/" + path, &info) != 0, "\(path) was not created")
        }
        #expect(try String(contentsOfFile: root + "/docs/readme.md", encoding: .utf8) == "hi\n")
        #expect(try String(contentsOfFile: root + "/models/same.sql", encoding: .utf8) == "select 1\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/dangling-inside")) == "models/not-yet")
        #expect(notes.droppedLinks.first { $0.path == "seeds/secret.csv" }?.target == "../../../../../../etc/passwd")
    }

    /// Property: for random link targets built from `..`, names and other links, a kept link never
    /// resolves (by the kernel, where it resolves at all) outside the export.
    @Test func noKeptLinkResolvesOutside() throws {
        var generator = SystemRandomNumberGenerator()
        let parts = ["..", ".", "a", "b", "l0", "l1", "l2", "l3", "d"]
        for round in 0..<8 {
            let f = GitFixture()
            f.write("a/b/file", "x\n")
            f.write("d/file", "y\n")
            for i in 0..<4 {
                let depth = Int.random(in: 1...5, using: &generator)
                let target = (0..<depth).map { _ in parts.randomElement(using: &generator)! }.joined(separator: "/")
                link(f, i % 2 == 0 ? "l\(i)" : "a/l\(i)", to: target)
            }
            f.commit("round \(round)")
            let out = TemporaryDirectory()
            let (root, notes) = try export(f, out)
            let realRoot = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
            for i in 0..<4 {
                let path = root + "/" + (i % 2 == 0 ? "l\(i)" : "a/l\(i)")
                guard (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil else { continue }
                guard let resolved = realpath(path, nil) else { continue }  // dangling or a loop: nothing to reach
                let real = String(cString: resolved)
                free(resolved)
                #expect(real == realRoot || real.hasPrefix(realRoot + "/"), "kept \(path) -> \(real); dropped: \(notes.droppedLinks)")
            }
        }
    }
}
