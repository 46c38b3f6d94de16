/// An agent's availability (api.md §3.4). `tunnel` is not used yet (no tunnels).
public enum AgentStatus: String, Codable, Sendable, CaseIterable {
    case idle
    case busy
    case syncing
    case unhealthy
}
