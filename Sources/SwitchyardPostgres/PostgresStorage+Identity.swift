import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    static let userColumns = "id, email_address, first_name, last_name, display_name, password_hash, created_at, updated_at"
    /// What a read of a user selects: the inserted columns and the token version.
    static let userSelection = userColumns + ", token_version"

    public func insertUser(_ user: User) async throws {
        try await mapConstraint("a user with this email address") {
            try await withConnection { connection in
                try await Self.insertUser(user, on: connection, logger: logger)
            }
        }
    }

    public func user(id: UUID) async throws -> User? {
        try await rows(
            "SELECT \(unescaped: Self.userSelection) FROM users WHERE id = \(id)"
        ).first.map(Self.decodeUser)
    }

    public func user(emailAddress: String) async throws -> User? {
        try await rows(
            "SELECT \(unescaped: Self.userSelection) FROM users WHERE email_address = \(emailAddress.lowercased())"
        ).first.map(Self.decodeUser)
    }

    public func insertTeam(_ team: Team, owner: Membership) async throws {
        try await mapConstraint("the team") {
            try await transaction { connection in
                try await Self.insertTeam(team, owner: owner, on: connection, logger: logger)
            }
        }
    }

    public func team(id: UUID) async throws -> Team? {
        try await rows("SELECT id, display_name, created_at, updated_at FROM teams WHERE id = \(id) AND deleted_at IS NULL").first.map { row in
            let (id, name, created, updated) = try row.decode((UUID, String, Date, Date).self)
            return Team(id: id, displayName: name, createdAt: created, updatedAt: updated)
        }
    }

    public func insertMembership(_ membership: Membership) async throws {
        try await mapConstraint("the membership") {
            try await withConnection { connection in
                try await Self.insertMembership(membership, on: connection, logger: logger)
            }
        }
    }

    public func teamMemberships(userId: UUID) async throws -> [TeamMembership] {
        try await rows(
            """
            SELECT t.id, t.display_name, t.created_at, t.updated_at, m.member_role
            FROM team_members m JOIN teams t ON t.id = m.team_id
            WHERE m.user_id = \(userId) ORDER BY m.created_at, t.id
            """
        ).map { row in
            let (id, name, created, updated, roleName) = try row.decode((UUID, String, Date, Date, String).self)
            guard let role = TeamRole(rawValue: roleName) else { throw PostgresDecodingError(column: "member_role") }
            return TeamMembership(team: Team(id: id, displayName: name, createdAt: created, updatedAt: updated), role: role)
        }
    }

    public func role(userId: UUID, teamId: UUID) async throws -> TeamRole? {
        guard let row = try await rows("SELECT member_role FROM team_members WHERE team_id = \(teamId) AND user_id = \(userId)").first
        else { return nil }
        return TeamRole(rawValue: try row.decode(String.self))
    }

    public func bootstrap(_ plan: BootstrapPlan) async throws -> Bool {
        let logger = self.logger
        return try await transaction { connection in
            // Serialise concurrent first starts of several replicas.
            try await connection.query("LOCK TABLE settings IN EXCLUSIVE MODE", logger: logger)
            let counts = try await connection.query(
                "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM settings WHERE key = \(SettingKey.bootstrappedAt))",
                logger: logger
            ).collect()
            guard let row = counts.first else { return false }
            let (users, markers) = try row.decode((Int, Int).self)
            guard users == 0, markers == 0 else { return false }
            try await Self.insertUser(plan.user, on: connection, logger: logger)
            try await Self.insertTeam(
                plan.team,
                owner: Membership(teamId: plan.team.id, userId: plan.user.id, role: .owner, createdAt: plan.team.createdAt),
                on: connection, logger: logger
            )
            for credential in plan.credentials {
                try await Self.insertCredential(credential, on: connection, logger: logger)
            }
            var settings = plan.settings
            settings[SettingKey.bootstrappedAt] = ISO8601DateFormatter().string(from: plan.user.createdAt)
            for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
                try await connection.query("INSERT INTO settings (key, value) VALUES (\(key), \(value))", logger: logger)
            }
            return true
        }
    }

    // MARK: Row mapping and statements reused inside transactions

    static func insertUser(_ user: User, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO users (\(unescaped: userColumns))
            VALUES (\(user.id), \(user.emailAddress.lowercased()), \(user.firstName), \(user.lastName), \(user.displayName),
                    \(user.passwordHash), \(user.createdAt), \(user.updatedAt))
            """,
            logger: logger
        )
    }

    static func insertTeam(_ team: Team, owner: Membership, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "INSERT INTO teams (id, display_name, created_at, updated_at) VALUES (\(team.id), \(team.displayName), \(team.createdAt), \(team.updatedAt))",
            logger: logger
        )
        try await insertMembership(owner, on: connection, logger: logger)
    }

    static func insertMembership(_ membership: Membership, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO team_members (team_id, user_id, member_role, created_at)
            VALUES (\(membership.teamId), \(membership.userId), \(membership.role.rawValue), \(membership.createdAt))
            """,
            logger: logger
        )
    }

    static func decodeUser(_ row: PostgresRow) throws -> User {
        let (id, email, first, last, display, hash, created, updated, version) = try row.decode(
            (UUID, String, String, String, String, String, Date, Date, Int).self
        )
        return User(
            id: id, emailAddress: email, firstName: first, lastName: last, displayName: display, passwordHash: hash,
            createdAt: created, updatedAt: updated, tokenVersion: version
        )
    }

    public func endSessions(userId: UUID, newPasswordHash: String?, at date: Date) async throws -> Int? {
        try await rows(
            """
            UPDATE users SET token_version = token_version + 1, password_hash = COALESCE(\(newPasswordHash), password_hash),
                updated_at = \(date)
            WHERE id = \(userId) RETURNING token_version
            """
        ).first?.decode(Int.self)
    }
}

/// A stored value that does not have the shape its column promises.
struct PostgresDecodingError: Error, CustomStringConvertible {
    let column: String
    var description: String { "PostgreSQL column \(column) holds an unexpected value" }
}
