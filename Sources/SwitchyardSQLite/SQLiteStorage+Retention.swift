import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    public func tasksWithOutputsDue(completedBefore date: Date, limit: Int) async throws -> [(taskId: UUID, teamId: UUID)] {
        try await read(
            """
            SELECT id, team_id FROM tasks
            WHERE task_status = 'completed' AND completed_at < ?
              AND NOT EXISTS (SELECT 1 FROM task_output_expiries e WHERE e.task_id = tasks.id)
            ORDER BY completed_at LIMIT ?
            """,
            [.date(date), .integer(limit)]
        ).map { (try $0.uuid("id"), try $0.uuid("team_id")) }
    }

    public func markOutputsExpired(taskId: UUID, teamId: UUID, at date: Date) async throws {
        try await write { connection in
            _ = try await connection.query(
                "INSERT INTO task_output_expiries (task_id, team_id, expired_at) VALUES (?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
                [.uuid(taskId), .uuid(teamId), .date(date)])
        }
    }

    public func outputsExpiredAt(taskId: UUID, teamId: UUID) async throws -> Date? {
        try await read("SELECT expired_at FROM task_output_expiries WHERE task_id = ? AND team_id = ?", [.uuid(taskId), .uuid(teamId)])
            .first.flatMap { $0.optionalDate("expired_at") }
    }

    public func recordRetentionSweep(_ sweep: RetentionSweep) async throws {
        try await write { connection in
            _ = try await connection.query(
                """
                INSERT INTO retention_sweeps (id, started_at, finished_at, inputs_deleted, outputs_expired, uploads_aborted, error)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .uuid(sweep.id), .date(sweep.startedAt), .date(sweep.finishedAt), .integer(sweep.inputsDeleted), .integer(sweep.outputsExpired),
                    .integer(sweep.uploadsAborted), sweep.error.map(SQLiteData.text) ?? .null,
                ])
        }
    }

    public func retentionSweeps(limit: Int) async throws -> [RetentionSweep] {
        try await read(
            """
            SELECT id, started_at, finished_at, inputs_deleted, outputs_expired, uploads_aborted, error
            FROM retention_sweeps ORDER BY started_at DESC, id DESC LIMIT ?
            """,
            [.integer(limit)]
        ).map { row in
            RetentionSweep(
                id: try row.uuid("id"), startedAt: try row.date("started_at"), finishedAt: try row.date("finished_at"),
                inputsDeleted: try row.int("inputs_deleted"), outputsExpired: try row.int("outputs_expired"),
                uploadsAborted: try row.int("uploads_aborted"), error: row.optionalString("error"))
        }
    }
}
