import Foundation

/// The cluster, reached only through `kubectl`, so kubeconfig, contexts and exec auth plugins work as
/// users expect. Arguments go to kubectl as they are; manifests go on stdin.
public struct Kubectl: Sendable {
    public var context: String?
    public var namespace: String

    public init(context: String?, namespace: String) {
        self.context = context
        self.namespace = namespace
    }

    var baseArguments: [String] {
        (context.map { ["--context", $0] } ?? []) + ["--namespace", namespace]
    }

    public enum CreateResult: Sendable, Equatable { case created, alreadyExists }

    /// Creates the Job, or reports that one with its name exists already (it is then adopted).
    public func create(_ manifest: [String: Any]) throws -> CreateResult {
        let result = try kubectl(["create", "-f", "-", "-o", "name"], stdin: Data(KubernetesJobs.json(manifest).utf8))
        if result.status == 0 { return .created }
        if result.stderr.contains("AlreadyExists") { return .alreadyExists }
        throw CommandError("kubectl create failed: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    /// What a Job's status says, or nil when there is no such Job.
    public func job(_ name: String) throws -> JobState? {
        let result = try kubectl(["get", "job", name, "-o", "json"])
        if result.status != 0 {
            if result.stderr.contains("NotFound") { return nil }
            throw CommandError("kubectl get job \(name) failed: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] else {
            throw CommandError("kubectl get job \(name) printed no JSON object")
        }
        return JobState(object)
    }

    /// The first reason a pod of the Job gives for failing (terminated reason and message, or why it waits).
    public func podProblem(job name: String) -> String? {
        guard let result = try? kubectl(["get", "pods", "-l", "job-name=\(name)", "-o", "json"]), result.status == 0,
              let list = try? JSONSerialization.jsonObject(with: result.stdout) as? [String: Any],
              let pods = list["items"] as? [[String: Any]] else { return nil }
        for pod in pods {
            // Init containers first: a failed clone leaves the main container waiting, with nothing to say.
            let podStatus = pod["status"] as? [String: Any]
            let statuses = ((podStatus?["initContainerStatuses"] as? [[String: Any]]) ?? []) + ((podStatus?["containerStatuses"] as? [[String: Any]]) ?? [])
            for status in statuses {
                let state = status["state"] as? [String: Any] ?? [:]
                if let t = state["terminated"] as? [String: Any], (t["exitCode"] as? Int ?? 0) != 0 {
                    var text = "container \(status["name"] as? String ?? "?") \(t["reason"] as? String ?? "terminated") with exit code \(t["exitCode"] as? Int ?? -1)"
                    if let message = t["message"] as? String, !message.isEmpty { text += ": \(message)" }
                    return text
                }
                if let w = state["waiting"] as? [String: Any], let reason = w["reason"] as? String,
                   !["ContainerCreating", "PodInitializing"].contains(reason) {
                    return "container \(status["name"] as? String ?? "?") waiting: \(reason)" + ((w["message"] as? String).map { ": \($0)" } ?? "")
                }
            }
        }
        return nil
    }

    /// Streams the Job's pod logs until the container ends (or `kubectl logs` gives up).
    public func followLogs(job name: String, log: FileHandle, sink: OutputSink) throws -> ProcessEnd {
        try LiveProcess.run(["kubectl"] + baseArguments + ["logs", "job/\(name)", "--follow", "--pod-running-timeout=2m"],
                            environment: ProcessInfo.processInfo.environment, log: log, sink: sink)
    }

    public func kubectl(_ arguments: [String], stdin: Data? = nil) throws -> CommandResult {
        try Command.run("kubectl", baseArguments + arguments, stdin: stdin)
    }
}

/// The parts of a Job's status dagctl acts on.
public struct JobState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable { case pending, active, succeeded, failed(reason: String, message: String) }

    public var phase: Phase

    public init(phase: Phase) { self.phase = phase }

    init(_ object: [String: Any]) {
        let status = object["status"] as? [String: Any] ?? [:]
        let conditions = status["conditions"] as? [[String: Any]] ?? []
        func condition(_ type: String) -> [String: Any]? {
            conditions.first { $0["type"] as? String == type && $0["status"] as? String == "True" }
        }
        if condition("Complete") != nil {
            phase = .succeeded
        } else if let failed = condition("Failed") {
            phase = .failed(reason: failed["reason"] as? String ?? "Failed", message: failed["message"] as? String ?? "")
        } else if (status["active"] as? Int ?? 0) > 0 || status["startTime"] != nil {
            phase = .active
        } else {
            phase = .pending
        }
    }
}
