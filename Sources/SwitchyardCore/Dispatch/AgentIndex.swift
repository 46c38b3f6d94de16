import Foundation

/// The connected agents with room, found without looking at each (issue 14, item 4): agents are grouped by what
/// decides their eligibility and region factor — team, labels, community opt-in, region, largest GPU — and each
/// group keeps its members with room sorted by load, then id. Choosing an agent for a requirement looks at the
/// head of each eligible group only, so it costs one look per group, not per agent: 10,000 agents of one kind are
/// one group. It gives the agent `DispatchPolicy.choose` would (within a group, region and VRAM are equal and load
/// then id decide); a requirement naming models falls back to ranking the eligible groups' members, since cached
/// models differ per agent.
public struct AgentIndex: Sendable {
    struct Group: Hashable, Sendable {
        let teamId: UUID
        let labels: Set<String>
        let communityOptIn: Bool
        let region: String?
        let largestVRAMGB: Int
        let cloud: Bool

        init(_ candidate: AgentCandidate) {
            cloud = candidate.cloud
            teamId = candidate.teamId
            labels = candidate.labels
            communityOptIn = candidate.communityOptIn
            region = candidate.region
            largestVRAMGB = (candidate.gpuVRAM.max() ?? 0) / (1024 * 1024 * 1024)
        }
    }

    /// A member with room, in the order the policy prefers: lowest load, then lowest id.
    struct Slot: Comparable, Sendable {
        let load: Double
        let id: String

        static func < (left: Slot, right: Slot) -> Bool {
            left.load != right.load ? left.load < right.load : left.id < right.id
        }
    }

    struct Members: Sendable {
        var candidates: [String: AgentCandidate] = [:]
        /// Members with room, sorted.
        var withRoom: [Slot] = []
    }

    private var groups: [Group: Members] = [:]
    private var groupOf: [AgentKey: Group] = [:]
    /// Members with room over all groups.
    public private(set) var roomCount = 0

    public init() {}

    public var hasRoom: Bool { roomCount > 0 }

    /// Adds or updates an agent (after any change to its status, capacity or count of attempts).
    public mutating func update(_ key: AgentKey, _ candidate: AgentCandidate) {
        let group = Group(candidate)
        if let previous = groupOf[key] { removeSlot(key, from: previous) }
        if groupOf[key] != group {
            if let previous = groupOf[key] { forget(key, in: previous) }
            groupOf[key] = group
        }
        groups[group, default: Members()].candidates[key.agentId] = candidate
        guard let slot = Self.slot(candidate) else { return }
        let index = groups[group]!.withRoom.partitioningIndex { !($0 < slot) }
        groups[group]!.withRoom.insert(slot, at: index)
        roomCount += 1
    }

    public mutating func remove(_ key: AgentKey) {
        guard let group = groupOf.removeValue(forKey: key) else { return }
        removeSlot(key, from: group)
        forget(key, in: group)
    }

    /// The agent to give a task needing `requirement` to, as `DispatchPolicy.choose` would pick among all agents; for a
    /// task of a team with `cloud_fallback` that none of them can take, the team's cloud runner when no eligible agent
    /// is connected at all (whatever its status or load) or once the task has `waited` its `cloudFallbackWait`.
    public func choose(for requirement: DispatchRequirement, waited: TimeInterval = 0) -> AgentCandidate? {
        if let chosen = chooseAmongEligible(requirement) { return chosen }
        guard requirement.target == .agent, let wait = requirement.cloudFallbackWait,
            waited >= wait || !groups.keys.contains(where: { !$0.cloud && Self.mayServe($0, requirement) })
        else { return nil }
        var cloud = requirement
        cloud.target = .comfyCloud
        return chooseAmongEligible(cloud)
    }

    /// Whether a cloud runner has room (a waiting task may be due to fall back to it).
    public var cloudHasRoom: Bool {
        groups.contains { group, members in group.cloud && !members.withRoom.isEmpty }
    }

    private func chooseAmongEligible(_ requirement: DispatchRequirement) -> AgentCandidate? {
        var heads: [AgentCandidate] = []
        for (group, members) in groups where !members.withRoom.isEmpty && Self.mayServe(group, requirement) {
            if requirement.requiredModels.isEmpty {
                if let head = members.candidates[members.withRoom[0].id] { heads.append(head) }
            } else {
                heads.append(contentsOf: members.withRoom.lazy.compactMap { members.candidates[$0.id] })
            }
        }
        return DispatchPolicy.choose(from: heads, for: requirement)
    }

    /// Whether the group's members are eligible by team or pool, labels and VRAM (status and room are per member).
    static func mayServe(_ group: Group, _ requirement: DispatchRequirement) -> Bool {
        guard group.cloud == (requirement.target == .comfyCloud) else { return false }
        if group.cloud { return group.teamId == requirement.teamId }
        switch requirement.pool {
        case .team where group.teamId != requirement.teamId: return false
        case .community where group.teamId != requirement.teamId && !group.communityOptIn: return false
        default: break
        }
        return requirement.requiredLabels.isSubset(of: group.labels) && group.largestVRAMGB >= requirement.minVRAMGB
    }

    /// Its place among the members with room, or nil when it has none (or is unhealthy; a syncing agent has room
    /// for the tasks whose models it holds, which `DispatchPolicy` judges).
    static func slot(_ candidate: AgentCandidate) -> Slot? {
        guard candidate.status != .unhealthy, candidate.running < candidate.capacity + max(0, candidate.prefetch)
        else { return nil }
        return Slot(load: Double(candidate.running) / Double(max(candidate.capacity, 1)), id: candidate.id)
    }

    private mutating func removeSlot(_ key: AgentKey, from group: Group) {
        guard let candidate = groups[group]?.candidates[key.agentId], let slot = Self.slot(candidate) else { return }
        let index = groups[group]!.withRoom.partitioningIndex { !($0 < slot) }
        guard index < groups[group]!.withRoom.count, groups[group]!.withRoom[index] == slot else { return }
        groups[group]!.withRoom.remove(at: index)
        roomCount -= 1
    }

    private mutating func forget(_ key: AgentKey, in group: Group) {
        groups[group]?.candidates[key.agentId] = nil
        if groups[group]?.candidates.isEmpty == true { groups[group] = nil }
    }
}

extension Array {
    /// The first index whose element satisfies `belongs` (which must be false, then true, along the array).
    func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
