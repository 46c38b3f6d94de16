import Foundation
import SwitchyardCore
import Testing

/// The team's cloud runner (Comfy Cloud) in dispatch: `comfy_cloud` tasks go only to it; agent-targeted tasks only
/// to agents, unless the team has `cloud_fallback` and no eligible agent is connected, or the task waited long enough.
@Suite("Cloud dispatch and fallback")
struct CloudDispatchTests {
    static let team = DispatchMachineTests.team
    static let otherTeam = UUID(uuidString: "01a2047b-0000-7000-8000-0000000000bb")!

    static func agent(_ id: String, team: UUID = team, running: Int = 0, capacity: Int = 1, labels: Set<String> = ["gpu"]) -> AgentCandidate {
        AgentCandidate(id: id, teamId: team, labels: labels, status: .idle, capacity: capacity, running: running, region: nil, communityOptIn: true)
    }

    static func runner(team: UUID = team, running: Int = 0, capacity: Int = 2) -> AgentCandidate {
        AgentCandidate(
            id: "comfy-cloud", teamId: team, labels: [], status: .idle, capacity: capacity, running: running, region: nil, communityOptIn: false,
            cloud: true)
    }

    static func requirement(_ target: DispatchTarget = .agent, labels: Set<String> = ["gpu"], fallback: TimeInterval? = nil) -> DispatchRequirement {
        DispatchRequirement(teamId: team, requiredLabels: labels, pool: .community, target: target, cloudFallbackWait: fallback)
    }

    static func index(_ candidates: AgentCandidate...) -> AgentIndex {
        var index = AgentIndex()
        for candidate in candidates { index.update(AgentKey(teamId: candidate.teamId, agentId: candidate.id), candidate) }
        return index
    }

    @Test("a comfy_cloud task goes only to its team's runner, whatever its labels; a runner takes no agent task")
    func targets() {
        let cloudTask = Self.requirement(.comfyCloud, labels: ["gpu", "a100"])
        #expect(Self.index(Self.agent("gpu-1"), Self.runner()).choose(for: cloudTask)?.id == "comfy-cloud")
        #expect(Self.index(Self.agent("gpu-1"), Self.runner(team: Self.otherTeam)).choose(for: cloudTask) == nil)
        #expect(Self.index(Self.runner(running: 2)).choose(for: cloudTask) == nil)
        #expect(Self.index(Self.runner()).choose(for: Self.requirement()) == nil)
        #expect(DispatchPolicy.ineligibility(of: Self.runner(), for: Self.requirement()) == .otherTarget(cloud: true))
        #expect(DispatchPolicy.ineligibility(of: Self.agent("gpu-1"), for: cloudTask) == .otherTarget(cloud: false))
        #expect(DispatchPolicy.ineligibility(of: Self.runner(running: 2), for: cloudTask) == .full(running: 2, slots: 2))
    }

    @Test("fallback: at once with no eligible agent connected; after the wait when eligible agents are full; never to another team's runner")
    func fallback() {
        let task = Self.requirement(fallback: 30)
        // No agent with the task's labels is connected (one without them is): the runner at once.
        #expect(Self.index(Self.agent("cpu", labels: ["cpu"]), Self.runner()).choose(for: task)?.id == "comfy-cloud")
        // An eligible agent with room wins.
        #expect(Self.index(Self.agent("gpu-1"), Self.runner()).choose(for: task)?.id == "gpu-1")
        // It is full: the task waits until it has waited 30 s.
        let busy = Self.index(Self.agent("gpu-1", running: 1), Self.runner())
        #expect(busy.choose(for: task, waited: 29.9) == nil)
        #expect(busy.choose(for: task, waited: 30)?.id == "comfy-cloud")
        // Without cloud_fallback, never; another team's runner, never; a full runner, not now.
        #expect(Self.index(Self.runner()).choose(for: Self.requirement()) == nil)
        #expect(Self.index(Self.runner(team: Self.otherTeam)).choose(for: task) == nil)
        #expect(Self.index(Self.runner(running: 2)).choose(for: task) == nil)
    }

    @Test("waiting reasons name the cloud runner's load, a missing key, and when a task falls back")
    func reasons() {
        #expect(
            DispatchPolicy.waitingReason(agents: [Self.runner(running: 2)], for: Self.requirement(.comfyCloud))
                == "waiting for Comfy Cloud: 2 of the team's 2 concurrent jobs are running")
        #expect(DispatchPolicy.waitingReason(agents: [], for: Self.requirement(.comfyCloud)).contains("no Comfy Cloud key"))
        #expect(
            DispatchPolicy.waitingReason(agents: [Self.agent("gpu-1", running: 1), Self.runner(running: 2)], for: Self.requirement(fallback: 30))
                == "waiting for eligible agent: agent gpu-1 holds 1 of 1 attempts; it goes to Comfy Cloud after 30 s (cloud_fallback)")
    }

    @Test("transcript: a task that waits for a busy agent goes to the cloud runner at the first tick after its fallback wait")
    func transcript() {
        var transcript = DispatchMachineTests.Transcript()
        transcript.connect("gpu-1")
        let runner = DispatchMachine.Agent(candidate: Self.runner(capacity: 1), credentialId: UUID(), reportsStart: false, lastSeen: transcript.now)
        #expect(transcript.send(.connected(DispatchMachineTests.key("comfy-cloud"), runner, holding: [])) == ["rescan"])
        transcript.run(1, on: "gpu-1", as: 1)
        let waiting = transcript.send(
            .submitted(
                DispatchMachineTests.task(2), createdAt: transcript.now, requirement: Self.requirement(fallback: 30), pending: true))
        #expect(
            waiting == ["T2 waits: waiting for eligible agent: agent gpu-1 holds 1 of 1 attempts; it goes to Comfy Cloud after 30 s (cloud_fallback)"]
        )
        transcript.advance(29)
        #expect(transcript.send(.tick).isEmpty)
        transcript.advance(1)
        #expect(transcript.send(.tick) == ["assign T2 to comfy-cloud as A2"])
        // A comfy_cloud task now waits for the runner's one slot.
        let cloudTask = transcript.send(
            .submitted(DispatchMachineTests.task(3), createdAt: transcript.now, requirement: Self.requirement(.comfyCloud), pending: true))
        #expect(cloudTask == ["T3 waits: waiting for Comfy Cloud: 1 of the team's 1 concurrent jobs are running"])
    }
}
