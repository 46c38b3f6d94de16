import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    public func tasksWithOutputsDue(completedBefore date: Date, limit: Int) async throws -> [(taskId: UUID, teamId: UUID)] {
        try await rows(
            """
            SELECT id, team_id FROM tasks
            WHERE task_status = 'completed' AND completed_at < \(date)
              AND NOT EXISTS (SELECT 1 FROM task_output_expiries e WHERE e.task_id = tasks.id)
            ORDER BY completed_at LIMIT \(limit)
            """
        ).map { try $0.decode((UUID, UUID).self) }.map { (taskId: $0.0, teamId: $0.1) }
    }

    public func markOutputsExpired(taskId: UUID, teamId: UUID, at date: Date) async throws {
        _ = try await rows(
            "INSERT INTO task_output_expiries (task_id, team_id, expired_at) VALUES (\(taskId), \(teamId), \(date)) ON CONFLICT (task_id) DO NOTHING")
    }

    public func outputsExpiredAt(taskId: UUID, teamId: UUID) async throws -> Date? {
        try await rows("SELECT expired_at FROM task_output_expiries WHERE task_id = \(taskId) AND team_id = \(teamId)").first?.decode(Date.self)
    }

    public func recordRetentionSweep(_ sweep: RetentionSweep) async throws {
        _ = try await rows(
            """
            INSERT INTO retention_sweeps (id, started_at, finished_at, inputs_deleted, outputs_expired, uploads_aborted, error)
            VALUES (\(sweep.id), \(sweep.startedAt), \(sweep.finishedAt), \(sweep.inputsDeleted), \(sweep.outputsExpired),
                    \(sweep.uploadsAborted), \(sweep.error))
            """)
    }

    public func retentionSweeps(limit: Int) async throws -> [RetentionSweep] {
        try await rows(
            """
            SELECT id, started_at, finished_at, inputs_deleted, outputs_expired, uploads_aborted, error
            FROM retention_sweeps ORDER BY started_at DESC, id DESC LIMIT \(limit)
            """
        ).map { row in
            let (id, startedAt, finishedAt, inputs, outputs, uploads, error) = try row.decode((UUID, Date, Date, Int, Int, Int, String?).self)
            return RetentionSweep(
                id: id, startedAt: startedAt, finishedAt: finishedAt, inputsDeleted: inputs, outputsExpired: outputs, uploadsAborted: uploads,
                error: error)
        }
    }
}
