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

@Suite("model names that dbt's selector reads as more")
struct AmbiguousModelNameTests {
    @Test func aModelNamedLikeAFolderOrTheProjectBuildsEverything() {
        for name in ["staging", "shop"] {
            let decision = Explain.scope(of: [change("models/marts/\(name).sql")], base: .known, categorizer: rootProject,
                                         selectDownstream: false, otherNames: ["staging", "marts", "shop"])
            #expect(decision.scope == .all, "\(name)")
            #expect(decision.warnings.contains { $0.contains("also names a folder or the project") })
        }
        let fine = Explain.scope(of: [change("models/marts/customers.sql")], base: .known, categorizer: rootProject,
                                 selectDownstream: false, otherNames: ["staging", "marts", "shop"])
        #expect(fine.select == ["customers"])
    }
}
