import Foundation
import SwitchyardCore
import SwitchyardWire

/// What replicas sharing a database tell each other (`ReplicaNotifier`): submissions to claim, cancels to carry
/// to the agent, log changes for event streams.
extension Dispatcher {
    /// Another replica changed a task: claim a submission when an agent here may take it, stop a cancelled
    /// attempt held here, wake the task's event streams.
    func heard(_ notification: ReplicaNotification) async {
        switch notification {
        case .submitted(let taskId, let teamId):
            // With no agent here the task is read back when one connects.
            guard hasAgents, queue[taskId] == nil, leases.values.allSatisfy({ $0.taskId != taskId }) else { return }
            guard let found = await write({ try await self.storage.task(id: taskId, teamId: teamId) }),
                found.status == .pending || found.status == .waiting
            else { return }
            await enqueue(found)
        case .cancelled(let taskId):
            stop(taskId: taskId)
        case .changed(let taskId):
            hub.wake(taskId)
        case .resync:
            hub.wakeAll()
            await rescan()
        }
    }

    /// A caller cancelled the task (already written): forget it if it waited, or tell its agent to stop — here, and
    /// on the replica whose agent holds it.
    func cancelled(taskId: UUID) {
        storage.notifier.publish(.cancelled(taskId: taskId))
        stop(taskId: taskId)
    }

    func stop(taskId: UUID) {
        queue[taskId] = nil
        definitions[taskId] = nil
        requirements[taskId] = nil
        for (attemptId, lease) in leases where lease.taskId == taskId {
            leases[attemptId]?.cancelling = true
            leases[attemptId]?.ackDeadline = nil
            leases[attemptId]?.runDeadline = clock.now().addingTimeInterval(max(settings.ackTimeout, 30))
            sessions[lease.agent]?.connection.send(.cancel(AttemptRef(attemptId: attemptId.lowercased)))
        }
    }

    /// Picks up dispatchable tasks this replica has not seen (accepted by another replica, or before a restart).
    func rescan() async {
        guard let tasks = await write({ try await self.storage.dispatchableTasks(limit: 1000) }) else { return }
        var added = false
        for task in tasks where queue[task.id] == nil && task.dispatchTarget == .agent {
            queue[task.id] = task
            if task.status == .pending { unmarked.insert(task.id) }
            added = true
        }
        if added || !queue.isEmpty { await pass() }
    }
}
