import Foundation
import SwitchyardCore
import Synchronization

/// Parsed workflow definitions by (workflow id, version). Snapshots never change once written, so an entry
/// can never be stale, on one replica or many; a run only asks the database for the workflow's current
/// version and status. Bounded: when full, the cache starts over.
final class SnapshotCache: Sendable {
    private struct Key: Hashable {
        let workflowId: UUID
        let version: Int
    }

    private let entries = Mutex<[Key: WorkflowDefinition]>([:])
    private let capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    /// The definition of `version`, loading it with `load` on a miss; nil when `load` finds nothing.
    func definition(
        workflowId: UUID, version: Int, load: () async throws -> WorkflowDefinition?
    ) async throws -> WorkflowDefinition? {
        let key = Key(workflowId: workflowId, version: version)
        if let cached = entries.withLock({ $0[key] }) { return cached }
        guard let loaded = try await load() else { return nil }
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = loaded
        }
        return loaded
    }
}
