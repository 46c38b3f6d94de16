import Foundation
import Logging
import SwitchyardCore

/// One info line per task transition (docs/operations.md): the message is always `task transition`, so one grep
/// finds every step of every task, and `task_id=<id>` (lower-case, as the API shows it) finds one task's. Each is
/// also counted in `switchyard_task_transitions_total`.
enum TaskTransitionLog {
    static let message: Logger.Message = "task transition"

    static func record(
        _ logger: Logger, _ metrics: ServerMetrics, taskId: UUID, teamId: UUID?, status: TaskStatus, attemptId: UUID? = nil, agentId: String? = nil,
        reason: String? = nil
    ) {
        metrics.taskTransition(to: status)
        guard logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = ["task_id": "\(taskId.lowercased)", "status": "\(status.rawValue)"]
        if let teamId { metadata["team_id"] = "\(teamId.lowercased)" }
        if let attemptId { metadata["attempt_id"] = "\(attemptId.lowercased)" }
        if let agentId { metadata["agent_id"] = "\(agentId)" }
        if let reason, !reason.isEmpty { metadata["reason"] = "\(reason)" }
        logger.info(message, metadata: metadata)
    }

    static func record(_ logger: Logger, _ metrics: ServerMetrics, _ task: TaskRecord, reason: String? = nil) {
        record(
            logger, metrics, taskId: task.id, teamId: task.teamId, status: task.status, attemptId: task.attemptId, agentId: task.agentId,
            reason: reason)
    }
}
