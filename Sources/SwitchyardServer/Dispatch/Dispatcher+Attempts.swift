import Foundation
import SwitchyardCore
import SwitchyardWire

/// Attempts: adopting those found running after a restart, starting one, and which agent holds which.
extension Dispatcher {
    /// Attempts that were running when the server stopped are kept for `reconnectGrace`: an agent that
    /// reconnects and lists them in `held_attempts` keeps them, the rest go back to waiting (a platform fault:
    /// no retry used).
    func recoverActiveAttempts() async {
        guard !started else { return }
        started = true
        do {
            let deadline = clock.now().addingTimeInterval(settings.reconnectGrace)
            for task in try await storage.activeTasks() {
                guard let attemptId = task.attemptId, let agentId = task.agentId, leases[attemptId] == nil else { continue }
                leases[attemptId] = Lease(
                    attemptId: attemptId, taskId: task.id, teamId: task.teamId, agent: AgentKey(teamId: task.teamId, agentId: agentId),
                    ackDeadline: nil, runDeadline: nil, timeout: TimeInterval(task.taskTimeout), ackedAt: task.startedAt, orphanDeadline: deadline)
            }
        } catch {
            logger.error("could not read the attempts in flight", metadata: ["error": "\(error)"])
        }
    }

    /// The attempt runs (`queued → running`): `task_timeout` counts from here (api.md §2.1; 0 means no limit).
    func started(_ lease: Lease, at now: Date, connection: AgentConnection) async {
        let outcome = await write {
            try await self.storage.applyAttemptEvent(
                taskId: lease.taskId, attemptId: lease.attemptId, event: .acknowledged, result: AttemptResult(), message: nil, at: now)
        }
        guard outcome != nil else {
            refuse(lease.attemptId.lowercased, connection, "the attempt is no longer the task's")
            return
        }
        leases[lease.attemptId]?.ackedAt = now
        leases[lease.attemptId]?.ackDeadline = nil
        leases[lease.attemptId]?.runDeadline = lease.timeout > 0 ? now.addingTimeInterval(lease.timeout) : nil
        hub.signal(lease.taskId)
    }

    /// The lease of `attemptId` when this connection's agent holds it; otherwise refuses the message.
    func lease(_ rawId: String, of connection: AgentConnection) -> Lease? {
        guard let attemptId = UUID(text: rawId), let lease = leases[attemptId], lease.agent == connection.key, !lease.cancelling else {
            refuse(rawId, connection, "this agent does not hold attempt \(rawId) (it ended, timed out, was cancelled or went to another agent)")
            return nil
        }
        return lease
    }

    func refuse(_ attemptId: String, _ connection: AgentConnection, _ reason: String) {
        connection.send(.refused(.init(attemptId: attemptId, reason: reason)))
    }

    /// The tasks an agent connected here holds, oldest attempt first.
    func runningTasks(teamId: UUID, agentId: String) -> [UUID] {
        let key = AgentKey(teamId: teamId, agentId: agentId)
        return leases.values.filter { $0.agent == key }.sorted { $0.attemptId.lowercased < $1.attemptId.lowercased }.map(\.taskId)
    }

    func release(_ key: AgentKey) {
        guard var session = sessions[key] else { return }
        session.candidate.running = max(0, session.candidate.running - 1)
        sessions[key] = session
    }
}
