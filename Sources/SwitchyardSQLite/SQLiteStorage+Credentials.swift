import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    static let credentialColumns =
        "id, team_id, user_id, kind, display_name, key_prefix, key_hash, created_at, last_used_at, expires_at, revoked_at, companion_id"

    public func insertCredential(_ credential: Credential) async throws {
        try await mapConstraint("the credential") {
            try await write { connection in
                try await Self.insertCredential(credential, on: connection)
            }
        }
    }

    public func credential(keyHash: String) async throws -> Credential? {
        try await read("SELECT \(Self.credentialColumns) FROM credentials WHERE key_hash = ?", [.text(keyHash)])
            .first.map(Self.decodeCredential)
    }

    public func credential(id: UUID, teamId: UUID) async throws -> Credential? {
        try await read("SELECT \(Self.credentialColumns) FROM credentials WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)])
            .first.map(Self.decodeCredential)
    }

    public func credentials(teamId: UUID, kind: CredentialKind?, page: PageRequest) async throws -> Page<Credential> {
        var filter = "team_id = ?"
        var binds: [SQLiteData] = [.uuid(teamId)]
        if let kind {
            filter += " AND kind = ?"
            binds.append(.text(kind.rawValue))
        }
        let total = try await read("SELECT COUNT(*) AS total FROM credentials WHERE \(filter)", binds).first?.int("total") ?? 0
        let rows = try await read(
            "SELECT \(Self.credentialColumns) FROM credentials WHERE \(filter) ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            binds + [.integer(page.perPage), .integer(page.offset)]
        )
        return Page(items: try rows.map(Self.decodeCredential), totalCount: total)
    }

    public func revokeCredential(id: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND team_id = ? RETURNING companion_id",
                [.date(date), .uuid(id), .uuid(teamId)]
            )
            guard let row = rows.first else { return false }
            // A device key's companion agent key goes with it (api.md §2.10).
            if let companion = try row.optionalUUID("companion_id") {
                _ = try await connection.query(
                    "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND team_id = ?",
                    [.date(date), .uuid(companion), .uuid(teamId)])
            }
            return true
        }
    }

    public func markCredentialUsed(id: UUID, at date: Date) async throws {
        try await write { connection in
            _ = try await connection.query("UPDATE credentials SET last_used_at = ? WHERE id = ?", [.date(date), .uuid(id)])
        }
    }

    static func insertCredential(_ credential: Credential, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO credentials (\(credentialColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .uuid(credential.id), .uuid(credential.teamId), .uuid(credential.userId), .text(credential.kind.rawValue),
                .text(credential.displayName), .text(credential.keyPrefix), .text(credential.keyHash), .date(credential.createdAt),
                .date(credential.lastUsedAt), .date(credential.expiresAt), .date(credential.revokedAt), .uuid(credential.companionId),
            ]
        )
    }

    static func decodeCredential(_ row: SQLiteRow) throws -> Credential {
        guard let kind = CredentialKind(rawValue: try row.string("kind")) else { throw SQLiteDecodingError(column: "kind") }
        return Credential(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), userId: try row.optionalUUID("user_id"), kind: kind,
            displayName: try row.string("display_name"), keyPrefix: try row.string("key_prefix"), keyHash: try row.string("key_hash"),
            createdAt: try row.date("created_at"), lastUsedAt: row.optionalDate("last_used_at"), expiresAt: row.optionalDate("expires_at"),
            revokedAt: row.optionalDate("revoked_at"), companionId: try row.optionalUUID("companion_id")
        )
    }
}
