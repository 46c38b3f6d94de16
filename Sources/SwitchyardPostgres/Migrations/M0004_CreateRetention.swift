import SwitchyardCore

extension PostgresMigrations {
    /// When tasks' outputs were deleted, and the reaper's log.
    static let m0004CreateRetention = SchemaMigration(
        version: 4,
        name: "create_retention",
        statements: [
            """
            CREATE TABLE task_output_expiries (
                task_id uuid PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
                team_id uuid NOT NULL,
                expired_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX tasks_status_completed ON tasks (task_status, completed_at)",
            """
            CREATE TABLE retention_sweeps (
                id uuid PRIMARY KEY,
                started_at timestamptz NOT NULL,
                finished_at timestamptz NOT NULL,
                inputs_deleted integer NOT NULL,
                outputs_expired integer NOT NULL,
                uploads_aborted integer NOT NULL,
                error text
            )
            """,
        ]
    )
}
