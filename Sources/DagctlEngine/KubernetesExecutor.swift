import DagctlBackends
import DagctlGit
import DagctlPlanning
import DagctlSpec
import DagctlState
import Foundation

/// Advances one plan on the Kubernetes backend, level-triggered: the attempt in the state file names
/// the Job to look at; each call observes it and takes the next step (submit, follow, move on to the
/// run Job, record the outcome). With `wait` it follows until the plan finishes; without, it submits
/// what is due and returns, and a later run picks up from what the cluster says.
struct KubernetesExecutor {
    let repo: GitRepository
    let desired: DesiredState
    let stateDir: String
    let console: FileHandle
    let heartbeat: TimeInterval
    let wait: Bool

    /// The Jobs the plan's next (or current) attempt applies, for review in `plan --output json`.
    static func manifests(plan: Plan, env: EnvironmentSpec, k: EnvironmentSpec.KubernetesBackend,
                          repo: GitRepository, config: ProjectConfig) -> [[String: Any]] {
        let started = [.building, .running, .succeeded, .failed].contains(plan.status)
        let attempt = max(1, started ? plan.attempts.count : plan.attempts.count + 1)
        return [KubernetesJobs.Phase.build, .run].compactMap {
            job($0, plan: plan, env: env, k: k, attempt: attempt, repo: repo, config: config)
        }
    }

    /// The Job of one phase of an attempt; nil for the run phase of a `build_only` plan.
    static func job(_ phase: KubernetesJobs.Phase, plan: Plan, env: EnvironmentSpec, k: EnvironmentSpec.KubernetesBackend,
                    attempt: Int, repo: GitRepository, config: ProjectConfig) -> [String: Any]? {
        switch phase {
        case .build:
            return KubernetesJobs.buildJob(plan: plan, env: env, k: k, attempt: attempt,
                                           gitRef: repo.upstreamReference(env.ref), dockerfile: config.dockerfile)
        case .run:
            return KubernetesJobs.runJob(plan: plan, env: env, k: k, attempt: attempt, projectDir: config.projectDir)
        }
    }

    func advance(_ plan: Plan, env: EnvironmentSpec, k: EnvironmentSpec.KubernetesBackend,
                 record: (Plan) throws -> Void) throws -> (Plan, [String]) {
        var plan = plan
        var notes: [String] = []
        let kubectl = Kubectl(context: k.kubectlContext, namespace: k.namespace)
        let config = try Explainer(repo: repo, members: desired.members).config(at: ObjectID(hex: plan.commit), label: String(plan.commit.prefix(10)))

        if plan.status == .approved {
            // The Job's name is recorded before it is created: a run killed in between finds it by name.
            plan.startAttempt(at: Timestamp.now(),
                              jobs: ["build": KubernetesJobs.jobName(plan: plan.id, phase: .build, attempt: plan.attempts.count + 1)])
            try record(plan)
        }

        while [.building, .running].contains(plan.status) {
            let n = plan.attempts.count
            let phase: KubernetesJobs.Phase = plan.attempts[n - 1].phase == .build ? .build : .run
            let name = plan.attempts[n - 1].jobs?[phase.rawValue] ?? KubernetesJobs.jobName(plan: plan.id, phase: phase, attempt: n)
            let logDir = LocalExecutor.logDir(stateDir: stateDir, plan: plan.id, attempt: n)
            try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
            let sink = OutputSink(prefix: "[\(env.name) \(phase.rawValue)] ", console: console, heartbeat: heartbeat)

            var state = try kubectl.job(name)
            if state == nil {
                try Interruption.check(before: "submitting job \(name)")
                guard let manifest = Self.job(phase, plan: plan, env: env, k: k, attempt: n, repo: repo, config: config) else { throw EngineError("plan \(plan.id) has no run phase") }
                switch try kubectl.create(manifest) {
                case .created: notes.append("submitted job \(name) (\(phase.rawValue), attempt \(n))")
                case .alreadyExists: notes.append("adopted the existing job \(name)")
                }
                sink.say("job \(name) in namespace \(k.namespace)")
                state = JobState(phase: .pending)
            }

            var followed = false
            if case .succeeded = state!.phase {} else if case .failed = state!.phase {} else {
                guard wait else {
                    notes.append("job \(name) is running; a later reconcile will pick it up (--no-wait)")
                    return (plan, notes)
                }
                let log = try PhaseLog.create("\(logDir)/\(phase.rawValue).log")
                _ = try kubectl.followLogs(job: name, log: log, sink: sink)
                try? log.close()
                followed = true
                state = try waitForEnd(kubectl, name, timeout: TimeInterval(k.timeoutSeconds) + 120, sink: sink)
            }
            if !followed { saveLogs(kubectl, name, to: "\(logDir)/\(phase.rawValue).log") }

            switch state!.phase {
            case .succeeded:
                notes.append("job \(name) succeeded")
                if phase == .build, plan.scope != .buildOnly {
                    plan.attempts[n - 1].phase = .run
                    plan.attempts[n - 1].jobs?["run"] = KubernetesJobs.jobName(plan: plan.id, phase: .run, attempt: n)
                    plan.status = .running
                } else {
                    plan.succeedAttempt(at: Timestamp.now())
                }
                try record(plan)
            case .failed(let reason, let message):
                var why = "job \(name) failed: \(reason)" + (message.isEmpty ? "" : " (\(message))")
                if let problem = kubectl.podProblem(job: name) { why += "; \(problem)" }
                plan.failAttempt(why, at: Timestamp.now())
                try record(plan)
                notes.append(plan.statusReason!)
            case .pending, .active:
                notes.append("job \(name) did not finish in time; a later reconcile will look again")
                return (plan, notes)
            }
        }
        return (plan, notes)
    }

    /// Polls the Job until it succeeds or fails (its conditions can lag behind the end of the log).
    func waitForEnd(_ kubectl: Kubectl, _ name: String, timeout: TimeInterval, sink: OutputSink) throws -> JobState {
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
    func saveLogs(_ kubectl: Kubectl, _ name: String, to path: String) {
        guard let result = try? kubectl.kubectl(["logs", "job/\(name)"]), result.status == 0 else { return }
        _ = FileManager.default.createFile(atPath: path, contents: result.stdout)
    }
}
