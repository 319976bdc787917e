import Testing
import DagctlSpec
@testable import DagctlPlanning

/// Model names come from file names a committer chooses: only names dbt's selector matches as
/// themselves reach `--select`; anything else makes the plan a full build, with the reason.
@Suite("model names on the command line")
struct ModelNameTests {
    @Test(arguments: ["-x", "--vars", "a b", "a\nb", "a*", "tag:pii", "a+", "@a", "a.b", "a,b", "ä"])
    func anUnsafeNameBuildsEverything(name: String) {
        let decision = Explain.scope(of: [change("models/\(name).sql")], base: .known, categorizer: rootProject, selectDownstream: false)
        #expect(decision.scope == .all, "\(name)")
        #expect(decision.select.isEmpty)
        #expect(decision.warnings.contains { $0.contains("cannot be passed to dbt --select exactly") })
    }

    @Test(arguments: ["customers", "stg_orders", "v2-daily", "A1_b"])
    func aPlainNameIsSelected(name: String) {
        let decision = Explain.scope(of: [change("models/\(name).sql")], base: .known, categorizer: rootProject, selectDownstream: false)
        #expect(decision.scope == .selective)
        #expect(decision.select == [name])
    }
}
