import DagctlBackends
import DagctlEngine
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import TestSupport

/// A dbt repository and a desired-state directory with `dev` (unprotected) and `prod` (protected,
/// approved by bob or carol), for explaining plans against real git history.
final class PlanningFixture: @unchecked Sendable {
    let repo = GitFixture()
    let desired = TemporaryDirectory("dagctl-desired")
    var state = StateFile()

    init(projectDir: String? = nil) {
        desired.write("members.yaml", """
            members:
              - name: alice
                emails: [alice@example.com]
                roles: [admin]
              - name: bob
                emails: [bob@example.com]
                roles: [deployer]
              - name: carol
                emails: [carol@example.com]
                roles: [deployer]
            """)
        desired.write("environments/dev.yaml", "ref: main\n")
        desired.write("environments/prod.yaml", "ref: main\nprotected: true\nallowlist: [bob, carol]\nrequire_signature: false\n")
    }

    /// A first commit with a dbt project at version 1.
    @discardableResult
    func initialCommit(projectDir: String? = nil, author: String = "alice") -> String {
        repo.setVersion("1", projectDir: projectDir)
        repo.writeDbtProject(in: projectDir ?? "")
        return repo.commit("initial", author: author)
    }

    /// Records `commit` as deployed to `env` by a succeeded plan.
    func deploy(_ env: String, commit: String, version: String) {
        let plan = Plan(id: "\(env)-v\(version)-\(commit.prefix(10))", environment: env, version: version, commit: commit, base: nil,
                        author: nil, changes: [], scope: .all, select: [], warnings: [], status: .succeeded)
        var e = state.environments[env] ?? EnvironmentState()
        e.plans.append(plan)
        e.deployed = Deployment(commit: commit, version: version, plan: plan.id)
        state.environments[env] = e
    }

    func addPlan(_ plan: Plan) {
        state.environments[plan.environment, default: EnvironmentState()].plans.append(plan)
    }

    func preview(_ env: String = "dev", ref: String? = nil, base: String? = nil) throws -> EnvironmentReport {
        let planner = Planner(repo: try GitRepository.open(repo.path), desired: DesiredState.load(desired.path),
                              state: state, verify: SSHSignatures.verify)
        let report = planner.selectedEnvironments([env])[0]
        return planner.preview(report, ref: ref, base: base)
    }

    /// The newest plan of a preview that must have no errors.
    func plan(_ env: String = "dev", ref: String? = nil, base: String? = nil) throws -> Plan {
        let report = try preview(env, ref: ref, base: base)
        guard report.errors.isEmpty, let plan = report.plan else {
            throw EngineError("unexpected errors: \(report.errors)")
        }
        return plan
    }
}

extension Plan {
    func category(of path: String) -> Category? { changes.first { $0.path == path }?.category }
}
