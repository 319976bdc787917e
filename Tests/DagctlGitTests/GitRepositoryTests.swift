import DagctlGit
import Foundation
import Testing
import TestSupport

@Suite("libgit2 wrapper")
struct GitRepositoryTests {
    @Test func notARepository() {
        let dir = TemporaryDirectory()
        #expect {
            try GitRepository.open(dir.path)
        } throws: { error in
            "\(error)".contains("is not a git repository")
        }
    }

    @Test func resolvesBranchesTagsAndShas() throws {
        let f = GitFixture()
        f.write("a.txt", "1\n")
        let first = f.commit("one")
        f.git("tag", "-a", "v1", "-m", "annotated tag")
        f.write("a.txt", "2\n")
        let second = f.commit("two")
        let repo = try GitRepository.open(f.path)
        #expect(try repo.resolveCommit("main").hex == second)
        #expect(try repo.resolveCommit("v1").hex == first, "annotated tags peel to their commit")
        #expect(try repo.resolveCommit(first).hex == first)
        #expect(throws: GitError.self) { try repo.resolveCommit("nope") }
        #expect(try repo.commitsAhead(ObjectID(hex: second), of: ObjectID(hex: first)) == 1)
        #expect(repo.hasCommit(ObjectID(hex: first)))
        #expect(!repo.hasCommit(ObjectID(hex: String(repeating: "1", count: 40))))
    }

    @Test func readsFilesFromCommitsNotTheWorkTree() throws {
        let f = GitFixture()
        f.write("dir/a.txt", "committed\n")
        let c = f.commit("one")
        f.write("dir/a.txt", "uncommitted\n")
        let repo = try GitRepository.open(f.path)
        #expect(try repo.file("dir/a.txt", at: ObjectID(hex: c)) == Data("committed\n".utf8))
        #expect(try repo.file("dir/missing.txt", at: ObjectID(hex: c)) == nil)
        #expect(try repo.file("dir", at: ObjectID(hex: c)) == nil, "a folder is not a file")
    }

    @Test func diffWithRenames() throws {
        let f = GitFixture()
        f.write("keep.txt", "k\n")
        f.write("old.txt", String(repeating: "same content line\n", count: 10))
        f.write("gone.txt", "g\n")
        let a = f.commit("a")
        f.move("old.txt", "new/renamed.txt")
        f.remove("gone.txt")
        f.write("keep.txt", "changed\n")
        f.write("added.txt", "new\n")
        let b = f.commit("b")
        let changes = try GitRepository.open(f.path).diff(from: ObjectID(hex: a), to: ObjectID(hex: b))
        #expect(changes == [
            TreeChange(path: "added.txt", kind: .added),
            TreeChange(path: "gone.txt", kind: .deleted),
            TreeChange(path: "keep.txt", kind: .modified),
            TreeChange(path: "new/renamed.txt", oldPath: "old.txt", kind: .renamed),
        ])
    }

    @Test func renamesWithEditsAndFolderChanges() throws {
        let f = GitFixture()
        let lines = (1...20).map { "line \($0) of a file long enough for similarity\n" }.joined()
        f.write("a/edited.sql", lines)
        f.write("a/copy1.sql", "same\n")
        f.write("a/copy2.sql", "same\n")
        f.write("thing", "a file that becomes a folder\n")
        f.write("unrelated/deep/x.txt", "x\n")
        let a = f.commit("a")
        f.move("a/edited.sql", "b/edited_renamed.sql")
        f.write("b/edited_renamed.sql", lines.replacingOccurrences(of: "line 7 ", with: "LINE SEVEN "))
        f.move("a/copy1.sql", "b/copy1.sql")
        f.remove("thing")
        f.write("thing/inside.txt", "now a folder\n")
        f.write("brand_new.txt", "completely different content\n")
        let b = f.commit("b")
        let changes = try GitRepository.open(f.path).diff(from: ObjectID(hex: a), to: ObjectID(hex: b))
        #expect(changes == [
            TreeChange(path: "b/copy1.sql", oldPath: "a/copy1.sql", kind: .renamed),
            TreeChange(path: "b/edited_renamed.sql", oldPath: "a/edited.sql", kind: .renamed),
            TreeChange(path: "brand_new.txt", kind: .added),
            TreeChange(path: "thing", kind: .deleted),
            TreeChange(path: "thing/inside.txt", kind: .added),
        ])
        // The same as git itself says.
        let git = f.git("diff", "--name-status", "-M", a, b).split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(git.count == changes.count)
        for line in git where line[0].hasPrefix("R") {
            #expect(changes.contains { $0.kind == .renamed && $0.oldPath == line[1] && $0.path == line[2] })
        }
    }

    @Test func firstDeployListsEveryFile() throws {
        let f = GitFixture()
        f.write("x/y/z.txt", "1\n")
        f.write("top.txt", "2\n")
        let c = f.commit("one")
        #expect(try GitRepository.open(f.path).diff(from: nil, to: ObjectID(hex: c)) ==
                [TreeChange(path: "top.txt", kind: .added), TreeChange(path: "x/y/z.txt", kind: .added)])
    }

    @Test func newestCommitChangingAFile() throws {
        let f = GitFixture()
        f.write("v", "1\n")
        let base = f.commit("one", author: "alice")
        f.write("v", "2\n")
        f.commit("bump", author: "bob")
        f.write("other", "x\n")
        let head = f.commit("unrelated", author: "carol")
        let repo = try GitRepository.open(f.path)
        let found = try repo.newestCommit(changing: "v", from: ObjectID(hex: base), to: ObjectID(hex: head)) { _, _ in true }
        #expect(found?.authorEmail == "bob@example.com")
        let none = try repo.newestCommit(changing: "v", from: ObjectID(hex: base), to: ObjectID(hex: head)) { _, _ in false }
        #expect(none == nil)
    }
}
