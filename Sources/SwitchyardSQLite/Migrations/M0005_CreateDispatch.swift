import SwitchyardCore

extension SQLiteMigrations {
    /// Attempts on tasks, and the agents the gateway has seen.
    static let m0005CreateDispatch = SchemaMigration(
        version: 5,
        name: "create_dispatch",
        statements: [
            "ALTER TABLE tasks ADD COLUMN attempt_id TEXT",
            "ALTER TABLE tasks ADD COLUMN stopped_at INTEGER",
            "ALTER TABLE tasks ADD COLUMN gpu_seconds REAL",
            "CREATE INDEX tasks_status_created ON tasks (task_status, created_at, id)",
            """
            CREATE TABLE agents (
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                agent_id TEXT NOT NULL,
                credential_id TEXT NOT NULL,
                agent_status TEXT NOT NULL,
                labels TEXT NOT NULL,
                region TEXT,
                community_opt_in INTEGER NOT NULL,
                capacity INTEGER NOT NULL,
                agent_version TEXT NOT NULL,
                tool TEXT NOT NULL,
                tool_version TEXT,
                system_stats TEXT NOT NULL,
                gateway_id TEXT NOT NULL,
                sync_detail TEXT,
                sync_percent REAL,
                connected_at INTEGER NOT NULL,
                last_heartbeat_at INTEGER NOT NULL,
                disconnected_at INTEGER,
                tasks_completed INTEGER NOT NULL,
                PRIMARY KEY (team_id, agent_id)
            ) STRICT
            """,
        ]
    )
}
