import SwitchyardCore

extension PostgresMigrations {
    /// Workflows with their snapshots, tasks with their event logs, and idempotency keys. JSON documents are
    /// text written by the server's canonical serializer (read whole, never queried inside, so not jsonb).
    static let m0002CreateWorkflowsAndTasks = SchemaMigration(
        version: 2,
        name: "create_workflows_and_tasks",
        statements: [
            """
            CREATE TABLE workflows (
                id uuid PRIMARY KEY,
                team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                slug text NOT NULL,
                workflow_status text NOT NULL CHECK (workflow_status IN ('active', 'disabled')),
                version integer NOT NULL CHECK (version >= 1),
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                UNIQUE (team_id, slug)
            )
            """,
            "CREATE INDEX workflows_team_created ON workflows (team_id, created_at DESC, id DESC)",
            """
            CREATE TABLE workflow_snapshots (
                workflow_id uuid NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
                version integer NOT NULL,
                definition text NOT NULL,
                note text,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (workflow_id, version)
            )
            """,
            """
            CREATE TABLE tasks (
                id uuid PRIMARY KEY,
                team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                workflow_id uuid NOT NULL,
                workflow_version integer NOT NULL,
                task_status text NOT NULL
                    CHECK (task_status IN ('pending', 'waiting', 'queued', 'running', 'completed', 'failed', 'cancelled')),
                task_source text NOT NULL CHECK (task_source IN ('jwt', 'api_key')),
                user_id uuid,
                credential_id uuid,
                parameters text NOT NULL,
                definition text NOT NULL,
                dispatch_target text NOT NULL,
                target_pool text NOT NULL,
                submitter_region text,
                tool_type text NOT NULL,
                required_labels text NOT NULL,
                task_timeout integer NOT NULL,
                max_retries integer NOT NULL,
                retry_count integer NOT NULL,
                agent_id text,
                agent_labels text,
                gateway_id text,
                gpu_type text,
                task_error text NOT NULL,
                task_output text,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                started_at timestamptz,
                completed_at timestamptz
            )
            """,
            "CREATE INDEX tasks_team_created ON tasks (team_id, created_at DESC, id DESC)",
            "CREATE INDEX tasks_team_status_created ON tasks (team_id, task_status, created_at DESC, id DESC)",
            """
            CREATE TABLE task_events (
                task_id uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
                sequence integer NOT NULL,
                event_type text NOT NULL,
                data text NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (task_id, sequence)
            )
            """,
            """
            CREATE TABLE idempotency_keys (
                team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                idempotency_key text NOT NULL,
                fingerprint text NOT NULL,
                task_id uuid NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (team_id, idempotency_key)
            )
            """,
        ]
    )
}
