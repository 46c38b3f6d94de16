import SwitchyardCore

extension SQLiteMigrations {
    /// Multipart uploads in progress: the key, size and part size each was issued for.
    static let m0010CreateMultipartUploads = SchemaMigration(
        version: 10,
        name: "create_multipart_uploads",
        statements: [
            """
            CREATE TABLE multipart_uploads (
                upload_id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                storage_key TEXT NOT NULL,
                file_size INTEGER NOT NULL,
                part_size INTEGER NOT NULL,
                created_by TEXT,
                created_at INTEGER NOT NULL
            ) STRICT
            """,
            "CREATE INDEX multipart_uploads_created_at ON multipart_uploads (created_at)",
        ]
    )
}
