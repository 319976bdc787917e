import DagctlPlanning
import DagctlSpec
import Foundation

/// The batch/v1 Jobs of the Kubernetes backend, built as plain JSON values (pure: the same plan,
/// phase and attempt always give the same object, byte for byte).
public enum KubernetesJobs {
    public enum Phase: String, Sendable { case build, run }

    /// A DNS-1123 label of at most 63 characters, unique per plan, phase and attempt. Long ones keep
    /// their start and end in a hash so that they stay unique and deterministic.
    public static func jobName(plan: String, phase: Phase, attempt: Int) -> String {
        name("\(plan)-\(phase.rawValue)-\(attempt)")
    }

    /// `text` as a Job name: dots become dashes; past 63 characters the start is kept with a hash of the whole.
    public static func name(_ text: String) -> String {
        let full = text.replacingOccurrences(of: ".", with: "-").lowercased()
        if full.utf8.count <= 63 { return full }
        let hash = Hashing.sha256Hex(Array(full.utf8)).prefix(8)
        var head = String(full.prefix(63 - 9))
        while head.hasSuffix("-") { head.removeLast() }
        return "\(head)-\(hash)"
    }

    /// The image tag of a plan: its id, which is a valid tag (letters, digits, '-', '.').
    public static func imageReference(_ k: EnvironmentSpec.KubernetesBackend, plan: Plan) -> String {
        "\(k.image):\(plan.id)"
    }

    /// Kaniko's build context pinned to the plan's commit. Git contexts take `#<ref>#<sha>`; other
    /// kinds cannot be pinned and are passed as they are.
    public static func buildContext(_ k: EnvironmentSpec.KubernetesBackend, gitRef: String, commit: String) -> String {
        guard k.context.hasPrefix("git://") else { return k.context }
        let base = k.context.split(separator: "#", maxSplits: 1).first.map(String.init) ?? k.context
        return "\(base)#\(gitRef)#\(commit)"
    }

    static func labels(plan: Plan, phase: Phase, attempt: Int) -> [String: String] {
        [
            "app.kubernetes.io/managed-by": "dagctl",
            "app.kubernetes.io/name": "dagctl",
            "app.kubernetes.io/component": phase.rawValue,
            "dagctl.dev/environment": plan.environment,
            "dagctl.dev/plan": labelValue(plan.id),
            "dagctl.dev/phase": phase.rawValue,
            "dagctl.dev/attempt": String(attempt),
        ]
    }

    /// Label values are at most 63 characters; the full plan id is always in the annotations.
    static func labelValue(_ s: String) -> String {
        s.utf8.count <= 63 ? s : String(s.prefix(54)) + "-" + Hashing.sha256Hex(Array(s.utf8)).prefix(8)
    }

    static func annotations(plan: Plan, attempt: Int) -> [String: String] {
        ["dagctl.dev/plan": plan.id, "dagctl.dev/commit": plan.commit, "dagctl.dev/environment": plan.environment,
         "dagctl.dev/attempt": String(attempt), "dagctl.dev/scope": plan.scope.rawValue]
    }

    public static func buildJob(plan: Plan, env: EnvironmentSpec, k: EnvironmentSpec.KubernetesBackend, attempt: Int,
                                gitRef: String, dockerfile: String) -> [String: Any] {
        let args = [
            "--context=\(buildContext(k, gitRef: gitRef, commit: plan.commit))",
            "--dockerfile=\(dockerfile)",
            "--destination=\(imageReference(k, plan: plan))",
            "--cache=true",
            "--label=dagctl.dev/commit=\(plan.commit)",
            "--label=dagctl.dev/plan=\(plan.id)",
        ]
        var container: [String: Any] = ["name": "kaniko", "image": k.kanikoImage, "args": args]
        var volumes: [[String: Any]] = []
        if let secret = k.registrySecret {
            container["volumeMounts"] = [["name": "registry-credentials", "mountPath": "/kaniko/.docker", "readOnly": true]]
            volumes = [["name": "registry-credentials",
                        "secret": ["secretName": secret, "items": [["key": ".dockerconfigjson", "path": "config.json"]]]]]
        }
        return job(name: jobName(plan: plan.id, phase: .build, attempt: attempt), plan: plan, k: k, phase: .build,
                   attempt: attempt, container: container, pod: volumes.isEmpty ? [:] : ["volumes": volumes])
    }

