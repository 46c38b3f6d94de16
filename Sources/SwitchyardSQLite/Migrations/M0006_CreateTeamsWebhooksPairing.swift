import SwitchyardCore

extension SQLiteMigrations {
    /// Webhooks and their delivery outbox, invitations, device pairing, and deleted teams.
    static let m0006CreateTeamsWebhooksPairing = SchemaMigration(
        version: 6,
        name: "create_teams_webhooks_pairing",
        statements: [
            "ALTER TABLE teams ADD COLUMN deleted_at INTEGER",
            "ALTER TABLE credentials ADD COLUMN companion_id TEXT",
            """
            CREATE TABLE webhooks (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                display_name TEXT NOT NULL,
                webhook_url TEXT NOT NULL,
                sealed_secret TEXT NOT NULL,
                webhook_events TEXT NOT NULL,
                webhook_status TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                last_delivered_at INTEGER
            ) STRICT
            """,
            "CREATE INDEX webhooks_team_created ON webhooks (team_id, created_at DESC, id DESC)",
            """
            CREATE TABLE webhook_deliveries (
                id TEXT PRIMARY KEY,
                webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                team_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                payload TEXT NOT NULL,
                delivery_status TEXT NOT NULL,
                attempt_count INTEGER NOT NULL,
                round_attempts INTEGER NOT NULL,
                next_attempt_at INTEGER,
                claim_token TEXT,
                created_at INTEGER NOT NULL,
                delivered_at INTEGER,
                last_status_code INTEGER,
                last_error TEXT
            ) STRICT
            """,
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivery_status, next_attempt_at)",
            "CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC, id DESC)",
            """
            CREATE TABLE webhook_attempts (
                delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
                attempt_number INTEGER NOT NULL,
                attempted_at INTEGER NOT NULL,
                status_code INTEGER,
                latency_ms REAL NOT NULL,
                attempt_error TEXT,
                next_retry_at INTEGER,
                PRIMARY KEY (delivery_id, attempt_number)
            ) STRICT
            """,
            """
            CREATE TABLE invitations (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                email_address TEXT NOT NULL,
                invitation_role TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                invited_by TEXT,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            ) STRICT
            """,
            "CREATE INDEX invitations_team_email ON invitations (team_id, email_address)",
            """
            CREATE TABLE device_pairings (
                id TEXT PRIMARY KEY,
                device_code_hash TEXT NOT NULL UNIQUE,
                user_code TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                confirmed_by TEXT,
                team_id TEXT REFERENCES teams(id) ON DELETE CASCADE,
                device_name TEXT
            ) STRICT
            """,
            "CREATE INDEX device_pairings_user_code ON device_pairings (user_code)",
        ]
    )
}
