import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    static let userColumns = "id, email_address, first_name, last_name, display_name, password_hash, created_at, updated_at"
    /// What a read of a user selects: the inserted columns and the token version.
    static let userSelection = userColumns + ", token_version"

    public func insertUser(_ user: User) async throws {
        try await mapConstraint("a user with this email address") {
            try await write { connection in
                try await Self.insertUser(user, on: connection)
            }
        }
    }

    public func user(id: UUID) async throws -> User? {
        try await read("SELECT \(Self.userSelection) FROM users WHERE id = ?", [.uuid(id)]).first.map(Self.decodeUser)
    }

    public func user(emailAddress: String) async throws -> User? {
        try await read("SELECT \(Self.userSelection) FROM users WHERE email_address = ?", [.text(emailAddress.lowercased())])
            .first.map(Self.decodeUser)
    }

    public func insertTeam(_ team: Team, owner: Membership) async throws {
        try await mapConstraint("the team") {
            try await transaction { connection in
                try await Self.insertTeam(team, owner: owner, on: connection)
            }
        }
    }

    public func team(id: UUID) async throws -> Team? {
        try await read("SELECT id, display_name, created_at, updated_at FROM teams WHERE id = ? AND deleted_at IS NULL", [.uuid(id)])
            .first.map(Self.decodeTeam)
    }

    public func insertMembership(_ membership: Membership) async throws {
        try await mapConstraint("the membership") {
            try await write { connection in
                try await Self.insertMembership(membership, on: connection)
            }
        }
    }

    public func teamMemberships(userId: UUID) async throws -> [TeamMembership] {
        try await read(
            """
            SELECT t.id, t.display_name, t.created_at, t.updated_at, m.member_role
            FROM team_members m JOIN teams t ON t.id = m.team_id
            WHERE m.user_id = ? ORDER BY m.created_at, t.id
            """,
            [.uuid(userId)]
        ).map { row in
            guard let role = TeamRole(rawValue: try row.string("member_role")) else {
                throw SQLiteDecodingError(column: "member_role")
            }
            return TeamMembership(team: try Self.decodeTeam(row), role: role)
        }
    }

    public func role(userId: UUID, teamId: UUID) async throws -> TeamRole? {
        guard
            let row = try await read("SELECT member_role FROM team_members WHERE team_id = ? AND user_id = ?", [.uuid(teamId), .uuid(userId)]).first
        else { return nil }
        return TeamRole(rawValue: try row.string("member_role"))
    }

    public func bootstrap(_ plan: BootstrapPlan) async throws -> Bool {
        try await transaction { connection in
            let existing = try await connection.query(
                "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM settings WHERE key = ?) AS marker",
                [.text(SettingKey.bootstrappedAt)]
            )
            guard let row = existing.first, try row.int("users") == 0, try row.int("marker") == 0 else { return false }
            try await Self.insertUser(plan.user, on: connection)
            try await Self.insertTeam(
                plan.team,
                owner: Membership(teamId: plan.team.id, userId: plan.user.id, role: .owner, createdAt: plan.team.createdAt),
                on: connection
            )
            for credential in plan.credentials {
                try await Self.insertCredential(credential, on: connection)
            }
            var settings = plan.settings
            settings[SettingKey.bootstrappedAt] = ISO8601DateFormatter().string(from: plan.user.createdAt)
            for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
                _ = try await connection.query("INSERT INTO settings (key, value) VALUES (?, ?)", [.text(key), .text(value)])
            }
            return true
        }
    }

    // MARK: Row mapping and statements reused inside transactions

    static func insertUser(_ user: User, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO users (\(userColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .uuid(user.id), .text(user.emailAddress.lowercased()), .text(user.firstName), .text(user.lastName),
                .text(user.displayName), .text(user.passwordHash), .date(user.createdAt), .date(user.updatedAt),
            ]
        )
    }

    static func insertTeam(_ team: Team, owner: Membership, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO teams (id, display_name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [.uuid(team.id), .text(team.displayName), .date(team.createdAt), .date(team.updatedAt)]
        )
        try await insertMembership(owner, on: connection)
    }

    static func insertMembership(_ membership: Membership, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO team_members (team_id, user_id, member_role, created_at) VALUES (?, ?, ?, ?)",
            [.uuid(membership.teamId), .uuid(membership.userId), .text(membership.role.rawValue), .date(membership.createdAt)]
        )
    }

    static func decodeUser(_ row: SQLiteRow) throws -> User {
        User(
            id: try row.uuid("id"), emailAddress: try row.string("email_address"), firstName: try row.string("first_name"),
            lastName: try row.string("last_name"), displayName: try row.string("display_name"),
            passwordHash: try row.string("password_hash"), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"),
            tokenVersion: row.column("token_version") == nil ? 0 : try row.int("token_version")
        )
    }

    public func endSessions(userId: UUID, newPasswordHash: String?, at date: Date) async throws -> Int? {
        try await write { connection in
            try await connection.query(
                """
                UPDATE users SET token_version = token_version + 1, password_hash = COALESCE(?, password_hash), updated_at = ?
                WHERE id = ? RETURNING token_version
                """, [newPasswordHash.map(SQLiteData.text) ?? .null, .date(date), .uuid(userId)]
            ).first.map { try $0.int("token_version") }
        }
    }

    static func decodeTeam(_ row: SQLiteRow) throws -> Team {
        Team(
            id: try row.uuid("id"), displayName: try row.string("display_name"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }
}
