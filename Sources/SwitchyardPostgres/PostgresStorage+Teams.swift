import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    public func renameTeam(id: UUID, displayName: String, at date: Date) async throws -> Bool {
        !(try await rows(
            "UPDATE teams SET display_name = \(displayName), updated_at = \(date) WHERE id = \(id) AND deleted_at IS NULL RETURNING id"
        ).isEmpty)
    }

    public func transferOwnership(teamId: UUID, from currentOwner: UUID, to newOwner: UUID, at date: Date) async throws -> Bool {
        let logger = self.logger
        return try await transaction { connection in
            let promoted = try await connection.query(
                """
                UPDATE team_members SET member_role = 'owner'
                WHERE team_id = \(teamId) AND user_id = \(newOwner) AND user_id <> \(currentOwner) RETURNING user_id
                """,
                logger: logger
            ).collect()
            guard !promoted.isEmpty else { return false }
            try await connection.query(
                "UPDATE team_members SET member_role = 'admin' WHERE team_id = \(teamId) AND user_id = \(currentOwner)", logger: logger)
            try await connection.query("UPDATE teams SET updated_at = \(date) WHERE id = \(teamId)", logger: logger)
            return true
        }
    }

    public func deleteTeam(id: UUID, at date: Date) async throws -> TeamDeletion? {
        let logger = self.logger
        return try await transaction { connection in
            guard
                try await !connection.query(
                    "UPDATE teams SET deleted_at = \(date), updated_at = \(date) WHERE id = \(id) AND deleted_at IS NULL RETURNING id",
                    logger: logger
                ).collect().isEmpty
            else { return nil }
            var cancelled: [UUID] = []
            let open = try await connection.query(
                """
                SELECT \(unescaped: Self.taskSelectColumns) FROM tasks
                WHERE team_id = \(id) AND task_status IN ('pending', 'waiting', 'queued', 'running') FOR UPDATE
                """,
                logger: logger
            ).collect()
            for row in open {
                var task = try Self.decodeTask(row)
                guard case .transition(let status, _) = try task.take(.cancel, at: date) else { continue }
                try await connection.query(
                    "UPDATE tasks SET task_status = \(status.rawValue), updated_at = \(date), completed_at = \(task.completedAt) WHERE id = \(task.id)",
                    logger: logger)
                let sequence = try await Self.nextSequence(taskId: task.id, on: connection, logger: logger)
                try await Self.insertEvent(
                    task.statusEvent(sequence: sequence, message: "the team was deleted", at: date), on: connection, logger: logger)
                cancelled.append(task.id)
            }
            var modelKeys: [String] = []
            for try await key in try await connection.query("SELECT storage_key FROM models WHERE team_id = \(id)", logger: logger).decode(
                String.self)
            {
                modelKeys.append(key)
            }
            try await connection.query(
                "UPDATE credentials SET revoked_at = COALESCE(revoked_at, \(date)) WHERE team_id = \(id)", logger: logger)
            for table in ["team_members", "invitations", "workflows", "models", "webhooks", "agents", "device_pairings", "idempotency_keys"] {
                try await connection.query("DELETE FROM \(unescaped: table) WHERE team_id = \(id)", logger: logger)
            }
            return TeamDeletion(cancelledTaskIds: cancelled, modelStorageKeys: modelKeys)
        }
    }

    public func members(teamId: UUID, page: PageRequest) async throws -> Page<TeamMember> {
        let total = try await rows("SELECT COUNT(*) FROM team_members WHERE team_id = \(teamId)").first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT u.id, u.email_address, u.first_name, u.last_name, u.display_name, u.password_hash, u.created_at, u.updated_at,
                m.member_role, m.created_at
            FROM team_members m JOIN users u ON u.id = m.user_id
            WHERE m.team_id = \(teamId) ORDER BY m.member_role <> 'owner', m.created_at, u.id LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map { row in
            let (id, email, first, last, display, hash, created, updated, roleName, joined) = try row.decode(
                (UUID, String, String, String, String, String, Date, Date, String, Date).self)
            guard let role = TeamRole(rawValue: roleName) else { throw PostgresDecodingError(column: "member_role") }
            return TeamMember(
                user: User(
                    id: id, emailAddress: email, firstName: first, lastName: last, displayName: display, passwordHash: hash, createdAt: created,
                    updatedAt: updated),
                role: role, joinedAt: joined)
        }
        return Page(items: items, totalCount: total)
    }

    public func setRole(userId: UUID, teamId: UUID, role: TeamRole) async throws -> Bool {
        !(try await rows(
            "UPDATE team_members SET member_role = \(role.rawValue) WHERE team_id = \(teamId) AND user_id = \(userId) RETURNING user_id"
        ).isEmpty)
    }

    public func removeMember(userId: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        let logger = self.logger
        return try await transaction { connection in
            guard
                try await !connection.query(
                    "DELETE FROM team_members WHERE team_id = \(teamId) AND user_id = \(userId) RETURNING user_id", logger: logger
                ).collect().isEmpty
            else { return false }
            // Device keys act as their user, so they end with the membership, companions included.
            try await connection.query(
                """
                UPDATE credentials SET revoked_at = COALESCE(revoked_at, \(date))
                WHERE team_id = \(teamId) AND (
                    (kind = 'device' AND user_id = \(userId))
                    OR id IN (SELECT companion_id FROM credentials WHERE team_id = \(teamId) AND kind = 'device' AND user_id = \(userId)))
                """,
                logger: logger)
            return true
        }
    }

    // MARK: Invitations

    static let invitationColumns = "id, team_id, email_address, invitation_role, token_hash, invited_by, created_at, expires_at"

    public func insertInvitation(_ invitation: Invitation, at date: Date) async throws {
        let logger = self.logger
        try await transaction { connection in
            // Serialise invitations per team, so two admins inviting one address at once cannot both succeed.
            try await connection.query("SELECT id FROM teams WHERE id = \(invitation.teamId) FOR UPDATE", logger: logger)
            let clash = try await connection.query(
                """
                SELECT
                    (SELECT COUNT(*) FROM team_members m JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = \(invitation.teamId) AND u.email_address = \(invitation.emailAddress)),
                    (SELECT COUNT(*) FROM invitations
                     WHERE team_id = \(invitation.teamId) AND email_address = \(invitation.emailAddress) AND expires_at > \(date))
                """,
                logger: logger
            ).collect().first?.decode((Int, Int).self)
            if let clash, clash.0 > 0 { throw SwitchyardError.conflict("\(invitation.emailAddress) is already a member of the team") }
            if let clash, clash.1 > 0 { throw SwitchyardError.conflict("\(invitation.emailAddress) already has a pending invitation to the team") }
            try await connection.query(
                "DELETE FROM invitations WHERE team_id = \(invitation.teamId) AND email_address = \(invitation.emailAddress)", logger: logger)
            try await connection.query(
                """
                INSERT INTO invitations (\(unescaped: Self.invitationColumns))
                VALUES (\(invitation.id), \(invitation.teamId), \(invitation.emailAddress), \(invitation.role.rawValue), \(invitation.tokenHash),
                        \(invitation.invitedBy), \(invitation.createdAt), \(invitation.expiresAt))
                """,
                logger: logger)
        }
    }

    public func invitations(teamId: UUID, at date: Date, page: PageRequest) async throws -> Page<Invitation> {
        let total =
            try await rows("SELECT COUNT(*) FROM invitations WHERE team_id = \(teamId) AND expires_at > \(date)").first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT \(unescaped: Self.invitationColumns) FROM invitations WHERE team_id = \(teamId) AND expires_at > \(date)
            ORDER BY created_at DESC, id DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeInvitation)
        return Page(items: items, totalCount: total)
    }

    public func deleteInvitation(id: UUID, teamId: UUID) async throws -> Bool {
        !(try await rows("DELETE FROM invitations WHERE id = \(id) AND team_id = \(teamId) RETURNING id").isEmpty)
    }

    public func invitation(tokenHash: String, at date: Date) async throws -> Invitation? {
        try await rows(
            "SELECT \(unescaped: Self.invitationColumns) FROM invitations WHERE token_hash = \(tokenHash) AND expires_at > \(date)"
        ).first.map(Self.decodeInvitation)
    }

    public func acceptInvitation(id: UUID, userId: UUID, newUser: User?, at date: Date) async throws -> Bool {
        let logger = self.logger
        return try await mapConstraint("a user with this email address") {
            try await transaction { connection in
                guard
                    let (teamId, roleName) = try await connection.query(
                        "DELETE FROM invitations WHERE id = \(id) AND expires_at > \(date) RETURNING team_id, invitation_role", logger: logger
                    ).collect().first?.decode((UUID, String).self),
                    let role = TeamRole(rawValue: roleName)
                else { return false }
                if let newUser { try await Self.insertUser(newUser, on: connection, logger: logger) }
                guard
                    try await connection.query(
                        "SELECT 1 FROM team_members WHERE team_id = \(teamId) AND user_id = \(userId)", logger: logger
                    ).collect().isEmpty
                else { throw SwitchyardError.conflict("you are already a member of this team") }
                try await Self.insertMembership(
                    Membership(teamId: teamId, userId: userId, role: role, createdAt: date), on: connection, logger: logger)
                return true
            }
        }
    }

    static func decodeInvitation(_ row: PostgresRow) throws -> Invitation {
        let (id, teamId, email, roleName, tokenHash, invitedBy, created, expires) = try row.decode(
            (UUID, UUID, String, String, String, UUID?, Date, Date).self)
        guard let role = TeamRole(rawValue: roleName) else { throw PostgresDecodingError(column: "invitation_role") }
        return Invitation(
            id: id, teamId: teamId, emailAddress: email, role: role, tokenHash: tokenHash, invitedBy: invitedBy, createdAt: created,
            expiresAt: expires)
    }

    // MARK: Device pairing

    public func insertPairing(_ pairing: DevicePairing) async throws {
        _ = try await rows(
            """
            INSERT INTO device_pairings (id, device_code_hash, user_code, created_at, expires_at, requested_name, requested_from)
            VALUES (\(pairing.id), \(pairing.deviceCodeHash), \(pairing.userCode), \(pairing.createdAt), \(pairing.expiresAt),
                \(pairing.requestedName), \(pairing.requestedFrom))
            """)
        // Expired pairings are of no use to anyone.
        _ = try await rows("DELETE FROM device_pairings WHERE expires_at <= \(pairing.createdAt)")
    }

    public func confirmPairing(userCode: String, userId: UUID, teamId: UUID, deviceName: String, at date: Date) async throws -> Bool {
        !(try await rows(
            """
            UPDATE device_pairings SET confirmed_by = \(userId), team_id = \(teamId), device_name = \(deviceName)
            WHERE user_code = \(userCode) AND expires_at > \(date) AND confirmed_by IS NULL RETURNING id
            """
        ).isEmpty)
    }

    public func pairing(deviceCodeHash: String, at date: Date) async throws -> DevicePairing? {
        try await pairings(
            """
            SELECT id, device_code_hash, user_code, created_at, expires_at, confirmed_by, team_id, device_name, requested_name, requested_from
            FROM device_pairings WHERE device_code_hash = \(deviceCodeHash) AND expires_at > \(date)
            """
        ).first
    }

    public func pendingPairing(userCode: String, at date: Date) async throws -> DevicePairing? {
        try await pairings(
            """
            SELECT id, device_code_hash, user_code, created_at, expires_at, confirmed_by, team_id, device_name, requested_name, requested_from
            FROM device_pairings WHERE user_code = \(userCode) AND expires_at > \(date) AND confirmed_by IS NULL
            """
        ).first
    }

    private func pairings(_ query: PostgresQuery) async throws -> [DevicePairing] {
        try await rows(query).map { row in
            let (id, hash, code, created, expires, confirmedBy, teamId, name, requestedName, requestedFrom) = try row.decode(
                (UUID, String, String, Date, Date, UUID?, UUID?, String?, String?, String?).self)
            return DevicePairing(
                id: id, deviceCodeHash: hash, userCode: code, createdAt: created, expiresAt: expires, confirmedBy: confirmedBy, teamId: teamId,
                deviceName: name, requestedName: requestedName, requestedFrom: requestedFrom)
        }
    }

    public func completePairing(id: UUID, device: Credential, agent: Credential) async throws -> Bool {
        let logger = self.logger
        return try await transaction { connection in
            guard
                try await !connection.query(
                    "DELETE FROM device_pairings WHERE id = \(id) AND confirmed_by IS NOT NULL RETURNING id", logger: logger
                ).collect().isEmpty
            else { return false }
            try await Self.insertCredential(agent, on: connection, logger: logger)
            try await Self.insertCredential(device, on: connection, logger: logger)
            return true
        }
    }
}
