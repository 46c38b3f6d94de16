import Foundation

/// A connected (or lately connected) agent as `GET /agents` shows it (api.md §2.5). The gateway writes it on
/// connect, on every heartbeat and status change, and when the connection ends. Agent ids are chosen by the
/// agents, so they are unique within a team, not across teams.
public struct AgentRecord: Sendable, Equatable {
    public var teamId: UUID
    public var agentId: String
    public var credentialId: UUID
    public var status: AgentStatus
    public var labels: [String]
    public var region: String?
    public var communityOptIn: Bool
    public var capacity: Int
    public var agentVersion: String
    public var tool: String
    public var toolVersion: String?
    /// As the agent reported it (`gpu_devices`, `os`, memory), kept as JSON.
    public var systemStats: JSONValue
    public var gatewayId: String
    public var syncDetail: String?
    public var syncPercent: Double?
    /// While syncing: `checking`, `downloading` or `verifying`.
    public var syncPhase: String?
    /// What an agent that syncs models holds and could not take: `{"held": [placement], "broken": [{model_id,
    /// placement, error}]}`; nil for an agent that does not sync.
    public var modelReport: JSONValue?
    public var connectedAt: Date
    public var lastHeartbeatAt: Date
    /// Nil while connected.
    public var disconnectedAt: Date?
    public var tasksCompleted: Int

    public init(
        teamId: UUID, agentId: String, credentialId: UUID, status: AgentStatus, labels: [String], region: String?, communityOptIn: Bool,
        capacity: Int, agentVersion: String, tool: String, toolVersion: String?, systemStats: JSONValue, gatewayId: String,
        syncDetail: String? = nil, syncPercent: Double? = nil, syncPhase: String? = nil, modelReport: JSONValue? = nil, connectedAt: Date,
        lastHeartbeatAt: Date, disconnectedAt: Date? = nil, tasksCompleted: Int = 0
    ) {
        self.teamId = teamId
        self.agentId = agentId
        self.credentialId = credentialId
        self.status = status
        self.labels = labels
        self.region = region
        self.communityOptIn = communityOptIn
        self.capacity = capacity
        self.agentVersion = agentVersion
        self.tool = tool
        self.toolVersion = toolVersion
        self.systemStats = systemStats
        self.gatewayId = gatewayId
        self.syncDetail = syncDetail
        self.syncPercent = syncPercent
        self.syncPhase = syncPhase
        self.modelReport = modelReport
        self.connectedAt = connectedAt
        self.lastHeartbeatAt = lastHeartbeatAt
        self.disconnectedAt = disconnectedAt
        self.tasksCompleted = tasksCompleted
    }
}
