extension EnvironmentSpec.Backend {
    /// The longest a phase (build or run) may take, in seconds; nil for no limit.
    public var timeoutSeconds: Int? {
        switch self {
        case .local(let timeout): return timeout
        case .kubernetes(let k): return k.timeoutSeconds
        }
    }
}
