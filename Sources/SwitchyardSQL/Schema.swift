import SwitchyardCore

/// One forward-only schema step. Versions are applied in order, each in its own transaction, and recorded in
/// `schema_migrations`.
public struct SchemaMigration: Sendable {
    public var version: Int
    public var name: String
    /// Written in PostgreSQL's types; `statements(for:)` translates them for SQLite.
    var statements: [String]
    /// Statements only PostgreSQL runs (an index SQLite's single writer does not need).
    var postgresOnly: [String] = []

    init(version: Int, name: String, statements: [String], postgresOnly: [String] = []) {
        self.version = version
        self.name = name
        self.statements = statements
        self.postgresOnly = postgresOnly
    }

    /// The statements as `dialect` runs them. SQLite's tables are `STRICT`, with UUIDs as `TEXT`, instants as
    /// `INTEGER` microseconds since 1970 and booleans as `INTEGER`.
    public func statements(for dialect: SQLDialect) -> [String] {
        guard dialect == .sqlite else { return statements + postgresOnly }
        return statements.map { statement in
            var sqlite = statement
            for (postgres, type) in Self.sqliteTypes {
                sqlite = sqlite.replacing(postgres, with: type)
            }
            if sqlite.hasPrefix("CREATE TABLE") { sqlite += " STRICT" }
            return sqlite
        }
    }

    private nonisolated(unsafe) static let sqliteTypes: [(Regex<Substring>, String)] = [
        (/\buuid\b/, "TEXT"), (/\btext\b/, "TEXT"), (/\btimestamptz\b/, "INTEGER"), (/\bbigint\b/, "INTEGER"),
        (/\binteger\b/, "INTEGER"), (/\bdouble precision\b/, "REAL"), (/\bboolean\b/, "INTEGER"),
    ]
}

/// The schema, in order, for both backends. Append only: a released migration is never edited.
public enum Schema {
    /// The table that records which versions were applied.
    static let ledger = SchemaMigration(
        version: 0, name: "schema_migrations",
        statements: [
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
        ]
    )

