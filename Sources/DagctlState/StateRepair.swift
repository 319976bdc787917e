import DagctlPlanning

extension StateFile {
    /// A run killed between recording a plan `succeeded` and recording it as `deployed` left an
    /// environment whose `deployed` names an older plan (or nothing), and every later run saw nothing to
    /// do. This records the newest succeeded plan as deployed when it is newer than the deployment:
    /// it comes after the deployed plan in `plans`, or the deployed plan has gone to history and the
    /// succeeded plan's last attempt finished at or after `deployed_at`. Pure: the notes say what was
    /// repaired, and a caller holding the lock writes the result.
    public func repairingSplitDeployments() -> (state: StateFile, notes: [String]) {
        var repaired = self
        var notes: [String] = []
        for name in environments.keys.sorted() {
            let env = environments[name]!
            guard let newest = env.plans.lastIndex(where: { $0.status == .succeeded }) else { continue }
            let plan = env.plans[newest]
            let finished = plan.attempts.last?.finishedAt
            if let deployed = env.deployed {
                if deployed.plan == plan.id { continue }
                if let index = env.plans.firstIndex(where: { $0.id == deployed.plan }) {
                    guard newest > index else { continue }
                } else {
                    // The deployed plan was archived, which only happens to a plan that is not the newest:
                    // a succeeded plan still here came after it. Timestamps have whole seconds, hence >=.
                    guard let finished = finished.flatMap(Timestamp.date), let at = deployed.deployedAt.flatMap(Timestamp.date),
                          finished >= at else { continue }
                }
            }
            repaired.environments[name]!.deployed = Deployment(commit: plan.commit, version: plan.version, plan: plan.id,
                                                               deployedAt: finished)
            notes.append("\(name): \(plan.id) succeeded but was not recorded as deployed (\(env.deployed.map { "deployed named \($0.plan)" } ?? "nothing was deployed")); "
                + "recorded it as deployed, as the run that ran it was stopped before it could")
        }
        return (repaired, notes)
    }
}
