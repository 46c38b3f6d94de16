import Foundation

/// What the dispatcher knows about a connected agent when it matches tasks.
public struct AgentCandidate: Sendable, Equatable {
    /// The agent's own id (unique within its team).
    public var id: String
    public var teamId: UUID
    public var labels: Set<String>
    public var status: AgentStatus
    /// How many attempts it runs at once, and how many it holds now (running or prefetched).
    public var capacity: Int
    public var running: Int
    /// Attempts it takes beyond `capacity`, waiting in its engine's own queue.
    public var prefetch: Int
    /// Lowercased and trimmed; nil when the agent did not say.
    public var region: String?
    public var communityOptIn: Bool
    /// Total VRAM of each GPU, in bytes.
    public var gpuVRAM: [Int]
    /// Models it already holds (`<model_type>/<file>`).
    public var cachedModels: Set<String>
    /// The team's cloud runner (Comfy Cloud), a virtual agent inside the server: it takes the team's
    /// `comfy_cloud` tasks, and its agent-targeted ones when they fall back (`DispatchRequirement.cloudFallbackWait`).
    public var cloud: Bool

    public init(
        id: String, teamId: UUID, labels: Set<String>, status: AgentStatus, capacity: Int, running: Int, region: String?, communityOptIn: Bool,
        gpuVRAM: [Int] = [], cachedModels: Set<String> = [], prefetch: Int = 0, cloud: Bool = false
    ) {
        self.cloud = cloud
        self.id = id
        self.teamId = teamId
        self.labels = labels
        self.status = status
        self.capacity = capacity
        self.running = running
        self.prefetch = prefetch
        self.region = region
        self.communityOptIn = communityOptIn
        self.gpuVRAM = gpuVRAM
        self.cachedModels = cachedModels
    }
}

/// What a task asks of the agent that runs it.
public struct DispatchRequirement: Sendable, Hashable {
    public var teamId: UUID
    public var requiredLabels: Set<String>
    public var pool: TargetPool
    public var minVRAMGB: Int
    public var submitterRegion: String?
    public var requiredModels: Set<String>
    /// `comfy_cloud`: only the team's cloud runner takes it (labels, pool, VRAM and models do not apply).
    public var target: DispatchTarget
    /// An agent-targeted task of a team with `cloud_fallback` on: it goes to the team's cloud runner when no eligible
    /// agent is connected, or once it has waited this long (seconds since submission) for one with room. Nil: never.
    public var cloudFallbackWait: TimeInterval?

    public init(
        teamId: UUID, requiredLabels: Set<String>, pool: TargetPool, minVRAMGB: Int = 0, submitterRegion: String? = nil,
        requiredModels: Set<String> = [], target: DispatchTarget = .agent, cloudFallbackWait: TimeInterval? = nil
    ) {
        self.target = target
        self.cloudFallbackWait = cloudFallbackWait
        self.teamId = teamId
        self.requiredLabels = requiredLabels
        self.pool = pool
        self.minVRAMGB = minVRAMGB
        self.submitterRegion = submitterRegion
        self.requiredModels = requiredModels
    }
}

/// Why an agent cannot take a task.
public enum Ineligibility: Sendable, Equatable, CustomStringConvertible {
    case otherTeam
    case notInCommunityPool
    case missingLabels([String])
    case status(AgentStatus)
    case full(running: Int, slots: Int)
    case notEnoughVRAM(largestGB: Int, requiredGB: Int)
    /// A cloud runner and an agent-targeted task, or an agent and a `comfy_cloud` task.
    case otherTarget(cloud: Bool)

    public var description: String {
        switch self {
        case .otherTeam: "belongs to another team"
        case .notInCommunityPool: "has not opted in to the community pool"
        case .missingLabels(let labels): "lacks label\(labels.count == 1 ? "" : "s") \(labels.joined(separator: ", "))"
        case .status(let status): "is \(status.rawValue)"
        case .full(let running, let slots): "holds \(running) of \(slots) attempts"
        case .notEnoughVRAM(let largest, let required): "has \(largest) GB of VRAM, the task needs \(required) GB"
        case .otherTarget(let cloud): cloud ? "runs only comfy_cloud tasks" : "does not run comfy_cloud tasks"
        }
    }
}

