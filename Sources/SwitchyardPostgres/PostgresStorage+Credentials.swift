import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    static let credentialColumns =
        "id, team_id, user_id, kind, display_name, key_prefix, key_hash, created_at, last_used_at, expires_at, revoked_at, companion_id"

    public func insertCredential(_ credential: Credential) async throws {
        try await mapConstraint("the credential") {
            try await withConnection { connection in
                try await Self.insertCredential(credential, on: connection, logger: logger)
            }
        }
    }

    public func credential(keyHash: String) async throws -> Credential? {
        try await rows(
            "SELECT \(unescaped: Self.credentialColumns) FROM credentials WHERE key_hash = \(keyHash)"
        ).first.map(Self.decodeCredential)
    }

    public func credential(id: UUID, teamId: UUID) async throws -> Credential? {
        try await rows(
            "SELECT \(unescaped: Self.credentialColumns) FROM credentials WHERE id = \(id) AND team_id = \(teamId)"
        ).first.map(Self.decodeCredential)
    }

    public func credentials(teamId: UUID, kind: CredentialKind?, page: PageRequest) async throws -> Page<Credential> {
        let kindName = kind?.rawValue
        let total =
            try await rows(
                "SELECT COUNT(*) FROM credentials WHERE team_id = \(teamId) AND (\(kindName)::text IS NULL OR kind = \(kindName))"
            ).first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT \(unescaped: Self.credentialColumns)
            FROM credentials WHERE team_id = \(teamId) AND (\(kindName)::text IS NULL OR kind = \(kindName))
            ORDER BY created_at DESC, id DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeCredential)
        return Page(items: items, totalCount: total)
    }

    public func revokeCredential(id: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        // A device key's companion agent key goes with it (api.md §2.10), in the same statement.
        !(try await rows(
            """
            UPDATE credentials SET revoked_at = COALESCE(revoked_at, \(date))
            WHERE team_id = \(teamId) AND (id = \(id) OR id = (SELECT companion_id FROM credentials WHERE id = \(id) AND team_id = \(teamId)))
            RETURNING id
            """
        ).isEmpty)
    }

    public func markCredentialUsed(id: UUID, at date: Date) async throws {
        _ = try await rows("UPDATE credentials SET last_used_at = \(date) WHERE id = \(id)")
    }

    static func insertCredential(_ credential: Credential, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO credentials (\(unescaped: credentialColumns))
            VALUES (\(credential.id), \(credential.teamId), \(credential.userId), \(credential.kind.rawValue), \(credential.displayName),
                    \(credential.keyPrefix), \(credential.keyHash), \(credential.createdAt), \(credential.lastUsedAt), \(credential.expiresAt),
                    \(credential.revokedAt), \(credential.companionId))
            """,
            logger: logger
        )
    }

    static func decodeCredential(_ row: PostgresRow) throws -> Credential {
        let (id, teamId, userId, kindName, displayName, keyPrefix, keyHash, createdAt, lastUsedAt, expiresAt, revokedAt, companionId) =
            try row.decode((UUID, UUID, UUID?, String, String, String, String, Date, Date?, Date?, Date?, UUID?).self)
        guard let kind = CredentialKind(rawValue: kindName) else { throw PostgresDecodingError(column: "kind") }
        return Credential(
            id: id, teamId: teamId, userId: userId, kind: kind, displayName: displayName, keyPrefix: keyPrefix, keyHash: keyHash,
            createdAt: createdAt, lastUsedAt: lastUsedAt, expiresAt: expiresAt, revokedAt: revokedAt, companionId: companionId
        )
    }
}
