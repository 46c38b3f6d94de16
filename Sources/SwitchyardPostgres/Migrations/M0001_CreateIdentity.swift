import SwitchyardCore

extension PostgresMigrations {
    /// Users, teams, memberships, credentials and settings.
    static let m0001CreateIdentity = SchemaMigration(
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
        ]
    )
}
