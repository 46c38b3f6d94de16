import Foundation
import SwitchyardCore

/// Column lists the statements share (code-written SQL, spliced with `raw:`).
public enum SQLColumns {
    static let user = "id, email_address, first_name, last_name, display_name, password_hash, created_at, updated_at"
    /// What a read of a user selects: the inserted columns and the token version.
    static let userSelection = user + ", token_version"
    static let credential =
        "id, team_id, user_id, kind, display_name, key_prefix, key_hash, created_at, last_used_at, expires_at, revoked_at, companion_id"
}

extension SQLStorage {
    public func insertUser(_ user: User) async throws {
        try await mapConstraint("a user with this email address") {
            try await autocommit.insertUser(user)
        }
    }

    public func user(id: UUID) async throws -> User? {
        try await read("SELECT \(raw: SQLColumns.userSelection) FROM users WHERE id = \(id)").first.map(User.init(row:))
    }

    public func user(emailAddress: String) async throws -> User? {
        try await read("SELECT \(raw: SQLColumns.userSelection) FROM users WHERE email_address = \(emailAddress.lowercased())")
            .first.map(User.init(row:))
    }

    public func endSessions(userId: UUID, newPasswordHash: String?, at date: Date) async throws -> Int? {
        try await write(
            """
            UPDATE users SET token_version = token_version + 1, password_hash = COALESCE(\(newPasswordHash), password_hash),
                updated_at = \(date)
            WHERE id = \(userId) RETURNING token_version
            """
        ).first?.int("token_version")
    }

    public func insertTeam(_ team: Team, owner: Membership) async throws {
        try await mapConstraint("the team") {
            try await transaction { try await $0.insertTeam(team, owner: owner) }
        }
    }

    public func team(id: UUID) async throws -> Team? {
        try await read("SELECT id, display_name, created_at, updated_at FROM teams WHERE id = \(id) AND deleted_at IS NULL")
            .first.map(Team.init(row:))
    }

    public func insertMembership(_ membership: Membership) async throws {
        try await mapConstraint("the membership") {
            try await autocommit.insertMembership(membership)
        }
    }

    public func teamMemberships(userId: UUID) async throws -> [TeamMembership] {
        try await read(
            """
            SELECT t.id, t.display_name, t.created_at, t.updated_at, m.member_role
            FROM team_members m JOIN teams t ON t.id = m.team_id
            WHERE m.user_id = \(userId) ORDER BY m.created_at, t.id
            """
        ).map { row in TeamMembership(team: try Team(row: row), role: try row.value("member_role")) }
    }

    public func role(userId: UUID, teamId: UUID) async throws -> TeamRole? {
        try await read("SELECT member_role FROM team_members WHERE team_id = \(teamId) AND user_id = \(userId)").first.map {
            try $0.value("member_role")
        }
    }

