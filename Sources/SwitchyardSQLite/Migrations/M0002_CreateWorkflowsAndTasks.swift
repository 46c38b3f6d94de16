import SwitchyardCore

extension SQLiteMigrations {
    /// Workflows with their snapshots, tasks with their event logs, and idempotency keys. JSON documents are
    /// TEXT written by the server's canonical serializer.
    static let m0002CreateWorkflowsAndTasks = SchemaMigration(
        version: 2,
        name: "create_workflows_and_tasks",
        statements: [
            """
            CREATE TABLE workflows (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                slug TEXT NOT NULL,
                workflow_status TEXT NOT NULL CHECK (workflow_status IN ('active', 'disabled')),
                version INTEGER NOT NULL CHECK (version >= 1),
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                UNIQUE (team_id, slug)
            ) STRICT
            """,
            "CREATE INDEX workflows_team_created ON workflows (team_id, created_at DESC, id DESC)",
            """
            CREATE TABLE workflow_snapshots (
                workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                definition TEXT NOT NULL,
                note TEXT,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (workflow_id, version)
            ) STRICT
            """,
            """
            CREATE TABLE tasks (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                workflow_id TEXT NOT NULL,
                workflow_version INTEGER NOT NULL,
                task_status TEXT NOT NULL
                    CHECK (task_status IN ('pending', 'waiting', 'queued', 'running', 'completed', 'failed', 'cancelled')),
                task_source TEXT NOT NULL CHECK (task_source IN ('jwt', 'api_key')),
                user_id TEXT,
                credential_id TEXT,
                parameters TEXT NOT NULL,
                definition TEXT NOT NULL,
                dispatch_target TEXT NOT NULL,
                target_pool TEXT NOT NULL,
                submitter_region TEXT,
                tool_type TEXT NOT NULL,
                required_labels TEXT NOT NULL,
                task_timeout INTEGER NOT NULL,
                max_retries INTEGER NOT NULL,
                retry_count INTEGER NOT NULL,
                agent_id TEXT,
                agent_labels TEXT,
                gateway_id TEXT,
                gpu_type TEXT,
                task_error TEXT NOT NULL,
                task_output TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                started_at INTEGER,
                completed_at INTEGER
            ) STRICT
            """,
            "CREATE INDEX tasks_team_created ON tasks (team_id, created_at DESC, id DESC)",
            "CREATE INDEX tasks_team_status_created ON tasks (team_id, task_status, created_at DESC, id DESC)",
            """
            CREATE TABLE task_events (
                task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
                sequence INTEGER NOT NULL,
                event_type TEXT NOT NULL,
                data TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (task_id, sequence)
            ) STRICT
            """,
            """
            CREATE TABLE idempotency_keys (
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                idempotency_key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                task_id TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (team_id, idempotency_key)
            ) STRICT
            """,
        ]
    )
}