    /// The run phase's Job: `command` (the plan kind's, with the project folder relative to the image's
    /// working directory) on the image the build Job pushed.
    public static func runJob(plan: Plan, env: EnvironmentSpec, k: EnvironmentSpec.KubernetesBackend, attempt: Int,
                              command: [String]) -> [String: Any] {
        var container: [String: Any] = ["name": "dbt", "image": imageReference(k, plan: plan), "command": command]
        if !env.env.isEmpty {
            container["env"] = env.env.keys.sorted().map { ["name": $0, "value": env.env[$0]!] }
        }
        if !k.secretEnv.isEmpty {
            container["envFrom"] = k.secretEnv.map { ["secretRef": ["name": $0]] }
        }
        let pod: [String: Any] = k.registrySecret.map { ["imagePullSecrets": [["name": $0]]] } ?? [:]
        return job(name: jobName(plan: plan.id, phase: .run, attempt: attempt), plan: plan, k: k, phase: .run,
                   attempt: attempt, container: container, pod: pod)
    }

    /// Where a clone Job's pod checks out the repository (an emptyDir volume).
    public static let cloneRoot = "/workspace/repo"

    /// A Job that runs `command` on `k.image` (an existing image, with its tag) in a checkout of the
    /// repository at exactly `commit`: two init containers on `k.gitImage` clone `k.context` into an
    /// emptyDir and check the commit out (git's own commands, no shell). For plan kinds that build no
    /// image (SQLMesh): their run, and their explain and confirm steps.
    public static func cloneJob(name: String, env: EnvironmentSpec, k: EnvironmentSpec.KubernetesBackend, commit: String,
                                labels: [String: String], annotations: [String: String], workingDir: String,
                                command: [String], ttlSeconds: Int) -> [String: Any] {
        let mount: [[String: Any]] = [["name": "workspace", "mountPath": "/workspace"]]
        let clone: [[String: Any]] = [
            ["name": "clone", "image": k.gitImage, "command": ["git", "clone", "--no-checkout", "--", k.context, cloneRoot],
             "volumeMounts": mount],
            ["name": "checkout", "image": k.gitImage, "command": ["git", "-C", cloneRoot, "checkout", "--detach", commit],
             "volumeMounts": mount],
        ]
        var container: [String: Any] = ["name": "sqlmesh", "image": k.image, "command": command, "workingDir": workingDir,
                                        "volumeMounts": mount]
        if !env.env.isEmpty { container["env"] = env.env.keys.sorted().map { ["name": $0, "value": env.env[$0]!] } }
        if !k.secretEnv.isEmpty { container["envFrom"] = k.secretEnv.map { ["secretRef": ["name": $0]] } }
        var podSpec: [String: Any] = ["restartPolicy": "Never", "initContainers": clone, "containers": [container],
                                      "volumes": [["name": "workspace", "emptyDir": [String: Any]()]]]
        if let sa = k.serviceAccount { podSpec["serviceAccountName"] = sa }
        if let secret = k.registrySecret { podSpec["imagePullSecrets"] = [["name": secret]] }
        return [
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": ["name": name, "namespace": k.namespace, "labels": labels, "annotations": annotations],
            "spec": [
                "backoffLimit": 0,
                "activeDeadlineSeconds": k.timeoutSeconds,
                "ttlSecondsAfterFinished": ttlSeconds,
                "template": ["metadata": ["labels": labels, "annotations": annotations], "spec": podSpec] as [String: Any],
            ] as [String: Any],
        ]
    }

    /// Labels and annotations of a plan's Job (run, or a check of it).
    public static func metadata(plan: Plan, phase: String, attempt: Int) -> (labels: [String: String], annotations: [String: String]) {
        var labels = labels(plan: plan, phase: .run, attempt: attempt)
        labels["app.kubernetes.io/component"] = phase
        labels["dagctl.dev/phase"] = phase
        return (labels, annotations(plan: plan, attempt: attempt))
    }

    static func job(name: String, plan: Plan, k: EnvironmentSpec.KubernetesBackend, phase: Phase, attempt: Int,
                    container: [String: Any], pod: [String: Any]) -> [String: Any] {
        let labels = labels(plan: plan, phase: phase, attempt: attempt)
        var podSpec: [String: Any] = pod.merging(["restartPolicy": "Never", "containers": [container]]) { $1 }
        if let sa = k.serviceAccount { podSpec["serviceAccountName"] = sa }
        return [
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": ["name": name, "namespace": k.namespace, "labels": labels,
                         "annotations": annotations(plan: plan, attempt: attempt)],
            "spec": [
                // Retries belong to dagctl, so Kubernetes gets exactly one try.
                "backoffLimit": 0,
                "activeDeadlineSeconds": k.timeoutSeconds,
                // Kept a week so a --no-wait run can still observe the outcome.
                "ttlSecondsAfterFinished": 604_800,
                "template": ["metadata": ["labels": labels, "annotations": annotations(plan: plan, attempt: attempt)],
                             "spec": podSpec] as [String: Any],
            ] as [String: Any],
        ]
    }

    /// Stable JSON text of a manifest (sorted keys).
    public static func json(_ object: [String: Any]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