    public func bootstrap(_ plan: BootstrapPlan) async throws -> Bool {
        try await transaction { transaction in
            // Serialise concurrent first starts of several replicas (SQLite's writer is exclusive already).
            if transaction.dialect == .postgres { _ = try await transaction.query("LOCK TABLE settings IN EXCLUSIVE MODE") }
            guard
                let row = try await transaction.query(
                    """
                    SELECT (SELECT COUNT(*) FROM users) AS users,
                        (SELECT COUNT(*) FROM settings WHERE key = \(SettingKey.bootstrappedAt)) AS markers
                    """
                ).first,
                try row.int("users") == 0, try row.int("markers") == 0
            else { return false }
            try await transaction.insertUser(plan.user)
            try await transaction.insertTeam(
                plan.team, owner: Membership(teamId: plan.team.id, userId: plan.user.id, role: .owner, createdAt: plan.team.createdAt))
            for credential in plan.credentials { try await transaction.insertCredential(credential) }
            var settings = plan.settings
            settings[SettingKey.bootstrappedAt] = ISO8601DateFormatter().string(from: plan.user.createdAt)
            for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
                _ = try await transaction.query("INSERT INTO settings (key, value) VALUES (\(key), \(value))")
            }
            return true
        }
    }

    // MARK: Credentials

    public func insertCredential(_ credential: Credential) async throws {
        try await mapConstraint("the credential") {
            try await autocommit.insertCredential(credential)
        }
    }

    public func credential(keyHash: String) async throws -> Credential? {
        try await read("SELECT \(raw: SQLColumns.credential) FROM credentials WHERE key_hash = \(keyHash)").first.map(Credential.init(row:))
    }

    public func credential(id: UUID, teamId: UUID) async throws -> Credential? {
        try await read("SELECT \(raw: SQLColumns.credential) FROM credentials WHERE id = \(id) AND team_id = \(teamId)")
            .first.map(Credential.init(row:))
    }

    public func credentials(teamId: UUID, kind: CredentialKind?, page: PageRequest) async throws -> Page<Credential> {
        var filter: SQLQuery = "team_id = \(teamId)"
        if let kind { filter = "\(filter) AND kind = \(kind.rawValue)" }
        return try await self.page(SQLColumns.credential, from: "credentials", where: filter, page, Credential.init(row:))
    }

    public func revokeCredential(id: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        // A device key's companion agent key goes with it (api.md §2.10), in the same statement.
        try await wrote(
            """
            UPDATE credentials SET revoked_at = COALESCE(revoked_at, \(date))
            WHERE team_id = \(teamId) AND (id = \(id) OR id = (SELECT companion_id FROM credentials WHERE id = \(id) AND team_id = \(teamId)))
            RETURNING id
            """)
    }

    public func markCredentialUsed(id: UUID, at date: Date) async throws {
        _ = try await write("UPDATE credentials SET last_used_at = \(date) WHERE id = \(id)")
    }

    // MARK: Settings

    public func setting(_ key: String) async throws -> String? {
        try await read("SELECT value FROM settings WHERE key = \(key)").first?.string("value")
    }

    public func settingInsertingIfAbsent(_ key: String, value: String) async throws -> String {
        try await transaction { transaction in
            _ = try await transaction.query("INSERT INTO settings (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO NOTHING")
            return try await transaction.query("SELECT value FROM settings WHERE key = \(key)").first?.string("value") ?? value
        }
    }

    public func replaceSetting(_ key: String, from old: String, to new: String) async throws -> Bool {
        try await wrote("UPDATE settings SET value = \(new) WHERE key = \(key) AND value = \(old) RETURNING key")
    }
}

// MARK: Statements reused inside transactions

extension SQLExecutor {
    public func insertUser(_ user: User) async throws {
        _ = try await query(
            """
            INSERT INTO users (\(raw: SQLColumns.user))
            VALUES (\(user.id), \(user.emailAddress.lowercased()), \(user.firstName), \(user.lastName), \(user.displayName),
                    \(user.passwordHash), \(user.createdAt), \(user.updatedAt))
            """)
    }

    public func insertTeam(_ team: Team, owner: Membership) async throws {
        _ = try await query(
            "INSERT INTO teams (id, display_name, created_at, updated_at) VALUES (\(team.id), \(team.displayName), \(team.createdAt), \(team.updatedAt))"
        )
        try await insertMembership(owner)
    }

    public func insertMembership(_ membership: Membership) async throws {
        _ = try await query(
            """
            INSERT INTO team_members (team_id, user_id, member_role, created_at)
            VALUES (\(membership.teamId), \(membership.userId), \(membership.role.rawValue), \(membership.createdAt))
            """)
    }

    public func insertCredential(_ credential: Credential) async throws {
        _ = try await query(
            """
            INSERT INTO credentials (\(raw: SQLColumns.credential))
            VALUES (\(credential.id), \(credential.teamId), \(credential.userId), \(credential.kind.rawValue), \(credential.displayName),
                    \(credential.keyPrefix), \(credential.keyHash), \(credential.createdAt), \(credential.lastUsedAt), \(credential.expiresAt),
                    \(credential.revokedAt), \(credential.companionId))
            """)
    }
}

// MARK: Rows

extension User {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), emailAddress: try row.string("email_address"), firstName: try row.string("first_name"),
            lastName: try row.string("last_name"), displayName: try row.string("display_name"), passwordHash: try row.string("password_hash"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), tokenVersion: try row.int("token_version"))
    }
}

extension Team {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), displayName: try row.string("display_name"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }
}

extension Credential {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), userId: try row.optionalUUID("user_id"), kind: try row.value("kind"),
            displayName: try row.string("display_name"), keyPrefix: try row.string("key_prefix"), keyHash: try row.string("key_hash"),
            createdAt: try row.date("created_at"), lastUsedAt: try row.optionalDate("last_used_at"), expiresAt: try row.optionalDate("expires_at"),
            revokedAt: try row.optionalDate("revoked_at"), companionId: try row.optionalUUID("companion_id"))
    }
}
