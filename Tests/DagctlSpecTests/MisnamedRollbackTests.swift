import DagctlSpec
import Foundation
import Testing

/// A rollback file meant for an environment but misnamed holds that environment (it is never read as
/// "no rollback"); a file meant for no environment holds none.
@Suite("misnamed rollback files")
struct MisnamedRollbackTests {
    func desired(_ files: [String]) throws -> DesiredState {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dagctl-misnamed-\(UUID().uuidString)").path
        for (path, text) in [("members.yaml", "members:\n  - {name: bob, emails: [b@x]}\n"), ("environments/prod.yaml", "ref: main\n"),
                             ("environments/prod-eu.yaml", "ref: main\n")] + files.map({ ($0, "env: prod\n") }) {
            let full = "\(root)/\(path)"
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        return DesiredState.load(root)
    }

    @Test(arguments: ["rollbacks/prod.yml", "rollbacks/Prod.yaml", "rollbacks/PROD.YAML", "rollbacks/prod.yaml.bak", "rollbacks/.prod.yaml",
                      "rollbacks/prod-rollback.yaml", "rollbacks/prod_rollback.yaml", "rollbacks/prod .yaml", "rollbacks/ prod.yaml",
                      "rollbacks/prod~", "rollback/prod.yaml"])
    func heldByAFileMeantForIt(_ file: String) throws {
        let state = try desired([file])
        let found = try #require(state.rollback(for: "prod"))
        guard case .failure(let issues) = found.result else { Issue.record("read as a request"); return }
        #expect(issues.description.contains("holds 'prod'"), "\(issues)")
        #expect(state.rollback(for: "prod-eu") == nil, "not prod-eu's")
        #expect(state.decisionFileIssues().contains { $0.description.contains("holds 'prod'") }, "validate says so")
    }

    @Test func theLongestNameWinsAndOthersHoldNothing() throws {
        let state = try desired(["rollbacks/prod-eu.yml", "rollbacks/staging.yaml"])
        #expect(state.rollback(for: "prod") == nil)
        #expect(state.rollback(for: "prod-eu") != nil)
        #expect(state.decisionFileIssues().contains { $0.description.contains("staging.yaml") && $0.description.contains("looks meant for no environment") })
    }
}
