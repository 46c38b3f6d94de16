import Foundation

/// What one replica tells the others about a task it changed, so they act at once rather than at a rescan
/// (DESIGN §8 "Notifications"): PostgreSQL `LISTEN/NOTIFY` between replicas; nothing to tell with SQLite, where
/// one process makes, and sees, every change.
public enum ReplicaNotification: Sendable, Equatable {
    /// What a replica needs to queue a submitted task without reading it back: with the workflow snapshot (cached)
    /// these give its `DispatchRequirement` and its place in the queue.
    public struct Dispatch: Sendable, Equatable {
        public var createdAt: Date
        public var workflowId: UUID
        public var workflowVersion: Int
        public var pool: TargetPool
        public var submitterRegion: String?

        public init(createdAt: Date, workflowId: UUID, workflowVersion: Int, pool: TargetPool, submitterRegion: String?) {
            // Microseconds, as carried (and as both databases keep them).
            self.createdAt = Date(timeIntervalSince1970: (createdAt.timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000)
            self.workflowId = workflowId
            self.workflowVersion = workflowVersion
            self.pool = pool
            self.submitterRegion = submitterRegion
        }

        public init(_ task: TaskRecord) {
            self.init(
                createdAt: task.createdAt, workflowId: task.workflowId, workflowVersion: task.workflowVersion, pool: task.targetPool,
                submitterRegion: task.submitterRegion)
        }
    }

    /// A task that waits for an agent was stored: a replica with an eligible agent may claim it. `dispatch` spares it
    /// reading the task (nil from a replica that does not send it).
    case submitted(taskId: UUID, teamId: UUID, dispatch: Dispatch? = nil)
    /// A caller cancelled the task: the replica whose agent holds it tells the agent to stop.
    case cancelled(taskId: UUID)
    /// The task's event log grew: event streams on every replica read it.
    case changed(taskId: UUID)
    /// An agent reconnected to replica `gatewayId` listing `attempts` whose rows name another replica still alive
    /// (its connection dropped, or it restarted, and came back elsewhere): the replica holding them hands them over.
    case heldElsewhere(teamId: UUID, agentId: String, gatewayId: String, attempts: [UUID])
    /// The team's active models changed (registered, edited, disabled, deleted): agents that sync get the new set.
    case modelsChanged(teamId: UUID)
    /// The team's Comfy Cloud key was set, replaced, refused or deleted: cloud runners read it again.
    case cloudChanged(teamId: UUID)
    /// Notifications may have been missed (the listener reconnected): look at everything again.
    case resync

    /// At most this many attempts in one `heldElsewhere` (a NOTIFY payload holds 8,000 bytes): the rest are settled
    /// by the claim's own deadline.
    public static let maximumHandOver = 150

    /// The compact text form carried in a NOTIFY payload: `s<task>:<team>[:<created µs>:<workflow>:<version>:<pool>[:<region
    /// as hex>]]`, `c<task>`, `e<task>`, `h<team>:<gateway as hex>:<agent as hex>:<attempt>;…`, `m<team>`, `k<team>`, `r` (no commas: entries
    /// are comma-separated).
    public var encoded: String {
        switch self {
        case .submitted(let taskId, let teamId, nil): "s\(taskId.lowercased):\(teamId.lowercased)"
        case .submitted(let taskId, let teamId, let dispatch?):
            "s\(taskId.lowercased):\(teamId.lowercased):\(Int64((dispatch.createdAt.timeIntervalSince1970 * 1_000_000).rounded()))"
                + ":\(dispatch.workflowId.lowercased):\(dispatch.workflowVersion):\(dispatch.pool == .team ? "t" : "c")"
                + (dispatch.submitterRegion.map { ":" + Hex.encode(Array($0.utf8)) } ?? "")
        case .cancelled(let taskId): "c\(taskId.lowercased)"
        case .heldElsewhere(let teamId, let agentId, let gatewayId, let attempts):
            "h\(teamId.lowercased):\(Hex.encode(Array(gatewayId.utf8))):\(Hex.encode(Array(agentId.utf8))):"
                + attempts.prefix(Self.maximumHandOver).map(\.lowercased).joined(separator: ";")
        case .changed(let taskId): "e\(taskId.lowercased)"
        case .modelsChanged(let teamId): "m\(teamId.lowercased)"
        case .cloudChanged(let teamId): "k\(teamId.lowercased)"
        case .resync: "r"
        }
    }

