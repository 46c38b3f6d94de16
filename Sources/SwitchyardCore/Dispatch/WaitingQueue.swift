import Foundation

/// The tasks waiting for an agent, as a dispatcher holds them: ids and what they ask of an agent, not their records
/// (issue 14, item 4). Tasks are kept in lanes, one per distinct requirement, each oldest first; the next task for
/// an agent with room is the oldest lane head that some agent can take, so a freed slot costs one look per lane,
/// never a sort of the backlog. A value type: every change is a plain mutation, tested without an actor.
public struct WaitingQueue: Sendable {
    public struct Entry: Sendable, Equatable {
        public let createdAt: Date
        public let requirement: DispatchRequirement
        /// Still `pending` in the database: to be marked `waiting` (with the reason) unless an agent takes it first.
        public var pending: Bool
    }

    /// One requirement's tasks in submission order. Taken and removed tasks stay in `order` until the head passes
    /// them or a compaction drops them (`entries` says which are live).
    struct Lane: Sendable {
        var order: [Key] = []
        var head = 0
        var live = 0
    }

    struct Key: Sendable, Comparable {
        let createdAt: Date
        let id: UUID

        static func < (left: Key, right: Key) -> Bool {
            left.createdAt != right.createdAt ? left.createdAt < right.createdAt : Self.precedes(left.id, right.id)
        }

        /// `left` sorts before `right` in the order of their lowercase text (ids compared as bytes).
        static func precedes(_ left: UUID, _ right: UUID) -> Bool {
            withUnsafeBytes(of: left.uuid) { l in withUnsafeBytes(of: right.uuid) { r in l.lexicographicallyPrecedes(r) } }
        }
    }

    public private(set) var entries: [UUID: Entry] = [:]
    private var lanes: [DispatchRequirement: Lane] = [:]
    /// Ids still `pending`, so marking them costs nothing when there are none.
    public private(set) var pending: Set<UUID> = []

    public init() {}

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public func contains(_ id: UUID) -> Bool { entries[id] != nil }
    public subscript(id: UUID) -> Entry? { entries[id] }

    /// Adds a waiting task (again: a task released back to waiting keeps its place by submission time). A task
    /// already held keeps its entry.
    public mutating func insert(_ id: UUID, createdAt: Date, requirement: DispatchRequirement, pending isPending: Bool) {
        guard entries[id] == nil else { return }
        // Entries share their lane's requirement (its label sets are stored once, not once per task).
        let shared = lanes.index(forKey: requirement).map { lanes[$0].key } ?? requirement
        entries[id] = Entry(createdAt: createdAt, requirement: shared, pending: isPending)
        if isPending { pending.insert(id) }
        let key = Key(createdAt: createdAt, id: id)
        var lane = lanes.removeValue(forKey: shared) ?? Lane()
        if let last = lane.order.last, key < last {
            // Older than the newest (read back by a rescan, or released): binary insertion after the head.
            var low = lane.head
            var high = lane.order.count
            while low < high {
                let middle = (low + high) / 2
                if lane.order[middle] < key { low = middle + 1 } else { high = middle }
            }
            lane.order.insert(key, at: low)
        } else {
            lane.order.append(key)
        }
        lane.live += 1
        lanes[shared] = lane
    }

    /// Takes a task out (offered, cancelled, expired, ended elsewhere); its entry, or nil when it was not here.
    @discardableResult
    public mutating func remove(_ id: UUID) -> Entry? {
        guard let entry = entries.removeValue(forKey: id) else { return nil }
        pending.remove(id)
        guard var lane = lanes.removeValue(forKey: entry.requirement) else { return entry }
        lane.live -= 1
        if lane.live > 0 {
            // Drop what was taken from the front; compact when dead keys outnumber live ones.
            advance(&lane, requirement: entry.requirement)
            if lane.order.count - lane.head > 2 * lane.live + 64 { compact(&lane, requirement: entry.requirement) }
            lanes[entry.requirement] = lane
        }
        return entry
    }

    /// It was marked `waiting` in the database.
    public mutating func markedWaiting(_ id: UUID) {
        guard pending.remove(id) != nil else { return }
        entries[id]?.pending = false
    }

    /// The oldest task, over every lane, whose requirement `canTake` accepts (some agent with room can run it), given
    /// when the lane's oldest task was submitted. `canTake` is asked once per lane.
    public func next(where canTake: (DispatchRequirement, Date) -> Bool) -> UUID? {
        var best: Key?
        for (requirement, lane) in lanes {
            guard let head = firstLive(lane, requirement: requirement), best.map({ head < $0 }) ?? true, canTake(requirement, head.createdAt)
            else { continue }
            best = head
        }
        return best?.id
    }

    /// Whether a task that `canTake` accepts waits (a new submission must not overtake it).
    public func hasWork(where canTake: (DispatchRequirement) -> Bool) -> Bool {
        lanes.contains { requirement, lane in firstLive(lane, requirement: requirement) != nil && canTake(requirement) }
    }

    /// The distinct requirements waiting, with how many tasks each (for reasons and metrics).
    public var requirements: [DispatchRequirement: Int] { lanes.mapValues(\.live) }

    private func isLive(_ key: Key, in requirement: DispatchRequirement) -> Bool {
        guard let entry = entries[key.id] else { return false }
        return entry.requirement == requirement && entry.createdAt == key.createdAt
    }

    private func firstLive(_ lane: Lane, requirement: DispatchRequirement) -> Key? {
        var index = lane.head
        while index < lane.order.count {
            if isLive(lane.order[index], in: requirement) { return lane.order[index] }
            index += 1
        }
        return nil
    }

    private func advance(_ lane: inout Lane, requirement: DispatchRequirement) {
        while lane.head < lane.order.count, !isLive(lane.order[lane.head], in: requirement) { lane.head += 1 }
        if lane.head > 1024, lane.head * 2 > lane.order.count {
            lane.order.removeFirst(lane.head)
            lane.head = 0
        }
    }

    /// Keeps each live task once, in order.
    private func compact(_ lane: inout Lane, requirement: DispatchRequirement) {
        var seen = Set<UUID>()
        lane.order = lane.order[lane.head...].filter { isLive($0, in: requirement) && seen.insert($0.id).inserted }
        lane.head = 0
    }
}
