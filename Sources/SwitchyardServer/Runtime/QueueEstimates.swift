import Foundation
import SwitchyardCore

/// Honesty about waiting (Switchyard's addition, docs/decisions.md): where a waiting task stands, when it should
/// start, and how long a team over its backlog limit should wait before submitting again.
struct QueueEstimates: Sendable {
    let storage: any SwitchyardStorage

    /// A waiting task's 1-based position and estimated start; nil for a task that does not wait.
    func standing(of task: TaskRecord, now: Date) async throws -> (position: Int, estimatedStart: Date?)? {
        guard task.status == .pending || task.status == .waiting, task.dispatchTarget == .agent else { return nil }
        let standing = try await storage.queueStanding(of: task)
        return (standing.position, standing.estimatedStart(now: now, slots: try await slots(for: task)))
    }

    /// Seconds until the team's backlog should have room for one more task: one typical run of the workflow spread
    /// over the eligible agents' slots, between 1 s and 5 min (10 s when nothing is known yet).
    func retryAfter(for task: TaskRecord) async -> Int {
        guard let standing = try? await storage.queueStanding(of: task), let typical = standing.typicalRunSeconds,
            let slots = try? await slots(for: task), slots > 0
        else { return 10 }
        return Int(min(max((typical / Double(slots)).rounded(.up), 1), 300))
    }

    /// Task slots of the team's connected, healthy agents whose labels include every label the task requires (all of
    /// them, a page of 1,000 at a time, up to 100,000).
    func slots(for task: TaskRecord) async throws -> Int {
        let required = Set(task.requiredLabels)
        var slots = 0
        for page in 1...100 {
            let agents = try await storage.agents(
                teamId: task.teamId, includeDisconnected: false, page: PageRequest(currentPage: page, perPage: 1000))
            slots += agents.items.filter { $0.status != .unhealthy && required.isSubset(of: Set($0.labels)) }.reduce(0) { $0 + $1.capacity }
            if agents.items.count < 1000 { break }
        }
        return slots
    }
}
