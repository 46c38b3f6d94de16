import Foundation
import SwitchyardCore

extension SQLColumns {
    static let invitation = "id, team_id, email_address, invitation_role, token_hash, invited_by, created_at, expires_at"
    static let pairing =
        "id, device_code_hash, user_code, created_at, expires_at, confirmed_by, team_id, device_name, requested_name, requested_from"
}

extension SQLStorage {
    public func renameTeam(id: UUID, displayName: String, at date: Date) async throws -> Bool {
        try await wrote(
            "UPDATE teams SET display_name = \(displayName), updated_at = \(date) WHERE id = \(id) AND deleted_at IS NULL RETURNING id")
    }

    public func transferOwnership(teamId: UUID, from currentOwner: UUID, to newOwner: UUID, at date: Date) async throws -> Bool {
        try await transaction { transaction in
            let promoted = try await transaction.query(
                """
                UPDATE team_members SET member_role = 'owner'
                WHERE team_id = \(teamId) AND user_id = \(newOwner) AND user_id <> \(currentOwner) RETURNING user_id
                """)
            guard !promoted.isEmpty else { return false }
            _ = try await transaction.query("UPDATE team_members SET member_role = 'admin' WHERE team_id = \(teamId) AND user_id = \(currentOwner)")
            _ = try await transaction.query("UPDATE teams SET updated_at = \(date) WHERE id = \(teamId)")
            return true
        }
    }

    /// Marks the team deleted, cancels its open tasks (each with its `cancelled` event), revokes its keys and removes
    /// what belonged to it; the tasks and their events stay for the record.
    public func deleteTeam(id: UUID, at date: Date) async throws -> TeamDeletion? {
        try await transaction { transaction in
            guard
                try await !transaction.query(
                    "UPDATE teams SET deleted_at = \(date), updated_at = \(date) WHERE id = \(id) AND deleted_at IS NULL RETURNING id"
                ).isEmpty
            else { return nil }
            var cancelled: [UUID] = []
            let open = try await transaction.query(
                """
                SELECT \(raw: SQLColumns.taskSelection) FROM tasks
                WHERE team_id = \(id) AND task_status IN ('pending', 'waiting', 'queued', 'running') \(lock: .forUpdate)
                """)
            for row in open {
                var task = try TaskRecord(row: row)
                guard case .transition(let status, _) = try task.take(.cancel, at: date) else { continue }
                _ = try await transaction.query(
                    "UPDATE tasks SET task_status = \(status.rawValue), updated_at = \(date), completed_at = \(task.completedAt) WHERE id = \(task.id)"
                )
                let sequence = try await transaction.nextSequence(taskId: task.id)
                try await transaction.insertEvent(task.statusEvent(sequence: sequence, message: "the team was deleted", at: date))
                cancelled.append(task.id)
            }
            let modelKeys = try await transaction.query("SELECT storage_key FROM models WHERE team_id = \(id)").map { try $0.string("storage_key") }
            _ = try await transaction.query("UPDATE credentials SET revoked_at = COALESCE(revoked_at, \(date)) WHERE team_id = \(id)")
            for table in [
                "team_members", "invitations", "workflows", "models", "webhooks", "agents", "device_pairings", "idempotency_keys",
                "cloud_credentials",
            ] {
                _ = try await transaction.query("DELETE FROM \(raw: table) WHERE team_id = \(id)")
            }
            return TeamDeletion(cancelledTaskIds: cancelled, modelStorageKeys: modelKeys)
        }
    }

    public func members(teamId: UUID, page: PageRequest) async throws -> Page<TeamMember> {
        try await self.page(
            """
            u.id, u.email_address, u.first_name, u.last_name, u.display_name, u.password_hash, u.created_at, u.updated_at, u.token_version, \
            m.member_role, m.created_at AS joined_at
            """, from: "team_members m JOIN users u ON u.id = m.user_id", where: "m.team_id = \(teamId)",
            orderBy: "m.member_role <> 'owner', m.created_at, u.id", page
        ) { row in TeamMember(user: try User(row: row), role: try row.value("member_role"), joinedAt: try row.date("joined_at")) }
    }

    public func setRole(userId: UUID, teamId: UUID, role: TeamRole) async throws -> Bool {
        try await wrote(
            "UPDATE team_members SET member_role = \(role.rawValue) WHERE team_id = \(teamId) AND user_id = \(userId) RETURNING user_id")
    }

    public func removeMember(userId: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        try await transaction { transaction in
            guard
                try await !transaction.query(
                    "DELETE FROM team_members WHERE team_id = \(teamId) AND user_id = \(userId) RETURNING user_id"
                ).isEmpty
            else { return false }
            // Device keys act as their user, so they end with the membership, companions included.
            _ = try await transaction.query(
                """
                UPDATE credentials SET revoked_at = COALESCE(revoked_at, \(date))
                WHERE team_id = \(teamId) AND (
                    (kind = 'device' AND user_id = \(userId))
                    OR id IN (SELECT companion_id FROM credentials WHERE team_id = \(teamId) AND kind = 'device' AND user_id = \(userId)))
                """)
            return true
        }
    }

    // MARK: Invitations

