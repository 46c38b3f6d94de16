import SwitchyardCore

extension SQLiteMigrations {
    /// Registered model files.
    static let m0003CreateModels = SchemaMigration(
        version: 3,
        name: "create_models",
        statements: [
            """
            CREATE TABLE models (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                display_name TEXT NOT NULL,
                model_type TEXT NOT NULL,
                storage_key TEXT NOT NULL,
                file_size INTEGER NOT NULL CHECK (file_size >= 0),
                file_hash TEXT,
                model_path TEXT,
                model_status TEXT NOT NULL CHECK (model_status IN ('active', 'disabled')),
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                UNIQUE (team_id, storage_key)
            ) STRICT
            """,
            "CREATE INDEX models_team_created ON models (team_id, created_at DESC, id DESC)",
        ]
    )
}
