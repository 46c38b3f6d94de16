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
    static let needsSDXL = DispatchRequirement(
        teamId: team, requiredLabels: ["gpu", "comfyui"], pool: .team, requiredModels: ["checkpoints/sdxl.safetensors"])

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
            (agent(1, status: .syncing), requirement, nil),
            (agent(1, status: .syncing), needsSDXL, .status(.syncing)),
            (agent(1, status: .syncing, models: ["checkpoints/sdxl.safetensors", "loras/x.safetensors"]), needsSDXL, nil),
            (agent(1), needsSDXL, nil),
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

@Suite("Waiting queue")
struct WaitingQueueTests {
    static let team = UUID(uuidString: "01a2047b-0000-7000-8000-000000000001")!
    static let start = Date(timeIntervalSince1970: 1_767_225_600)
    static let gpu = DispatchRequirement(teamId: team, requiredLabels: ["gpu"], pool: .team)
    static let h100 = DispatchRequirement(teamId: team, requiredLabels: ["gpu", "h100"], pool: .team)

    static func id(_ n: Int) -> UUID { UUID(uuidString: String(format: "01a2047b-0000-7000-8000-%012d", n))! }

    @Test("the next task is the oldest lane head some agent can take; taken, cancelled and released tasks keep the order")
    func order() {
        var queue = WaitingQueue()
        for n in 0..<6 {
            queue.insert(
                Self.id(n), createdAt: Self.start.addingTimeInterval(Double(n)), requirement: n.isMultiple(of: 2) ? Self.h100 : Self.gpu,
                pending: n == 5)
        }
        #expect(queue.count == 6 && queue.pending == [Self.id(5)])
        #expect(queue.next { _, _ in true } == Self.id(0))
        #expect(queue.next { requirement, _ in requirement == Self.gpu } == Self.id(1))
        #expect(queue.next { _, _ in false } == nil)
        #expect(queue.hasWork { $0 == Self.gpu } && !queue.hasWork { _ in false })
        queue.remove(Self.id(1))  // offered
        queue.remove(Self.id(3))  // cancelled while not at the head
        #expect(queue.next { requirement, _ in requirement == Self.gpu } == Self.id(5))
        // Released back to waiting: its place is its submission time, ahead of younger tasks.
        queue.insert(Self.id(1), createdAt: Self.start.addingTimeInterval(1), requirement: Self.gpu, pending: false)
        #expect(queue.next { requirement, _ in requirement == Self.gpu } == Self.id(1))
        // Read back by a rescan, older than all: it goes first.
        queue.insert(Self.id(9), createdAt: Self.start.addingTimeInterval(-1), requirement: Self.gpu, pending: true)
        #expect(queue.next { _, _ in true } == Self.id(9))
        queue.markedWaiting(Self.id(9))
        #expect(queue.pending == [Self.id(5)] && queue[Self.id(9)]?.pending == false)
        #expect(queue.requirements == [Self.gpu: 3, Self.h100: 3])
    }

    @Test("a long lane drains in order; dead keys are dropped, so memory follows the live tasks")
    func drain() {
        var queue = WaitingQueue()
        for n in 0..<10_000 { queue.insert(Self.id(n), createdAt: Self.start.addingTimeInterval(Double(n)), requirement: Self.gpu, pending: false) }
        // Cancel every other task from the back, then take the rest from the front.
        for n in stride(from: 9_999, to: 0, by: -2) { queue.remove(Self.id(n)) }
        var taken: [Int] = []
        while let next = queue.next(where: { _, _ in true }) {
            taken.append(Int(next.uuidString.suffix(12))!)
            queue.remove(next)
        }
        #expect(taken == Array(stride(from: 0, to: 10_000, by: 2)))
        #expect(queue.isEmpty && queue.requirements.isEmpty)
    }
}
