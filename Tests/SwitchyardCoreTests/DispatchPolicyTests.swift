import Foundation
import SwitchyardCore
import Testing

@Suite("Dispatch policy")
struct DispatchPolicyTests {
    static let team = UUID(uuidString: "01a2047b-0000-7000-8000-000000000001")!
    static let otherTeam = UUID(uuidString: "01a2047b-0000-7000-8000-000000000002")!
    static let gib = 1024 * 1024 * 1024

    static func agent(
        _ index: Int, team: UUID = team, labels: Set<String> = ["gpu", "comfyui"], status: AgentStatus = .idle, capacity: Int = 1, running: Int = 0,
        region: String? = nil, community: Bool = false, vramGB: Int = 24, models: Set<String> = []
    ) -> AgentCandidate {
        AgentCandidate(
            id: String(format: "agent-%02d", index), teamId: team, labels: labels, status: status,
            capacity: capacity, running: running, region: region, communityOptIn: community, gpuVRAM: [vramGB * gib], cachedModels: models)
    }

    static let requirement = DispatchRequirement(teamId: team, requiredLabels: ["gpu", "comfyui"], pool: .team)

    @Test(
        "eligibility: one row per rule",
        arguments: [
            (agent(1), requirement, nil),
            (agent(1, labels: ["gpu", "comfyui", "nerfstudio", "gpu-h100"]), requirement, nil),
            (agent(1, labels: ["gpu"]), requirement, Ineligibility.missingLabels(["comfyui"])),
            (agent(1, labels: []), requirement, .missingLabels(["comfyui", "gpu"])),
            (agent(1, team: otherTeam), requirement, .otherTeam),
            (agent(1, team: otherTeam), DispatchRequirement(teamId: team, requiredLabels: [], pool: .community), .notInCommunityPool),
            (agent(1, team: otherTeam, community: true), DispatchRequirement(teamId: team, requiredLabels: [], pool: .community), nil),
            (agent(1), DispatchRequirement(teamId: team, requiredLabels: [], pool: .community), nil),
            (agent(1, status: .syncing), requirement, .status(.syncing)),
            (agent(1, status: .unhealthy), requirement, .status(.unhealthy)),
            (agent(1, status: .busy, capacity: 2, running: 1), requirement, nil),
            (agent(1, status: .busy, capacity: 1, running: 1), requirement, .full(running: 1, slots: 1)),
            (
                agent(1, vramGB: 16), DispatchRequirement(teamId: team, requiredLabels: [], pool: .team, minVRAMGB: 24),
                .notEnoughVRAM(largestGB: 16, requiredGB: 24)
            ),
            (agent(1, vramGB: 24), DispatchRequirement(teamId: team, requiredLabels: [], pool: .team, minVRAMGB: 24), nil),
        ] as [(AgentCandidate, DispatchRequirement, Ineligibility?)])
    func eligibility(agent: AgentCandidate, requirement: DispatchRequirement, expected: Ineligibility?) {
        #expect(DispatchPolicy.ineligibility(of: agent, for: requirement) == expected)
    }

    @Test(
        "region factor: same 1, either unknown 0.5, different 0",
        arguments: [
            ("eu", "eu", 1.0), ("eu", "us", 0.0), (nil, "eu", 0.5), ("eu", nil, 0.5), (nil, nil, 0.5),
        ] as [(String?, String?, Double)])
    func regionFactor(agent: String?, submitter: String?, factor: Double) {
        #expect(DispatchPolicy.regionFactor(agent: agent, submitter: submitter) == factor)
    }

    @Test("choice: region first, then load, then cached models, then the lowest id; ineligible agents never")
    func choice() {
        var requirement = Self.requirement
        requirement.submitterRegion = "eu"
        requirement.requiredModels = ["checkpoints/sdxl.safetensors"]
        let farIdle = Self.agent(1, region: "us")
        let nearBusy = Self.agent(2, status: .busy, capacity: 4, running: 2, region: "eu")
        let nearIdle = Self.agent(3, capacity: 4, region: "eu")
        let nearIdleCached = Self.agent(4, capacity: 4, region: "eu", models: ["checkpoints/sdxl.safetensors"])
        let nearIdleCachedTwin = Self.agent(5, capacity: 4, region: "eu", models: ["checkpoints/sdxl.safetensors"])
        let unknown = Self.agent(6)
        let syncing = Self.agent(0, status: .syncing, region: "eu")
        #expect(DispatchPolicy.choose(from: [farIdle, unknown], for: requirement) == unknown, "0.5 beats 0")
        #expect(DispatchPolicy.choose(from: [farIdle, unknown, nearBusy], for: requirement) == nearBusy, "the region outweighs load")
        #expect(DispatchPolicy.choose(from: [nearBusy, nearIdle], for: requirement) == nearIdle)
        #expect(DispatchPolicy.choose(from: [nearIdle, nearIdleCached], for: requirement) == nearIdleCached)
        #expect(
            DispatchPolicy.choose(from: [nearIdleCachedTwin, nearIdleCached, syncing], for: requirement) == nearIdleCached, "ties go to the lowest id"
        )
        #expect(DispatchPolicy.choose(from: [syncing], for: requirement) == nil)
        #expect(DispatchPolicy.choose(from: [farIdle], for: requirement) == farIdle, "no agent is disqualified on region")
    }

    @Test("a waiting task says why")
    func waiting() {
        #expect(DispatchPolicy.waitingReason(agents: [], for: Self.requirement) == "waiting for eligible agent: none connected")
        let reason = DispatchPolicy.waitingReason(agents: [Self.agent(1, labels: ["gpu"])], for: Self.requirement)
        #expect(reason == "waiting for eligible agent: agent agent-01 lacks label comfyui")
    }
}

@Suite("Queue standing")
struct QueueStandingTests {
    @Test("the estimate: tasks ahead plus half a run, at the median run time, over the slots; unknown without slots or runs")
    func estimate() {
        let now = Date(timeIntervalSince1970: 1_767_225_600)
        let standing = QueueStanding(ahead: 3, recentRunSeconds: [40, 10, 20, 30])
        #expect(standing.position == 4)
        #expect(standing.typicalRunSeconds == 25)
        #expect(standing.estimatedStart(now: now, slots: 5) == now.addingTimeInterval(3.5 * 25 / 5))
        #expect(standing.estimatedStart(now: now, slots: 0) == nil)
        #expect(QueueStanding(ahead: 3, recentRunSeconds: []).estimatedStart(now: now, slots: 2) == nil)
        #expect(QueueStanding(ahead: 0, recentRunSeconds: [7, 1, 9]).typicalRunSeconds == 7)
    }
}
