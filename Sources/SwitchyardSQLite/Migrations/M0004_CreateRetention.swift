import SwitchyardCore

extension SQLiteMigrations {
    /// When tasks' outputs were deleted, and the reaper's log.
    static let m0004CreateRetention = SchemaMigration(
        version: 4,
        name: "create_retention",
        statements: [
            """
            CREATE TABLE task_output_expiries (
                task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
                team_id TEXT NOT NULL,
                expired_at INTEGER NOT NULL
            ) STRICT
            """,
            "CREATE INDEX tasks_status_completed ON tasks (task_status, completed_at)",
            """
            CREATE TABLE retention_sweeps (
                id TEXT PRIMARY KEY,
                started_at INTEGER NOT NULL,
                finished_at INTEGER NOT NULL,
                inputs_deleted INTEGER NOT NULL,
                outputs_expired INTEGER NOT NULL,
                uploads_aborted INTEGER NOT NULL,
                error TEXT
            ) STRICT
            """,
        ]
    )
}