    /// Parses `encoded`; nil for anything else.
    public init?(encoded text: Substring) {
        guard let kind = text.first else { return nil }
        let rest = text.dropFirst()
        switch kind {
        case "s":
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 6 || parts.count == 7, let taskId = UUID(uuidString: String(parts[0])),
                let teamId = UUID(uuidString: String(parts[1]))
            else { return nil }
            guard parts.count > 2 else {
                self = .submitted(taskId: taskId, teamId: teamId)
                return
            }
            guard let micros = Int64(parts[2]), let workflowId = UUID(uuidString: String(parts[3])), let version = Int(parts[4]),
                parts[5] == "t" || parts[5] == "c"
            else { return nil }
            var region: String?
            if parts.count == 7 {
                guard let bytes = Hex.decode(String(parts[6])), let text = String(bytes: bytes, encoding: .utf8) else { return nil }
                region = text
            }
            self = .submitted(
                taskId: taskId, teamId: teamId,
                dispatch: Dispatch(
                    createdAt: Date(timeIntervalSince1970: Double(micros) / 1_000_000), workflowId: workflowId, workflowVersion: version,
                    pool: parts[5] == "t" ? .team : .community, submitterRegion: region))
        case "c":
            guard let taskId = UUID(uuidString: String(rest)) else { return nil }
            self = .cancelled(taskId: taskId)
        case "e":
            guard let taskId = UUID(uuidString: String(rest)) else { return nil }
            self = .changed(taskId: taskId)
        case "m":
            guard let teamId = UUID(uuidString: String(rest)) else { return nil }
            self = .modelsChanged(teamId: teamId)
        case "k":
            guard let teamId = UUID(uuidString: String(rest)) else { return nil }
            self = .cloudChanged(teamId: teamId)
        case "h":
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 4, let teamId = UUID(uuidString: String(parts[0])),
                let gateway = Hex.decode(String(parts[1])).flatMap({ String(bytes: $0, encoding: .utf8) }),
                let agent = Hex.decode(String(parts[2])).flatMap({ String(bytes: $0, encoding: .utf8) })
            else { return nil }
            let attempts = parts[3].split(separator: ";").compactMap { UUID(uuidString: String($0)) }
            self = .heldElsewhere(teamId: teamId, agentId: agent, gatewayId: gateway, attempts: attempts)
        case "r" where rest.isEmpty:
            self = .resync
        default:
            return nil
        }
    }
}

/// Publishes this replica's task changes to the other replicas and delivers theirs.
public protocol ReplicaNotifier: Sendable {
    /// Whether other processes write to this database. When false every change is made (and announced) in this
    /// process, so nothing needs a periodic re-read.
    var isShared: Bool { get }
    /// Queues `notification` for the other replicas; never suspends. Delivery is best effort: a replica that misses
    /// one hears `.resync` when it reconnects, and the dispatcher's slow rescan remains as a safety net.
    func publish(_ notification: ReplicaNotification)
    /// Notifications from other replicas (never this one's own), for as long as the caller iterates.
    func notifications() -> AsyncStream<ReplicaNotification>
}

/// One process owns the database (SQLite): there is nobody to tell and nothing to hear.
public struct SingleProcessNotifier: ReplicaNotifier {
    public init() {}
    public var isShared: Bool { false }
    public func publish(_ notification: ReplicaNotification) {}
    public func notifications() -> AsyncStream<ReplicaNotification> {
        AsyncStream { $0.finish() }
    }
}
