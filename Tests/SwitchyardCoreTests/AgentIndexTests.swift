import Foundation
import SwitchyardCore
import Testing

@Suite("Agent index")
struct AgentIndexTests {
    /// A small deterministic generator (SplitMix64), so a failure replays.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let teams = [UUID(), UUID()]
    static let labelSets: [Set<String>] = [["gpu"], ["gpu", "comfyui"], ["gpu", "comfyui", "h100"], []]
    static let regions: [String?] = [nil, "eu", "us"]
    static let statuses: [AgentStatus] = [.idle, .idle, .idle, .busy, .syncing, .unhealthy]
    static let gib = 1024 * 1024 * 1024

    static func candidate(_ id: Int, _ random: inout Random) -> AgentCandidate {
        let capacity = Int.random(in: 1...3, using: &random)
        return AgentCandidate(
            // An id belongs to one team: agents of two teams with one id rank equal, and the policy keeps either.
            id: String(format: "agent-%03d", id), teamId: teams[id % 2], labels: labelSets.randomElement(using: &random)!,
            status: statuses.randomElement(using: &random)!, capacity: capacity, running: Int.random(in: 0...capacity + 1, using: &random),
            region: regions.randomElement(using: &random)!, communityOptIn: Bool.random(using: &random),
            gpuVRAM: [[8, 24, 80].randomElement(using: &random)! * gib], cachedModels: Bool.random(using: &random) ? ["checkpoints/a"] : [],
            prefetch: Int.random(in: 0...1, using: &random))
    }

    static func requirement(_ random: inout Random) -> DispatchRequirement {
        DispatchRequirement(
            teamId: teams.randomElement(using: &random)!, requiredLabels: labelSets.randomElement(using: &random)!,
            pool: Bool.random(using: &random) ? .team : .community, minVRAMGB: [0, 16, 40].randomElement(using: &random)!,
            submitterRegion: regions.randomElement(using: &random)!,
            requiredModels: Int.random(in: 0...3, using: &random) == 0 ? ["checkpoints/a"] : [])
    }

    @Test("after any sequence of connects, changes and disconnects it chooses exactly what ranking every agent would", arguments: 1...20)
    func agreesWithThePolicy(seed: UInt64) {
        var random = Random(state: seed)
        var index = AgentIndex()
        var agents: [AgentKey: AgentCandidate] = [:]
        for step in 0..<400 {
            let id = Int.random(in: 0..<60, using: &random)
            var candidate = Self.candidate(id, &random)
            let key = AgentKey(teamId: candidate.teamId, agentId: candidate.id)
            switch Int.random(in: 0..<4, using: &random) {
            case 0 where agents[key] != nil:
                index.remove(key)
                agents[key] = nil
            case 1 where agents[key] != nil:
                // Only what changes while connected: the count of attempts and the status.
                candidate = agents[key]!
                candidate.running = max(0, candidate.running + (Bool.random(using: &random) ? 1 : -1))
                candidate.status = Self.statuses.randomElement(using: &random)!
                index.update(key, candidate)
                agents[key] = candidate
            default:
                index.update(key, candidate)
                agents[key] = candidate
            }
            for _ in 0..<3 {
                let requirement = Self.requirement(&random)
                let expected = DispatchPolicy.choose(from: agents.values, for: requirement)
                #expect(index.choose(for: requirement) == expected, "seed \(seed), step \(step)")
            }
            let roomy = agents.values.filter { $0.status != .unhealthy && $0.running < $0.capacity + $0.prefetch }
            #expect(index.hasRoom == !roomy.isEmpty)
            #expect(index.roomCount == roomy.count)
        }
    }
}

@Suite("Lease book")
struct LeaseBookTests {
    @Test("leases are found by agent and by task, oldest attempt first; changing a lease keeps them, removing it drops them")
    func indexes() {
        let team = UUID()
        let (gpu1, gpu2) = (AgentKey(teamId: team, agentId: "gpu-1"), AgentKey(teamId: team, agentId: "gpu-2"))
        let (task1, task2) = (UUID(), UUID())
        let attempts = (0..<3).map { UUIDv7.make(at: Date(timeIntervalSince1970: 1_800_000_000 + Double($0))) }
        var book = LeaseBook()
        book[attempts[2]] = .init(attemptId: attempts[2], taskId: task1, teamId: team, agent: gpu1, timeout: 60)
        book[attempts[0]] = .init(attemptId: attempts[0], taskId: task1, teamId: team, agent: gpu1, timeout: 60)
        book[attempts[1]] = .init(attemptId: attempts[1], taskId: task2, teamId: team, agent: gpu2, timeout: 60)
        #expect(book.held(by: gpu1).map(\.attemptId) == [attempts[0], attempts[2]])
        #expect(book.of(task: task1).map(\.attemptId) == [attempts[0], attempts[2]])
        #expect(book.sorted.map(\.attemptId) == attempts)
        book[attempts[0]]?.cancelling = true
        #expect(book.held(by: gpu1).first?.cancelling == true && book.count == 3)
        book.removeValue(forKey: attempts[1])
        #expect(book.held(by: gpu2).isEmpty && !book.holds(task: task2) && book.holds(task: task1))
        book[attempts[0]] = nil
        book[attempts[2]] = nil
        #expect(book.held(by: gpu1).isEmpty && !book.holds(task: task1) && book.count == 0)
    }
}