    public func insertInvitation(_ invitation: Invitation, at date: Date) async throws {
        try await transaction { transaction in
            // Serialise invitations per team, so two admins inviting one address at once cannot both succeed.
            _ = try await transaction.query("SELECT id FROM teams WHERE id = \(invitation.teamId) \(lock: .forUpdate)")
            let clash = try await transaction.query(
                """
                SELECT
                    (SELECT COUNT(*) FROM team_members m JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = \(invitation.teamId) AND u.email_address = \(invitation.emailAddress)) AS members,
                    (SELECT COUNT(*) FROM invitations
                     WHERE team_id = \(invitation.teamId) AND email_address = \(invitation.emailAddress) AND expires_at > \(date)) AS pending
                """
            ).first
            if try clash?.int("members") ?? 0 > 0 {
                throw SwitchyardError.conflict("\(invitation.emailAddress) is already a member of the team")
            }
            if try clash?.int("pending") ?? 0 > 0 {
                throw SwitchyardError.conflict("\(invitation.emailAddress) already has a pending invitation to the team")
            }
            _ = try await transaction.query(
                "DELETE FROM invitations WHERE team_id = \(invitation.teamId) AND email_address = \(invitation.emailAddress)")
            _ = try await transaction.query(
                """
                INSERT INTO invitations (\(raw: SQLColumns.invitation))
                VALUES (\(invitation.id), \(invitation.teamId), \(invitation.emailAddress), \(invitation.role.rawValue), \(invitation.tokenHash),
                        \(invitation.invitedBy), \(invitation.createdAt), \(invitation.expiresAt))
                """)
        }
    }

    public func invitations(teamId: UUID, at date: Date, page: PageRequest) async throws -> Page<Invitation> {
        try await self.page(
            SQLColumns.invitation, from: "invitations", where: "team_id = \(teamId) AND expires_at > \(date)", page, Invitation.init(row:))
    }

    public func deleteInvitation(id: UUID, teamId: UUID) async throws -> Bool {
        try await wrote("DELETE FROM invitations WHERE id = \(id) AND team_id = \(teamId) RETURNING id")
    }

    public func invitation(tokenHash: String, at date: Date) async throws -> Invitation? {
        try await read("SELECT \(raw: SQLColumns.invitation) FROM invitations WHERE token_hash = \(tokenHash) AND expires_at > \(date)")
            .first.map(Invitation.init(row:))
    }

    public func acceptInvitation(id: UUID, userId: UUID, newUser: User?, at date: Date) async throws -> Bool {
        try await mapConstraint("a user with this email address") {
            try await transaction { transaction in
                guard
                    let row = try await transaction.query(
                        "DELETE FROM invitations WHERE id = \(id) AND expires_at > \(date) RETURNING team_id, invitation_role"
                    ).first
                else { return false }
                let (teamId, role): (UUID, TeamRole) = (try row.uuid("team_id"), try row.value("invitation_role"))
                if let newUser { try await transaction.insertUser(newUser) }
                guard try await transaction.query("SELECT 1 AS found FROM team_members WHERE team_id = \(teamId) AND user_id = \(userId)").isEmpty
                else { throw SwitchyardError.conflict("you are already a member of this team") }
                try await transaction.insertMembership(Membership(teamId: teamId, userId: userId, role: role, createdAt: date))
                return true
            }
        }
    }

    // MARK: Device pairing

    public func insertPairing(_ pairing: DevicePairing) async throws {
        try await transaction { transaction in
            _ = try await transaction.query(
                """
                INSERT INTO device_pairings (id, device_code_hash, user_code, created_at, expires_at, requested_name, requested_from)
                VALUES (\(pairing.id), \(pairing.deviceCodeHash), \(pairing.userCode), \(pairing.createdAt), \(pairing.expiresAt),
                    \(pairing.requestedName), \(pairing.requestedFrom))
                """)
            // Expired pairings are of no use to anyone.
            _ = try await transaction.query("DELETE FROM device_pairings WHERE expires_at <= \(pairing.createdAt)")
        }
    }

    public func confirmPairing(userCode: String, userId: UUID, teamId: UUID, deviceName: String, at date: Date) async throws -> Bool {
        try await wrote(
            """
            UPDATE device_pairings SET confirmed_by = \(userId), team_id = \(teamId), device_name = \(deviceName)
            WHERE user_code = \(userCode) AND expires_at > \(date) AND confirmed_by IS NULL RETURNING id
            """)
    }

    public func pairing(deviceCodeHash: String, at date: Date) async throws -> DevicePairing? {
        try await read(
            "SELECT \(raw: SQLColumns.pairing) FROM device_pairings WHERE device_code_hash = \(deviceCodeHash) AND expires_at > \(date)"
        ).first.map(DevicePairing.init(row:))
    }

    public func pendingPairing(userCode: String, at date: Date) async throws -> DevicePairing? {
        try await read(
            "SELECT \(raw: SQLColumns.pairing) FROM device_pairings WHERE user_code = \(userCode) AND expires_at > \(date) AND confirmed_by IS NULL"
        ).first.map(DevicePairing.init(row:))
    }

    public func completePairing(id: UUID, device: Credential, agent: Credential) async throws -> Bool {
        try await transaction { transaction in
            guard
                try await !transaction.query("DELETE FROM device_pairings WHERE id = \(id) AND confirmed_by IS NOT NULL RETURNING id").isEmpty
            else { return false }
            try await transaction.insertCredential(agent)
            try await transaction.insertCredential(device)
            return true
        }
    }
}

extension Invitation {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), emailAddress: try row.string("email_address"),
            role: try row.value("invitation_role"), tokenHash: try row.string("token_hash"), invitedBy: try row.optionalUUID("invited_by"),
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"))
    }
}

extension DevicePairing {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), deviceCodeHash: try row.string("device_code_hash"), userCode: try row.string("user_code"),
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"), confirmedBy: try row.optionalUUID("confirmed_by"),
            teamId: try row.optionalUUID("team_id"), deviceName: try row.optionalString("device_name"),
            requestedName: try row.optionalString("requested_name"), requestedFrom: try row.optionalString("requested_from"))
    }
}
