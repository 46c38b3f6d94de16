import Foundation
import SwitchyardCore
import Synchronization

/// Recently read workflow heads (current version and status) by team and slug or id, so a run needs no
/// database read before its insert. Every workflow change made through this server clears the team's
/// entries at once; entries expire after `ttl`, bounding how long another replica's change goes unseen.
final class WorkflowHeadCache: Sendable {
    enum Key: Hashable {
        case id(UUID, team: UUID)
        case slug(String, team: UUID)

        var team: UUID {
            switch self {
            case .id(_, let team), .slug(_, let team): team
            }
        }
    }

    private struct Entry {
        let head: WorkflowHead
        let loadedAt: Date
    }

    let ttl: TimeInterval
    private let capacity: Int
    private let entries = Mutex<[Key: Entry]>([:])

    init(ttl: TimeInterval, capacity: Int = 10_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    /// The cached head, or the one `load` reads (cached when found).
    func head(_ key: Key, now: Date, load: () async throws -> WorkflowHead?) async throws -> WorkflowHead? {
        if ttl > 0, let entry = entries.withLock({ $0[key] }), now.timeIntervalSince(entry.loadedAt) < ttl {
            return entry.head
        }
        guard let head = try await load() else { return nil }
        if ttl > 0 {
            entries.withLock { entries in
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
                entries[key] = Entry(head: head, loadedAt: now)
            }
        }
        return head
    }

    /// Forgets every head of `teamId` (after an import, update, restore or delete).
    func invalidate(teamId: UUID) {
        entries.withLock { entries in
            entries = entries.filter { $0.key.team != teamId }
        }
    }
}
