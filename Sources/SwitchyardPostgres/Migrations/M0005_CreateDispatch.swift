import SwitchyardCore

extension PostgresMigrations {
    /// Attempts on tasks, and the agents the gateway has seen.
    static let m0005CreateDispatch = SchemaMigration(
        version: 5,
        name: "create_dispatch",
        statements: [
            "ALTER TABLE tasks ADD COLUMN attempt_id uuid",
            "ALTER TABLE tasks ADD COLUMN stopped_at timestamptz",
            "ALTER TABLE tasks ADD COLUMN gpu_seconds double precision",
            "CREATE INDEX tasks_status_created ON tasks (task_status, created_at, id)",
            """
            CREATE TABLE agents (
                team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                agent_id text NOT NULL,
                credential_id uuid NOT NULL,
                agent_status text NOT NULL,
                labels text NOT NULL,
                region text,
                community_opt_in boolean NOT NULL,
                capacity integer NOT NULL,
                agent_version text NOT NULL,
                tool text NOT NULL,
                tool_version text,
                system_stats text NOT NULL,
                gateway_id text NOT NULL,
                sync_detail text,
                sync_percent double precision,
                connected_at timestamptz NOT NULL,
                last_heartbeat_at timestamptz NOT NULL,
                disconnected_at timestamptz,
                tasks_completed integer NOT NULL,
                PRIMARY KEY (team_id, agent_id)
            )
            """,
        ]
    )
}
