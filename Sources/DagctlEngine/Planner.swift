import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState

/// Observe and explain, without side effects: for each environment, resolve its ref, read the version,
/// decide whether a new plan is due, explain it, and review its approvals. `dagctl plan` prints this;
/// `dagctl reconcile` acts on it.
public struct Planner {
    public let repo: GitRepository
    public let desired: DesiredState
    public let state: StateFile
    public let verify: SignatureCheck

    public init(repo: GitRepository, desired: DesiredState, state: StateFile, verify: @escaping SignatureCheck) {
        self.repo = repo
        self.desired = desired
        self.state = state
        self.verify = verify
    }

    var explainer: Explainer { Explainer(repo: repo, members: desired.members) }

    /// The environments to look at: all of them, or the ones named (unknown names are reported).
    public func selectedEnvironments(_ names: [String]) -> [EnvironmentReport] {
        var known = Set(desired.environmentNames)
        known.formUnion(desired.environmentIssues.keys)
        var reports: [EnvironmentReport] = []
        let wanted = names.isEmpty ? known.sorted() : names
        for name in wanted {
            var report = EnvironmentReport(name: name, spec: desired.environment(name))
            let envState = state.environments[name]
            report.deployed = envState?.deployed
            report.plan = envState?.plans.last
            if let issues = desired.environmentIssues[name] {
                report.errors += issues.map(\.description)
            } else if report.spec == nil {
                report.errors.append("no environment '\(name)': there is no \(desired.root)/environments/\(name).yaml (known: \(known.sorted().joined(separator: ", ")))")
            }
            reports.append(report)
        }
        return reports
    }

    /// What reconcile would do for one environment next, as a report (the plan command's view).
    /// With `ref` or `base`, always explains a fresh plan at the ref's commit against that base.
    public func preview(_ report: EnvironmentReport, ref overrideRef: String? = nil, base overrideBase: String? = nil) -> EnvironmentReport {
        var report = report
        guard let env = report.spec, report.errors.isEmpty else { return report }
        let envState = state.environments[env.name] ?? EnvironmentState()
        do {
            let ref = overrideRef ?? env.ref
            report.ref = ref
            let head = try repo.resolveRef(ref)
            report.head = head.hex
            let config = try explainer.config(at: head, label: ref)

            if overrideRef != nil || overrideBase != nil {
                let base = try overrideBase.map { try repo.resolveCommit($0).hex } ?? envState.deployed?.commit
                report.plan = try explainer.explain(env: env, commit: head, config: config, base: base, label: ref)
                report.isNewPlan = true
            } else {
                switch NextPlanDecision.decide(headVersion: config.version, plans: envState.plans) {
                case .keep(let plan):
                    report.plan = plan
                    report.commitsBehind = try repo.commitsAhead(head, of: ObjectID(hex: plan.commit))
                case .versionWentBackwards(let newest):
                    report.plan = newest
                    report.errors.append(NextPlanDecision.backwards(ref: ref, version: config.version, newest: newest))
                    return report
                case .create(let supersede):
                    report.plan = try explainer.explain(env: env, commit: head, config: config,
                                                        base: envState.deployed?.commit, label: ref)
                    report.isNewPlan = true
                    report.supersedes = supersede
                    report.waitingFor = envState.plans.filter { [.approved, .building, .running].contains($0.status) }.map(\.id)
                }
            }
            if let plan = report.plan, plan.status == .pending || report.isNewPlan {
                let review = ApprovalRules.review(plan: plan, env: env, members: desired.members,
                                                  files: desired.approvals(for: plan.id), verify: verify)
                report.approvals = review
                // Show the status the approve phase would give the plan.
                switch review.outcome {
                case .approved: report.plan?.status = .approved
                case .rejected: report.plan?.status = .rejected
                case .waiting: break
                }
            }
            report.manifests = manifests(for: report.plan, env: env)
        } catch {
            report.errors.append("\(error)")
        }
        return report
    }

    /// The Jobs a Kubernetes environment's plan applies, as JSON text; empty for other backends.
    public func manifests(for plan: Plan?, env: EnvironmentSpec) -> [String] {
        guard let plan, case .kubernetes(let k) = env.backend,
              let config = try? explainer.config(at: ObjectID(hex: plan.commit), label: String(plan.commit.prefix(10))) else { return [] }
        return KubernetesExecutor.manifests(plan: plan, env: env, k: k, repo: repo, config: config).map(KubernetesJobs.json)
    }
}
