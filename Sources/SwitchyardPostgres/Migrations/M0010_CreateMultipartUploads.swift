import SwitchyardCore

extension PostgresMigrations {
    /// Multipart uploads in progress: the key, size and part size each was issued for.
    static let m0010CreateMultipartUploads = SchemaMigration(
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
        ]
    )
}
