import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardSQL

extension PostgresStorage {
    /// The assignment in one statement (no BEGIN/COMMIT, no read first): the conditional update and its `queued`
    /// event, as `changeTask(.assign)` writes them (`TaskRecord.assign`). Another replica's assignment or a cancel
    /// makes the update find no row; an event appended concurrently (its writer held the row first) can make the
    /// event's number collide, and the statement then fails as a whole — the dispatcher puts the task back in line.
    public func assignTask(id: UUID, to assignment: AttemptAssignment, at date: Date) async throws -> TaskTransitionOutcome? {
        let event = TaskEventRecord.statusChange(taskId: id, sequence: 0, to: .queued, at: date)
        let labels = StoredJSON.text(assignment.agentLabels)
        let query: PostgresQuery = """
            WITH assigned AS (
                UPDATE tasks SET task_status = 'queued', agent_id = \(assignment.agentId), agent_labels = \(labels),
                    gateway_id = \(assignment.gatewayId), gpu_type = \(assignment.gpuType), attempt_id = \(assignment.attemptId),
                    updated_at = \(date), stopped_at = NULL, gpu_seconds = NULL
                WHERE id = \(id) AND task_status IN ('pending', 'waiting')
                RETURNING \(unescaped: SQLColumns.taskSelection)
            ), logged AS (
                INSERT INTO task_events (\(unescaped: SQLColumns.event))
                SELECT assigned.id, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM task_events WHERE task_id = \(id)),
                    \(event.kind.rawValue), \(event.data.jsonString), \(date)
                FROM assigned
            )
            SELECT * FROM assigned
            """
        guard let row = try PostgresExecutor.rows(try await rows(query)).first else { return nil }
        let task = try TaskRecord(row: row)
        return TaskTransitionOutcome(action: .transition(to: .queued, retryCount: task.retryCount), task: task)
    }
}
