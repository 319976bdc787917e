import DagctlPlanning

/// The JSON state file: what is deployed where, and each environment's plans.
public struct StateFile: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var environments: [String: EnvironmentState]
    /// Notifications not yet delivered, oldest first (SPEC §9). They are part of this file so that an
    /// event is written in the same atomic write as the transition that caused it.
    public var outbox: [OutboxEntry]
    /// Each webhook's last delivery and last error, for `dagctl status`.
    public var webhooks: [String: WebhookRecord]

    public init(environments: [String: EnvironmentState] = [:], outbox: [OutboxEntry] = [], webhooks: [String: WebhookRecord] = [:]) {
        self.schemaVersion = Self.currentSchemaVersion
        self.environments = environments
        self.outbox = outbox
        self.webhooks = webhooks
    }

    enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version", environments, outbox, webhooks }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        environments = try c.decode([String: EnvironmentState].self, forKey: .environments)
        outbox = try c.decodeIfPresent([OutboxEntry].self, forKey: .outbox) ?? []
        webhooks = try c.decodeIfPresent([String: WebhookRecord].self, forKey: .webhooks) ?? [:]
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(environments, forKey: .environments)
        if !outbox.isEmpty { try c.encode(outbox, forKey: .outbox) }
        if !webhooks.isEmpty { try c.encode(webhooks, forKey: .webhooks) }
    }

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