    public static let migrations: [SchemaMigration] = [
        /// Users, teams, memberships, credentials and settings.
        SchemaMigration(
            version: 1,
            name: "create_identity",
            statements: [
                """
                CREATE TABLE users (
                    id uuid PRIMARY KEY,
                    email_address text NOT NULL UNIQUE,
                    first_name text NOT NULL,
                    last_name text NOT NULL,
                    display_name text NOT NULL,
                    password_hash text NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL
                )
                """,
                """
                CREATE TABLE teams (
                    id uuid PRIMARY KEY,
                    display_name text NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL
                )
                """,
                """
                CREATE TABLE team_members (
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    member_role text NOT NULL CHECK (member_role IN ('owner', 'admin', 'member', 'viewer')),
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (team_id, user_id)
                )
                """,
                "CREATE INDEX team_members_user ON team_members (user_id)",
                """
                CREATE TABLE credentials (
                    id uuid PRIMARY KEY,
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    user_id uuid REFERENCES users(id) ON DELETE SET NULL,
                    kind text NOT NULL CHECK (kind IN ('integration', 'agent', 'device')),
                    display_name text NOT NULL,
                    key_prefix text NOT NULL,
                    key_hash text NOT NULL UNIQUE,
                    created_at timestamptz NOT NULL,
                    last_used_at timestamptz,
                    expires_at timestamptz,
                    revoked_at timestamptz
                )
                """,
                "CREATE INDEX credentials_team_created ON credentials (team_id, created_at DESC, id DESC)",
                """
                CREATE TABLE settings (
                    key text PRIMARY KEY,
                    value text NOT NULL
                )
                """,
            ]),
        /// Workflows with their snapshots, tasks with their event logs, and idempotency keys. JSON documents are
        /// text written by the server's canonical serializer (read whole, never queried inside, so not jsonb).
        SchemaMigration(
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
            ]),
        /// Registered model files.
        SchemaMigration(
            version: 3,
            name: "create_models",
            statements: [
                """
                CREATE TABLE models (
                    id uuid PRIMARY KEY,
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    display_name text NOT NULL,
                    model_type text NOT NULL,
                    storage_key text NOT NULL,
                    file_size bigint NOT NULL CHECK (file_size >= 0),
                    file_hash text,
                    model_path text,
                    model_status text NOT NULL CHECK (model_status IN ('active', 'disabled')),
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    UNIQUE (team_id, storage_key)
                )
                """,
                "CREATE INDEX models_team_created ON models (team_id, created_at DESC, id DESC)",
            ]),
        /// When tasks' outputs were deleted, and the reaper's log.
        SchemaMigration(
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
            ]),
        /// Attempts on tasks, and the agents the gateway has seen.
        SchemaMigration(
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
            ]),
        /// Webhooks and their delivery outbox, invitations, device pairing, and deleted teams.
        SchemaMigration(
            version: 6,
            name: "create_teams_webhooks_pairing",
            statements: [
                "ALTER TABLE teams ADD COLUMN deleted_at timestamptz",
                "ALTER TABLE credentials ADD COLUMN companion_id uuid",
                """
                CREATE TABLE webhooks (
                    id uuid PRIMARY KEY,
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    display_name text NOT NULL,
                    webhook_url text NOT NULL,
                    sealed_secret text NOT NULL,
                    webhook_events text NOT NULL,
                    webhook_status text NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    last_delivered_at timestamptz
                )
                """,
                "CREATE INDEX webhooks_team_created ON webhooks (team_id, created_at DESC, id DESC)",
                """
                CREATE TABLE webhook_deliveries (
                    id uuid PRIMARY KEY,
                    webhook_id uuid NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                    team_id uuid NOT NULL,
                    task_id uuid NOT NULL,
                    event_type text NOT NULL,
                    payload text NOT NULL,
                    delivery_status text NOT NULL,
                    attempt_count integer NOT NULL,
                    round_attempts integer NOT NULL,
                    next_attempt_at timestamptz,
                    claim_token uuid,
                    created_at timestamptz NOT NULL,
                    delivered_at timestamptz,
                    last_status_code integer,
                    last_error text
                )
                """,
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivery_status, next_attempt_at)",
                "CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC, id DESC)",
                """
                CREATE TABLE webhook_attempts (
                    delivery_id uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
                    attempt_number integer NOT NULL,
                    attempted_at timestamptz NOT NULL,
                    status_code integer,
                    latency_ms double precision NOT NULL,
                    attempt_error text,
                    next_retry_at timestamptz,
                    PRIMARY KEY (delivery_id, attempt_number)
                )
                """,
                """
                CREATE TABLE invitations (
                    id uuid PRIMARY KEY,
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    email_address text NOT NULL,
                    invitation_role text NOT NULL,
                    token_hash text NOT NULL UNIQUE,
                    invited_by uuid,
                    created_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL
                )
                """,
                "CREATE INDEX invitations_team_email ON invitations (team_id, email_address)",
                """
                CREATE TABLE device_pairings (
                    id uuid PRIMARY KEY,
                    device_code_hash text NOT NULL UNIQUE,
                    user_code text NOT NULL,
                    created_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL,
                    confirmed_by uuid,
                    team_id uuid REFERENCES teams(id) ON DELETE CASCADE,
                    device_name text
                )
                """,
                "CREATE INDEX device_pairings_user_code ON device_pairings (user_code)",
            ]),
        /// Replica leases: each dispatcher's heartbeat, so the others can tell when it died.
        SchemaMigration(
            version: 7,
            name: "create_replicas",
            statements: [
                "CREATE TABLE replicas (gateway_id text PRIMARY KEY, heartbeat_at timestamptz NOT NULL)"
            ],
            postgresOnly: ["CREATE INDEX tasks_gateway_active ON tasks (gateway_id) WHERE task_status IN ('queued', 'running')"]),
        /// A run's optional `start_deadline`, and the index that finds expired tasks without a scan.
        SchemaMigration(
            version: 8,
            name: "add_start_deadline",
            statements: [
                "ALTER TABLE tasks ADD COLUMN start_deadline timestamptz",
                "CREATE INDEX tasks_start_deadline ON tasks (start_deadline) WHERE start_deadline IS NOT NULL",
            ]),
        /// What a pairing device says of itself at start, for the approval page: its name and its address.
        SchemaMigration(
            version: 9,
            name: "add_pairing_requester",
            statements: [
                "ALTER TABLE device_pairings ADD COLUMN requested_name text",
                "ALTER TABLE device_pairings ADD COLUMN requested_from text",
            ]),
        /// Multipart uploads in progress: the key, size and part size each was issued for.
        SchemaMigration(
            version: 10,
            name: "create_multipart_uploads",
            statements: [
                """
                CREATE TABLE multipart_uploads (
                    upload_id text PRIMARY KEY,
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    storage_key text NOT NULL,
                    file_size bigint NOT NULL,
                    part_size bigint NOT NULL,
                    created_by uuid,
                    created_at timestamptz NOT NULL
                )
                """,
                "CREATE INDEX multipart_uploads_created_at ON multipart_uploads (created_at)",
            ]),
        /// A user's session-token version: signing out everywhere or changing the password bumps it.
        SchemaMigration(
            version: 11,
            name: "add_token_version",
            statements: ["ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0"]),
        /// Model sync on the agent's row: the step of its sync, and the models it holds and could not take (JSON).
        SchemaMigration(
            version: 12,
            name: "add_agent_models",
            statements: [
                "ALTER TABLE agents ADD COLUMN sync_phase text",
                "ALTER TABLE agents ADD COLUMN model_report text",
            ]),
        /// A large model's `file_hash` checked after its registration: `pending`, or `failed` with the reason.
        SchemaMigration(
            version: 13,
            name: "add_model_verification",
            statements: [
                "ALTER TABLE models ADD COLUMN verification text",
                "ALTER TABLE models ADD COLUMN verification_error text",
            ]),
        /// A team's key for a cloud provider (Comfy Cloud), sealed with the secrets key; one per provider per team.
        SchemaMigration(
            version: 14,
            name: "create_cloud_credentials",
            statements: [
                """
                CREATE TABLE cloud_credentials (
                    team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                    provider_name text NOT NULL,
                    sealed_key text NOT NULL,
                    key_preview text NOT NULL,
                    credential_status text NOT NULL,
                    status_message text,
                    cloud_fallback boolean NOT NULL,
                    verified_at timestamptz,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    PRIMARY KEY (team_id, provider_name)
                )
                """
            ]),
        /// The dashboard's task filters (by workflow, by agent) stay index reads with many tasks in a team.
        SchemaMigration(
            version: 15,
            name: "index_tasks_by_workflow_and_agent",
            statements: [
                "CREATE INDEX tasks_team_workflow_created ON tasks (team_id, workflow_id, created_at DESC, id DESC)",
                "CREATE INDEX tasks_team_agent_created ON tasks (team_id, agent_id, created_at DESC, id DESC)",
            ]),
    ]
}
