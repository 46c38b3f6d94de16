import SwitchyardCore

extension PostgresMigrations {
    /// Registered model files.
    static let m0003CreateModels = SchemaMigration(
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
        ]
    )
}
