import SwitchyardWire

/// Identifies this agent build to the gateway; the gateway, executors and transfers arrive with the agents issue.
public enum AgentVersion {
    public static let current = "0.1.0"
    public static let wireProtocol = WireProtocol.version
}
