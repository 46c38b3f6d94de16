import Foundation
import SwitchyardCore

/// What the dispatcher keeps coalesced rather than writing at once: progress ticks in the task log, agent rows whose
/// status did not change, agent rows written together.
extension Dispatcher {
    /// Agent rows waiting to be written (the latest of each agent's), who waits for them, and whether a writer runs.
    struct AgentRows {
        var pending: [AgentKey: AgentRecord] = [:]
        var waiters: [AgentKey: [CheckedContinuation<Void, Never>]] = [:]
        var writing = false
    }

    /// Writes the agent's row; returns once it is stored. Rows queued while a write is in flight go together in
    /// the next one, so agents that connect or leave together cost one commit — and wait for it with a shallow
    /// stack, not each with a dispatch pass's frames of its own (a task keeps the stack it grew until it ends).
    func persist(_ record: AgentRecord) async {
        await withCheckedContinuation { queueRow(record, waiter: $0) }
    }

    /// Writes these rows; returns once all are stored.
    func persist(_ records: [AgentRecord]) async {
        guard let last = records.last else { return }
        for record in records.dropLast() { queueRow(record) }
        await persist(last)
    }

    /// Queues the agent's row for the next write, without waiting for it.
    func queueRow(_ record: AgentRecord, waiter: CheckedContinuation<Void, Never>? = nil) {
        markPersisted(record)
        let key = AgentKey(teamId: record.teamId, agentId: record.agentId)
        // A cloud runner has no row: it is part of this server, not an agent of the team's.
        guard record.agentId != Self.cloudAgentId else {
            disconnectedRows[key] = nil
            waiter?.resume()
            sessionEndSettled(key)
            return
        }
        agentRows.pending[key] = record
        if let waiter { agentRows.waiters[key, default: []].append(waiter) }
        guard !agentRows.writing else { return }
        agentRows.writing = true
        writeBegan()
        Task { await self.writeRows() }
    }

    private func writeRows() async {
        while !agentRows.pending.isEmpty {
            let batch = agentRows.pending
            agentRows.pending = [:]
            let waiters = batch.keys.flatMap { agentRows.waiters.removeValue(forKey: $0) ?? [] }
            _ = await write { try await self.storage.upsertAgents(Array(batch.values)) }
            for waiter in waiters { waiter.resume() }
            for (key, record) in batch { rowWritten(key, record) }
        }
        agentRows.writing = false
        writeEnded()
    }

    /// A session's end is final once a row at least as recent as its own is stored: who waits for it hears.
    private func rowWritten(_ key: AgentKey, _ record: AgentRecord) {
        guard let ended = disconnectedRows[key], ended.connectedAt <= record.connectedAt else { return }
        disconnectedRows[key] = nil
        sessionEndSettled(key)
    }

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
