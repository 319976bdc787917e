import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// The Kubernetes backend, level-triggered: each phase is a Job whose name the attempt records before
/// the Job is created, so every call looks at the Job the state names and takes the next step (create
/// it, adopt it, follow it, or read how it ended). With `wait` a phase is followed to its end; without,
/// what is due is submitted and a later run picks up from what the cluster says.
struct KubernetesBackend: Backend {
    let k: EnvironmentSpec.KubernetesBackend
    let repo: GitRepository
    let wait: Bool
    let kubectl: Kubectl

    init(_ k: EnvironmentSpec.KubernetesBackend, repo: GitRepository, wait: Bool) {
        self.k = k
        self.repo = repo
        self.wait = wait
        self.kubectl = Kubectl(context: k.kubectlContext, namespace: k.namespace)
    }

    /// Jobs run on in the cluster whatever happens to dagctl: a later run observes them.
    func recover(_ plan: Plan, env: EnvironmentSpec) -> Recovery { .observe }

    /// The Jobs of the plan's next (or current) attempt.
    func manifests(for plan: Plan, env: EnvironmentSpec, kind: PlanKind) -> [String] {
        // A plan still to start (pending, approved) gets a new attempt; any other shows its last one.
        let attempt = [.pending, .approved].contains(plan.status) ? plan.attempts.count + 1 : max(1, plan.attempts.count)
        return [Attempt.Phase.build, .run].compactMap { try? job($0, plan: plan, env: env, kind: kind, attempt: attempt) }.map(KubernetesJobs.json)
    }

    /// The Job of one phase of an attempt; nil for the run phase of a plan without one.
    func job(_ phase: Attempt.Phase, plan: Plan, env: EnvironmentSpec, kind: PlanKind, attempt: Int) throws -> [String: Any]? {
        let project = try kind.project(at: ObjectID(hex: plan.commit))
        switch phase {
        case .build:
            return KubernetesJobs.buildJob(plan: plan, env: env, k: k, attempt: attempt,
                                           gitRef: repo.upstreamReference(env.ref), dockerfile: project.dockerfile)
        case .run:
            guard kind.hasRunPhase(plan) else { return nil }
            // In the image the repository is the working directory and the tool is on PATH.
            let workspace = Workspace(projectDir: project.projectDir.isEmpty ? "." : project.projectDir, tool: "dbt")
            return KubernetesJobs.runJob(plan: plan, env: env, k: k, attempt: attempt,
                                         command: kind.runCommand(plan, env: env, in: workspace))
        }
    }

    func advance(_ phase: Attempt.Phase, _ attempt: AttemptContext) throws -> PhaseResult {
        let jobPhase: KubernetesJobs.Phase = phase == .build ? .build : .run
        let name: String
        if let recorded = attempt.attempt.jobs?[phase.rawValue] {
            name = recorded
        } else {
            // The Job's name is recorded before it is created: a run killed in between finds it by name.
            name = KubernetesJobs.jobName(plan: attempt.plan.id, phase: jobPhase, attempt: attempt.n)
            try attempt.update { $0.jobs = ($0.jobs ?? [:]).merging([phase.rawValue: name]) { $1 } }
        }
        let (log, sink) = try attempt.phaseLog(phase)
        defer { try? log.close() }

        var state = try kubectl.job(name)
        if state == nil {
            try Interruption.check(before: "submitting job \(name)")
            guard let manifest = try job(phase, plan: attempt.plan, env: attempt.env, kind: attempt.kind, attempt: attempt.n) else {
                throw EngineError("plan \(attempt.plan.id) has no \(phase.rawValue) phase")
            }
            switch try kubectl.create(manifest) {
            case .created: attempt.notes.append("submitted job \(name) (\(phase.rawValue), attempt \(attempt.n))")
            case .alreadyExists: attempt.notes.append("adopted the existing job \(name)")
            }
            sink.say("job \(name) in namespace \(k.namespace)")
            state = JobState(phase: .pending)
        }

        switch state!.phase {
        case .succeeded, .failed:
            saveLogs(name, to: log)  // it ended while nobody followed it
        case .pending, .active:
            guard wait else { return .running("job \(name) is running; a later reconcile will pick it up (--no-wait)") }
            _ = try kubectl.followLogs(job: name, log: log, sink: sink)
            state = try waitForEnd(name, timeout: TimeInterval(k.timeoutSeconds) + 120, sink: sink, heartbeat: attempt.heartbeat)
        }

        switch state!.phase {
        case .succeeded:
            attempt.notes.append("job \(name) succeeded")
            return .succeeded
        case .failed(let reason, let message):
            var why = "job \(name) failed: \(reason)" + (message.isEmpty ? "" : " (\(message))")
            if let problem = kubectl.podProblem(job: name) { why += "; \(problem)" }
            return .failed(why)
        case .pending, .active:
            return .running("job \(name) did not finish in time; a later reconcile will look again")
        }
    }

    func inspect(_ commit: ObjectID, env: EnvironmentSpec, kind: PlanKind, command: (Workspace) -> [String]) throws -> Data {
        throw EngineError("environment '\(env.name)': explaining \(kind.tool) plans on the Kubernetes backend is not supported yet")
    }

    /// Polls the Job until it succeeds or fails (its conditions can lag behind the end of the log).
    func waitForEnd(_ name: String, timeout: TimeInterval, sink: OutputSink, heartbeat: TimeInterval) throws -> JobState {
        let start = Date()
        var lastSaid = Date()
        while true {
            guard let state = try kubectl.job(name) else { throw EngineError("job \(name) disappeared while dagctl followed it") }
            switch state.phase {
            case .succeeded, .failed: return state
            case .pending, .active:
                if Date().timeIntervalSince(start) > timeout { return state }
                if Date().timeIntervalSince(lastSaid) >= heartbeat {
                    sink.say("… still running, \(formatDuration(Date().timeIntervalSince(start))) elapsed")
                    lastSaid = Date()
                }
                if let sig = Interruption.caught {
                    throw EngineError("stopped: dagctl received \(Interruption.name(sig)); the job keeps running and a later reconcile picks it up")
                }
                usleep(500_000)
            }
        }
    }

    /// Saves what the pod printed, for a Job that ended while nobody followed it.
    func saveLogs(_ name: String, to log: FileHandle) {
        guard let result = try? kubectl.kubectl(["logs", "job/\(name)"]), result.status == 0 else { return }
        log.writeSafely(result.stdout)
    }
}