/// The dispatch rules (api.md §3.5): who may take a task, and who should. Pure, so every rule is tested
/// without a server.
public enum DispatchPolicy {
    /// Why `agent` may not take a task needing `requirement`, or nil when it may. Checks in order: pool (team,
    /// or community opt-in), labels ⊇ required, status (idle, or busy with spare capacity; syncing only for a task
    /// whose `required_models` it already holds — docs/decisions.md, "Model sync"), VRAM.
    public static func ineligibility(of agent: AgentCandidate, for requirement: DispatchRequirement) -> Ineligibility? {
        guard agent.cloud == (requirement.target == .comfyCloud) else { return .otherTarget(cloud: agent.cloud) }
        if agent.cloud {
            guard agent.teamId == requirement.teamId else { return .otherTeam }
            guard agent.status != .unhealthy else { return .status(agent.status) }
            return agent.running < agent.capacity ? nil : .full(running: agent.running, slots: agent.capacity)
        }
        switch requirement.pool {
        case .team where agent.teamId != requirement.teamId: return .otherTeam
        case .community where agent.teamId != requirement.teamId && !agent.communityOptIn: return .notInCommunityPool
        default: break
        }
        if !requirement.requiredLabels.isSubset(of: agent.labels) {
            return .missingLabels(requirement.requiredLabels.subtracting(agent.labels).sorted())
        }
        switch agent.status {
        case .idle, .busy: break
        case .syncing where requirement.requiredModels.isSubset(of: agent.cachedModels): break
        case .syncing, .unhealthy: return .status(agent.status)
        }
        // Prefetch slots count as room: the engine queues the attempt and starts it the moment it is free.
        let slots = agent.capacity + max(0, agent.prefetch)
        guard agent.running < slots else { return .full(running: agent.running, slots: slots) }
        if requirement.minVRAMGB > 0 {
            let largest = (agent.gpuVRAM.max() ?? 0) / (1024 * 1024 * 1024)
            guard largest >= requirement.minVRAMGB else { return .notEnoughVRAM(largestGB: largest, requiredGB: requirement.minVRAMGB) }
        }
        return nil
    }

    /// The region factor of §3.5: 1 for the same region, 0.5 when either side is unknown, 0 when they differ.
    public static func regionFactor(agent: String?, submitter: String?) -> Double {
        guard let agent, let submitter else { return 0.5 }
        return agent == submitter ? 1 : 0
    }

    /// The eligible agent to give the task to: highest region factor, then lowest load (running ÷ capacity),
    /// then most required models already cached, then lowest id — the same inputs always give the same agent. Load
    /// passes 1 once an agent only has prefetch slots left, so an agent with a free engine is always preferred.
    /// One pass, each agent ranked once, nothing allocated for an eligible agent (dispatch with 10,000 connected
    /// agents scans them all; docs/performance.md).
    public static func choose<Agents: Sequence<AgentCandidate>>(from agents: Agents, for requirement: DispatchRequirement) -> AgentCandidate? {
        var best: (agent: AgentCandidate, rank: Rank)?
        for agent in agents where ineligibility(of: agent, for: requirement) == nil {
            let rank = rank(agent, requirement)
            if let current = best, !(rank < current.rank) { continue }
            best = (agent, rank)
        }
        return best?.agent
    }

    /// Why a task waits: the closest agents' reasons, for the task's status message.
    public static func waitingReason<Agents: Sequence<AgentCandidate>>(agents: Agents, for requirement: DispatchRequirement) -> String {
        if requirement.target == .comfyCloud {
            guard let runner = agents.first(where: { $0.cloud && $0.teamId == requirement.teamId }) else {
                return "waiting for Comfy Cloud: the team has no Comfy Cloud key (PUT /cloud-providers/comfy-cloud)"
            }
            return "waiting for Comfy Cloud: \(runner.running) of the team's \(runner.capacity) concurrent jobs are running"
        }
        let fallback = requirement.cloudFallbackWait.map { "; it goes to Comfy Cloud after \(DispatchMachine.seconds($0)) (cloud_fallback)" } ?? ""
        var reasons: [String] = []
        for agent in agents where !agent.cloud {
            guard let reason = ineligibility(of: agent, for: requirement) else { continue }
            reasons.append("agent \(agent.id) \(reason)")
            if reasons.count == 3 { break }
        }
        guard !reasons.isEmpty else { return "waiting for eligible agent: none connected" + fallback }
        return "waiting for eligible agent: " + reasons.joined(separator: "; ") + fallback
    }

    private struct Rank: Comparable {
        var region: Double
        var load: Double
        var cacheHits: Int
        var id: String

        static func < (left: Rank, right: Rank) -> Bool {
            if left.region != right.region { return left.region > right.region }
            if left.load != right.load { return left.load < right.load }
            if left.cacheHits != right.cacheHits { return left.cacheHits > right.cacheHits }
            return left.id < right.id
        }
    }

    private static func rank(_ agent: AgentCandidate, _ requirement: DispatchRequirement) -> Rank {
        Rank(
            region: regionFactor(agent: agent.region, submitter: requirement.submitterRegion),
            load: Double(agent.running) / Double(max(agent.capacity, 1)),
            cacheHits: requirement.requiredModels.isEmpty ? 0 : requirement.requiredModels.intersection(agent.cachedModels).count,
            id: agent.id)
    }
}
