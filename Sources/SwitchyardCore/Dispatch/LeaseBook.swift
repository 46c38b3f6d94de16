import Foundation

/// The dispatch machine's leases, by attempt, with what it asks of them often found without a scan: the leases of
/// one agent (every heartbeat reconciles them; 10,000 agents heartbeat 1,000 times a second) and of one task (a
/// cancel, every submission's "is it known here"). Lists come oldest attempt first (ids are UUIDv7), so transcripts
/// are deterministic.
public struct LeaseBook: Sendable {
    public typealias Lease = DispatchMachine.Lease

    private var all: [UUID: Lease] = [:]
    private var byAgent: [AgentKey: Set<UUID>] = [:]
    private var byTask: [UUID: Set<UUID>] = [:]

    public init() {}

    public var count: Int { all.count }

    public subscript(attemptId: UUID) -> Lease? {
        get { all[attemptId] }
        set {
            let old = all[attemptId]
            all[attemptId] = newValue
            // A lease's agent and task never change: only adding or removing one touches the indexes.
            guard (old == nil) != (newValue == nil) else { return }
            if let old {
                byAgent[old.agent]?.remove(attemptId)
                if byAgent[old.agent]?.isEmpty == true { byAgent[old.agent] = nil }
                byTask[old.taskId]?.remove(attemptId)
                if byTask[old.taskId]?.isEmpty == true { byTask[old.taskId] = nil }
            }
            if let newValue {
                byAgent[newValue.agent, default: []].insert(attemptId)
                byTask[newValue.taskId, default: []].insert(attemptId)
            }
        }
    }

    @discardableResult
    public mutating func removeValue(forKey attemptId: UUID) -> Lease? {
        let lease = all[attemptId]
        self[attemptId] = nil
        return lease
    }

    /// Every lease, oldest attempt first.
    public var sorted: [Lease] { Self.ordered(all.values) }

    /// The leases `agent` holds, oldest attempt first.
    public func held(by agent: AgentKey) -> [Lease] { Self.ordered((byAgent[agent] ?? []).compactMap { all[$0] }) }

    /// The leases of the task's attempts, oldest first.
    public func of(task taskId: UUID) -> [Lease] { Self.ordered((byTask[taskId] ?? []).compactMap { all[$0] }) }

    public func holds(task taskId: UUID) -> Bool { byTask[taskId] != nil }

    private static func ordered<Leases: Sequence<Lease>>(_ leases: Leases) -> [Lease] {
        leases.sorted { WaitingQueue.Key.precedes($0.attemptId, $1.attemptId) }
    }
}
