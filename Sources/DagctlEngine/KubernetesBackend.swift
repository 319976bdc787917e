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
    /// The Jobs of the plan's next (or current) attempt (for a kind that builds no image, its run Job;
    /// its explain and confirm Jobs are read-only and made on the way).
    func manifests(for plan: Plan, env: EnvironmentSpec, kind: PlanKind) -> [String] {
        // A plan still to start (pending, approved) gets a new attempt; any other shows its last one.
        let attempt = [.pending, .approved].contains(plan.status) ? plan.attempts.count + 1 : max(1, plan.attempts.count)
        return [Attempt.Phase.build, .run].compactMap { try? job($0, plan: plan, env: env, kind: kind, attempt: attempt) }.map(KubernetesJobs.json)
    }

    /// The Job of one phase of an attempt; nil for a phase without one (the run phase of a plan
    /// without a run phase, the build phase of a kind that builds no image).
    func job(_ phase: Attempt.Phase, plan: Plan, env: EnvironmentSpec, kind: PlanKind, attempt: Int) throws -> [String: Any]? {
        let project = try kind.project(at: ObjectID(hex: plan.commit))
        let name = KubernetesJobs.jobName(plan: plan.id, phase: phase == .build ? .build : .run, attempt: attempt)
        switch phase {
        case .build:
            guard kind.buildsImage else { return nil }
            return KubernetesJobs.buildJob(plan: plan, env: env, k: k, attempt: attempt,
                                           gitRef: repo.upstreamReference(env.ref), dockerfile: project.dockerfile)
        case .run where !kind.buildsImage:
            let workspace = cloneWorkspace(kind, project)
            let meta = KubernetesJobs.metadata(plan: plan, phase: "run", attempt: attempt)
            return KubernetesJobs.cloneJob(name: name, env: env, k: k, commit: plan.commit, labels: meta.labels,
                                           annotations: meta.annotations, workingDir: workspace.projectDir,
                                           command: kind.runCommand(plan, env: env, in: workspace), ttlSeconds: 604_800)
        case .run:
            guard kind.hasRunPhase(plan) else { return nil }
            // In the image the repository is the working directory and the tool is on PATH.
            let workspace = Workspace(projectDir: project.projectDir.isEmpty ? "." : project.projectDir, tool: kind.tool)
            return KubernetesJobs.runJob(plan: plan, env: env, k: k, attempt: attempt,
                                         command: kind.runCommand(plan, env: env, in: workspace))
        }
    }

    /// Where a clone Job's container finds the project, and the kind's tool on the image's PATH.
    func cloneWorkspace(_ kind: PlanKind, _ project: ProjectConfig) -> Workspace {
        let root = KubernetesJobs.cloneRoot
        return Workspace(projectDir: project.projectDir.isEmpty ? root : "\(root)/\(project.projectDir)", tool: kind.tool)
    }

    func advance(_ phase: Attempt.Phase, _ attempt: AttemptContext) throws -> PhaseResult {
        if phase == .build, !attempt.kind.buildsImage {
            attempt.notes.append("no image to build: \(attempt.kind.tool) runs on \(k.image)")
            return .succeeded
        }
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

    /// A Job on the environment's image in a clone at `commit` runs the helper; its answer is the
    /// last line of the log. It is always followed to its end (the answer is needed now), and kept an
    /// hour for a look; each has a name of its own, so a later ask never adopts an earlier answer.
    func inspect(_ commit: ObjectID, env: EnvironmentSpec, kind: PlanKind, command: (Workspace) -> [String]) throws -> Data {
        let project = try kind.project(at: commit)
        let workspace = cloneWorkspace(kind, project)
        let suffix = String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 36)
        let name = KubernetesJobs.name("\(env.name)-explain-\(commit.short)-\(suffix)")
        let labels = ["app.kubernetes.io/managed-by": "dagctl", "app.kubernetes.io/name": "dagctl",
                      "app.kubernetes.io/component": "explain", "dagctl.dev/environment": env.name, "dagctl.dev/phase": "explain"]
        let manifest = KubernetesJobs.cloneJob(name: name, env: env, k: k, commit: commit.hex, labels: labels,
                                               annotations: ["dagctl.dev/commit": commit.hex, "dagctl.dev/environment": env.name],
                                               workingDir: workspace.projectDir, command: command(workspace), ttlSeconds: 3600)
        try Interruption.check(before: "submitting job \(name)")
        _ = try kubectl.create(manifest)
        let sink = OutputSink(prefix: "[\(env.name) explain] ", console: FileHandle.standardError)
        sink.say("job \(name) in namespace \(k.namespace)")
        let state = try waitForEnd(name, timeout: TimeInterval(k.timeoutSeconds) + 120, sink: sink, heartbeat: 15)
        let logs = try kubectl.kubectl(["logs", "job/\(name)"])
        switch state.phase {
        case .succeeded:
            return logs.stdout
        default:
            let tail = String(decoding: logs.stdout, as: UTF8.self).split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
            let problem = kubectl.podProblem(job: name).map { "; \($0)" } ?? ""
            throw EngineError("job \(name) could not explain commit \(commit.short)\(problem): \(tail)")
        }
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
