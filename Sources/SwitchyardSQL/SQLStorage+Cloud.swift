import Foundation
import SwitchyardCore

extension SQLColumns {
    static let cloudCredential = """
        team_id, provider_name, sealed_key, key_preview, credential_status, status_message, cloud_fallback, verified_at, created_at, updated_at
        """
}

extension SQLStorage {
    public func putCloudCredential(_ credential: CloudCredential) async throws -> CloudCredential {
        let c = credential
        let rows = try await write(
            """
            INSERT INTO cloud_credentials (\(raw: SQLColumns.cloudCredential))
            VALUES (\(c.teamId), \(c.provider.rawValue), \(c.sealedKey), \(c.keyPreview), \(c.status.rawValue), \(c.statusMessage),
                    \(c.cloudFallback), \(c.verifiedAt), \(c.createdAt), \(c.updatedAt))
            ON CONFLICT (team_id, provider_name) DO UPDATE SET sealed_key = excluded.sealed_key, key_preview = excluded.key_preview,
                credential_status = excluded.credential_status, status_message = excluded.status_message,
                cloud_fallback = excluded.cloud_fallback, verified_at = excluded.verified_at, updated_at = excluded.updated_at
            RETURNING \(raw: SQLColumns.cloudCredential)
            """)
        guard let row = rows.first else { throw SQLDecodingError(column: "team_id") }
        return try CloudCredential(row: row)
    }

    public func cloudCredential(teamId: UUID, provider: CloudProvider) async throws -> CloudCredential? {
        try await read(
            "SELECT \(raw: SQLColumns.cloudCredential) FROM cloud_credentials WHERE team_id = \(teamId) AND provider_name = \(provider.rawValue)"
        ).first.map(CloudCredential.init(row:))
    }

    public func activeCloudCredentials(provider: CloudProvider) async throws -> [CloudCredential] {
        try await read(
            """
            SELECT \(raw: SQLColumns.cloudCredential) FROM cloud_credentials
            WHERE provider_name = \(provider.rawValue) AND credential_status = 'active' ORDER BY team_id
            """
        ).map(CloudCredential.init(row:))
    }

    public func deleteCloudCredential(teamId: UUID, provider: CloudProvider) async throws -> Bool {
        try await wrote("DELETE FROM cloud_credentials WHERE team_id = \(teamId) AND provider_name = \(provider.rawValue) RETURNING team_id")
    }

    public func setCloudCredentialStatus(
        teamId: UUID, provider: CloudProvider, sealedKey: String, status: CloudCredentialStatus, message: String?, at date: Date
    ) async throws -> Bool {
        try await wrote(
            """
            UPDATE cloud_credentials SET credential_status = \(status.rawValue), status_message = \(message), updated_at = \(date)
            WHERE team_id = \(teamId) AND provider_name = \(provider.rawValue) AND sealed_key = \(sealedKey) RETURNING team_id
            """)
    }
}

extension CloudCredential {
    init(row: SQLRow) throws {
        self.init(
            teamId: try row.uuid("team_id"), provider: try row.value("provider_name"), sealedKey: try row.string("sealed_key"),
            keyPreview: try row.string("key_preview"), status: try row.value("credential_status"),
            statusMessage: try row.optionalString("status_message"), cloudFallback: try row.bool("cloud_fallback"),
            verifiedAt: try row.optionalDate("verified_at"), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}
