import Foundation

/// What one replica tells the others about a task it changed, so they act at once rather than at a rescan
/// (DESIGN §8 "Notifications"): PostgreSQL `LISTEN/NOTIFY` between replicas; nothing to tell with SQLite, where
/// one process makes, and sees, every change.
public enum ReplicaNotification: Sendable, Equatable {
    /// A task that waits for an agent was stored: a replica with an eligible agent may claim it.
    case submitted(taskId: UUID, teamId: UUID)
    /// A caller cancelled the task: the replica whose agent holds it tells the agent to stop.
    case cancelled(taskId: UUID)
    /// The task's event log grew: event streams on every replica read it.
    case changed(taskId: UUID)
    /// Notifications may have been missed (the listener reconnected): look at everything again.
    case resync

    /// The compact text form carried in a NOTIFY payload: `s<task>:<team>`, `c<task>`, `e<task>`, `r`.
    public var encoded: String {
        switch self {
        case .submitted(let taskId, let teamId): "s\(taskId.lowercased):\(teamId.lowercased)"
        case .cancelled(let taskId): "c\(taskId.lowercased)"
        case .changed(let taskId): "e\(taskId.lowercased)"
        case .resync: "r"
        }
    }

    /// Parses `encoded`; nil for anything else.
    public init?(encoded text: Substring) {
        guard let kind = text.first else { return nil }
        let rest = text.dropFirst()
        switch kind {
        case "s":
            let parts = rest.split(separator: ":")
            guard parts.count == 2, let taskId = UUID(uuidString: String(parts[0])), let teamId = UUID(uuidString: String(parts[1])) else {
                return nil
            }
            self = .submitted(taskId: taskId, teamId: teamId)
        case "c":
            guard let taskId = UUID(uuidString: String(rest)) else { return nil }
            self = .cancelled(taskId: taskId)
        case "e":
            guard let taskId = UUID(uuidString: String(rest)) else { return nil }
            self = .changed(taskId: taskId)
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
