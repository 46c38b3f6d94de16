import Foundation
import SwitchyardCore

extension Dispatcher {
    /// Fails the tasks whose `start_deadline` passed before any attempt of theirs started (every replica looks, once a
    /// second; each change is conditional, so a task expires once). A task that ran once and waits again after a
    /// fault is past its start and is not expired.
    func expireOverdue(_ now: Date) async {
        guard let overdue = await write({ try await self.storage.tasksPastStartDeadline(at: now, limit: 500) }) else { return }
        for taskId in overdue {
            let outcome = await write {
                try await self.storage.changeTask(
                    id: taskId, .expire(message: "expired: no agent started the task before its start_deadline"), at: now)
            }
            guard let task = outcome?.task else { continue }
            await stop(taskId: task.id)
            hub.ended(task.id)
            TaskTransitionLog.record(logger, metrics, task, reason: "no agent started the task before its start_deadline")
        }
    }
}
