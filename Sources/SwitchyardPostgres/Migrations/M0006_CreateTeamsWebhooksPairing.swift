import SwitchyardCore

extension PostgresMigrations {
    /// Webhooks and their delivery outbox, invitations, device pairing, and deleted teams.
    static let m0006CreateTeamsWebhooksPairing = SchemaMigration(
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
        ]
    )
}
