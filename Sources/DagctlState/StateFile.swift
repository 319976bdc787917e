import DagctlPlanning

/// The JSON state file: what is deployed where, and each environment's plans.
public struct StateFile: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var environments: [String: EnvironmentState]

    public init(environments: [String: EnvironmentState] = [:]) {
        self.schemaVersion = Self.currentSchemaVersion
        self.environments = environments
    }

    enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version", environments }

    /// Finds a plan by id in any environment.
    public func plan(_ id: String) -> Plan? {
        for env in environments.values { if let p = env.plans.first(where: { $0.id == id }) { return p } }
        return nil
    }
}

public struct EnvironmentState: Codable, Sendable, Equatable {
    /// The ref and head commit seen by the last reconcile.
    public var ref: String?
    public var head: String?
    public var deployed: Deployment?
    /// SQLMesh projects: the commit at which SQLMesh last reported the environment in sync with the code
    /// (no plan needed), so that the next run with the same head starts no Python.
    public var inSync: String?
    /// Oldest first; the last one is the environment's newest plan.
    public var plans: [Plan]

    enum CodingKeys: String, CodingKey { case ref, head, deployed, inSync = "in_sync", plans }

    public init(ref: String? = nil, head: String? = nil, deployed: Deployment? = nil, plans: [Plan] = []) {
        self.ref = ref
        self.head = head
        self.deployed = deployed
        self.plans = plans
    }
}

public struct Deployment: Codable, Sendable, Equatable {
    public var commit: String
    public var version: String
    public var plan: String
    public var deployedAt: String?

    public init(commit: String, version: String, plan: String, deployedAt: String? = nil) {
        self.commit = commit
        self.version = version
        self.plan = plan
        self.deployedAt = deployedAt
    }

    enum CodingKeys: String, CodingKey { case commit, version, plan, deployedAt = "deployed_at" }
}
