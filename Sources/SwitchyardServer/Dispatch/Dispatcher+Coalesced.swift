import Foundation
import SwitchyardCore

/// What the dispatcher keeps coalesced rather than writing at once: progress ticks in the task log, agent rows whose
/// status did not change.
extension Dispatcher {
    /// Writes each running attempt's latest progress to its task's log, at most once per `progressPersistInterval`.
    func logProgress(_ now: Date) async {
        for (attemptId, state) in progress {
            guard let event = state.unlogged, let lease = machine.leases[attemptId], let since = state.loggedAt ?? lease.ackedAt,
                now.timeIntervalSince(since) >= settings.progressPersistInterval
            else { continue }
            progress[attemptId]?.unlogged = nil
            progress[attemptId]?.loggedAt = now
            let timestamp = event["timestamp"]?.stringValue.flatMap(RFC3339.parse) ?? now
            _ = await write { try await self.storage.appendProgress(taskId: lease.taskId, attemptId: attemptId, data: event, at: timestamp) }
        }
    }

    func markPersisted(_ record: AgentRecord) {
        let key = AgentKey(teamId: record.teamId, agentId: record.agentId)
        guard sessions[key]?.record.connectedAt == record.connectedAt else { return }
        sessions[key]?.persistedStatus = record.status
        sessions[key]?.unpersistedSince = nil
        sessions[key]?.persistedAt = clock.now()
    }

    /// Writes the agent's row now if its status changed, else marks it for `tick` (tasks_completed can lag a second).
    func persistSoon(_ key: AgentKey) async {
        guard let session = sessions[key], let record = currentRecord(key) else { return }
        if record.status != session.persistedStatus {
            await persist(record)
        } else if session.unpersistedSince == nil {
            sessions[key]?.unpersistedSince = clock.now()
        }
    }
}
