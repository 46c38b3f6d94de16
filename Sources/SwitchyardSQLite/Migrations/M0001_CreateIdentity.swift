import SwitchyardCore

extension SQLiteMigrations {
    /// Users, teams, memberships, credentials and settings. Timestamps are INTEGER microseconds since 1970.
    static let m0001CreateIdentity = SchemaMigration(
        version: 1,
        name: "create_identity",
        statements: [
            """
            CREATE TABLE users (
                id TEXT PRIMARY KEY,
                email_address TEXT NOT NULL UNIQUE,
                first_name TEXT NOT NULL,
                last_name TEXT NOT NULL,
                display_name TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            ) STRICT
            """,
            """
            CREATE TABLE teams (
                id TEXT PRIMARY KEY,
                display_name TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            ) STRICT
            """,
            """
            CREATE TABLE team_members (
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                member_role TEXT NOT NULL CHECK (member_role IN ('owner', 'admin', 'member', 'viewer')),
                created_at INTEGER NOT NULL,
                PRIMARY KEY (team_id, user_id)
            ) STRICT
            """,
            "CREATE INDEX team_members_user ON team_members (user_id)",
            """
            CREATE TABLE credentials (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
                kind TEXT NOT NULL CHECK (kind IN ('integration', 'agent', 'device')),
                display_name TEXT NOT NULL,
                key_prefix TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL,
                last_used_at INTEGER,
                expires_at INTEGER,
                revoked_at INTEGER
            ) STRICT
            """,
            "CREATE INDEX credentials_team_created ON credentials (team_id, created_at DESC, id DESC)",
            """
            CREATE TABLE settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) STRICT
            """,
        ]
    )
}
