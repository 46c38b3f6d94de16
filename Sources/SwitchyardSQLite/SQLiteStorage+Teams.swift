import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    public func renameTeam(id: UUID, displayName: String, at date: Date) async throws -> Bool {
        try await write { connection in
            !(try await connection.query(
                "UPDATE teams SET display_name = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING id",
                [.text(displayName), .date(date), .uuid(id)]
            ).isEmpty)
        }
    }

    public func transferOwnership(teamId: UUID, from currentOwner: UUID, to newOwner: UUID, at date: Date) async throws -> Bool {
        try await transaction { connection in
            let promoted = try await connection.query(
                "UPDATE team_members SET member_role = 'owner' WHERE team_id = ? AND user_id = ? AND user_id <> ? RETURNING user_id",
                [.uuid(teamId), .uuid(newOwner), .uuid(currentOwner)])
            guard !promoted.isEmpty else { return false }
            _ = try await connection.query(
                "UPDATE team_members SET member_role = 'admin' WHERE team_id = ? AND user_id = ?", [.uuid(teamId), .uuid(currentOwner)])
            _ = try await connection.query("UPDATE teams SET updated_at = ? WHERE id = ?", [.date(date), .uuid(teamId)])
            return true
        }
    }

    public func deleteTeam(id: UUID, at date: Date) async throws -> TeamDeletion? {
        try await transaction { connection in
            guard
                try await !connection.query(
                    "UPDATE teams SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING id",
                    [.date(date), .date(date), .uuid(id)]
                ).isEmpty
            else { return nil }
            var cancelled: [UUID] = []
            let open = try await connection.query(
                "SELECT \(Self.taskSelectColumns) FROM tasks WHERE team_id = ? AND task_status IN ('pending', 'waiting', 'queued', 'running')",
                [.uuid(id)])
            for row in open {
                var task = try Self.decodeTask(row)
                guard case .transition(let status, _) = try task.take(.cancel, at: date) else { continue }
                _ = try await connection.query(
                    "UPDATE tasks SET task_status = ?, updated_at = ?, completed_at = ? WHERE id = ?",
                    [.text(status.rawValue), .date(date), .date(task.completedAt), .uuid(task.id)])
                let sequence = try await Self.nextSequence(taskId: task.id, on: connection)
                _ = try await connection.query(
                    "INSERT INTO task_events (task_id, sequence, event_type, data, created_at) VALUES (?, ?, ?, ?, ?)",
                    Self.eventBinds(task.statusEvent(sequence: sequence, message: "the team was deleted", at: date)))
                cancelled.append(task.id)
            }
            let modelKeys = try await connection.query("SELECT storage_key FROM models WHERE team_id = ?", [.uuid(id)]).map {
                try $0.string("storage_key")
            }
            _ = try await connection.query(
                "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE team_id = ?", [.date(date), .uuid(id)])
            for table in ["team_members", "invitations", "workflows", "models", "webhooks", "agents", "device_pairings", "idempotency_keys"] {
                _ = try await connection.query("DELETE FROM \(table) WHERE team_id = ?", [.uuid(id)])
            }
            return TeamDeletion(cancelledTaskIds: cancelled, modelStorageKeys: modelKeys)
        }
    }

    public func members(teamId: UUID, page: PageRequest) async throws -> Page<TeamMember> {
        let total =
            try await read("SELECT COUNT(*) AS total FROM team_members WHERE team_id = ?", [.uuid(teamId)]).first?.int("total") ?? 0
        let rows = try await read(
            """
            SELECT \(Self.userColumns.split(separator: ",").map { "u." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")),
                m.member_role, m.created_at AS joined_at
            FROM team_members m JOIN users u ON u.id = m.user_id
            WHERE m.team_id = ? ORDER BY m.member_role <> 'owner', m.created_at, u.id LIMIT ? OFFSET ?
            """,
            [.uuid(teamId), .integer(page.perPage), .integer(page.offset)])
        return Page(
            items: try rows.map { row in
                guard let role = TeamRole(rawValue: try row.string("member_role")) else { throw SQLiteDecodingError(column: "member_role") }
                return TeamMember(user: try Self.decodeUser(row), role: role, joinedAt: try row.date("joined_at"))
            }, totalCount: total)
    }

    public func setRole(userId: UUID, teamId: UUID, role: TeamRole) async throws -> Bool {
        try await write { connection in
            !(try await connection.query(
                "UPDATE team_members SET member_role = ? WHERE team_id = ? AND user_id = ? RETURNING user_id",
                [.text(role.rawValue), .uuid(teamId), .uuid(userId)]
            ).isEmpty)
        }
    }

    public func removeMember(userId: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        try await transaction { connection in
            guard
                try await !connection.query(
                    "DELETE FROM team_members WHERE team_id = ? AND user_id = ? RETURNING user_id", [.uuid(teamId), .uuid(userId)]
                ).isEmpty
            else { return false }
            // Device keys act as their user, so they end with the membership, companions included.
            _ = try await connection.query(
                """
                UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?)
                WHERE team_id = ? AND (
                    (kind = 'device' AND user_id = ?)
                    OR id IN (SELECT companion_id FROM credentials WHERE team_id = ? AND kind = 'device' AND user_id = ?))
                """,
                [.date(date), .uuid(teamId), .uuid(userId), .uuid(teamId), .uuid(userId)])
            return true
        }
    }

    // MARK: Invitations

    static let invitationColumns = "id, team_id, email_address, invitation_role, token_hash, invited_by, created_at, expires_at"

    public func insertInvitation(_ invitation: Invitation, at date: Date) async throws {
        try await transaction { connection in
            let clash = try await connection.query(
                """
                SELECT
                    (SELECT COUNT(*) FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = ? AND u.email_address = ?) AS members,
                    (SELECT COUNT(*) FROM invitations WHERE team_id = ? AND email_address = ? AND expires_at > ?) AS pending
                """,
                [
                    .uuid(invitation.teamId), .text(invitation.emailAddress), .uuid(invitation.teamId), .text(invitation.emailAddress),
                    .date(date),
                ])
            if try clash.first?.int("members") ?? 0 > 0 {
                throw SwitchyardError.conflict("\(invitation.emailAddress) is already a member of the team")
            }
            if try clash.first?.int("pending") ?? 0 > 0 {
                throw SwitchyardError.conflict("\(invitation.emailAddress) already has a pending invitation to the team")
            }
            _ = try await connection.query(
                "DELETE FROM invitations WHERE team_id = ? AND email_address = ?", [.uuid(invitation.teamId), .text(invitation.emailAddress)])
            _ = try await connection.query(
                "INSERT INTO invitations (\(Self.invitationColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    .uuid(invitation.id), .uuid(invitation.teamId), .text(invitation.emailAddress), .text(invitation.role.rawValue),
                    .text(invitation.tokenHash), .uuid(invitation.invitedBy), .date(invitation.createdAt), .date(invitation.expiresAt),
                ])
        }
    }

    public func invitations(teamId: UUID, at date: Date, page: PageRequest) async throws -> Page<Invitation> {
        let total =
            try await read("SELECT COUNT(*) AS total FROM invitations WHERE team_id = ? AND expires_at > ?", [.uuid(teamId), .date(date)])
            .first?.int("total") ?? 0
        let rows = try await read(
            "SELECT \(Self.invitationColumns) FROM invitations WHERE team_id = ? AND expires_at > ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [.uuid(teamId), .date(date), .integer(page.perPage), .integer(page.offset)])
        return Page(items: try rows.map(Self.decodeInvitation), totalCount: total)
    }

    public func deleteInvitation(id: UUID, teamId: UUID) async throws -> Bool {
        try await write { connection in
            !(try await connection.query("DELETE FROM invitations WHERE id = ? AND team_id = ? RETURNING id", [.uuid(id), .uuid(teamId)]).isEmpty)
        }
    }

    public func invitation(tokenHash: String, at date: Date) async throws -> Invitation? {
        try await read(
            "SELECT \(Self.invitationColumns) FROM invitations WHERE token_hash = ? AND expires_at > ?", [.text(tokenHash), .date(date)]
        ).first.map(Self.decodeInvitation)
    }

    public func acceptInvitation(id: UUID, userId: UUID, newUser: User?, at date: Date) async throws -> Bool {
        try await mapConstraint("a user with this email address") {
            try await transaction { connection in
                guard
                    let row = try await connection.query(
                        "DELETE FROM invitations WHERE id = ? AND expires_at > ? RETURNING team_id, invitation_role", [.uuid(id), .date(date)]
                    ).first,
                    let role = TeamRole(rawValue: try row.string("invitation_role"))
                else { return false }
                if let newUser { try await Self.insertUser(newUser, on: connection) }
                let teamId = try row.uuid("team_id")
                guard
                    try await connection.query(
                        "SELECT 1 AS found FROM team_members WHERE team_id = ? AND user_id = ?", [.uuid(teamId), .uuid(userId)]
                    )
                    .isEmpty
                else { throw SwitchyardError.conflict("you are already a member of this team") }
                try await Self.insertMembership(Membership(teamId: teamId, userId: userId, role: role, createdAt: date), on: connection)
                return true
            }
        }
    }

    static func decodeInvitation(_ row: SQLiteRow) throws -> Invitation {
        guard let role = TeamRole(rawValue: try row.string("invitation_role")) else { throw SQLiteDecodingError(column: "invitation_role") }
        return Invitation(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), emailAddress: try row.string("email_address"), role: role,
            tokenHash: try row.string("token_hash"), invitedBy: try row.optionalUUID("invited_by"), createdAt: try row.date("created_at"),
            expiresAt: try row.date("expires_at"))
    }

    // MARK: Device pairing

    public func insertPairing(_ pairing: DevicePairing) async throws {
        try await write { connection in
            _ = try await connection.query(
                """
                INSERT INTO device_pairings (id, device_code_hash, user_code, created_at, expires_at, requested_name, requested_from)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .uuid(pairing.id), .text(pairing.deviceCodeHash), .text(pairing.userCode), .date(pairing.createdAt), .date(pairing.expiresAt),
                    pairing.requestedName.map(SQLiteData.text) ?? .null, pairing.requestedFrom.map(SQLiteData.text) ?? .null,
                ])
            // Expired pairings are of no use to anyone.
            _ = try await connection.query("DELETE FROM device_pairings WHERE expires_at <= ?", [.date(pairing.createdAt)])
        }
    }

    public func confirmPairing(userCode: String, userId: UUID, teamId: UUID, deviceName: String, at date: Date) async throws -> Bool {
        try await write { connection in
            !(try await connection.query(
                """
                UPDATE device_pairings SET confirmed_by = ?, team_id = ?, device_name = ?
                WHERE user_code = ? AND expires_at > ? AND confirmed_by IS NULL RETURNING id
                """,
                [.uuid(userId), .uuid(teamId), .text(deviceName), .text(userCode), .date(date)]
            ).isEmpty)
        }
    }

    public func pairing(deviceCodeHash: String, at date: Date) async throws -> DevicePairing? {
        try await pairings(where: "device_code_hash = ? AND expires_at > ?", [.text(deviceCodeHash), .date(date)]).first
    }

    public func pendingPairing(userCode: String, at date: Date) async throws -> DevicePairing? {
        try await pairings(where: "user_code = ? AND expires_at > ? AND confirmed_by IS NULL", [.text(userCode), .date(date)]).first
    }

    private func pairings(where filter: String, _ binds: [SQLiteData]) async throws -> [DevicePairing] {
        try await read(
            """
            SELECT id, device_code_hash, user_code, created_at, expires_at, confirmed_by, team_id, device_name, requested_name, requested_from
            FROM device_pairings WHERE \(filter)
            """,
            binds
        ).map { row in
            DevicePairing(
                id: try row.uuid("id"), deviceCodeHash: try row.string("device_code_hash"), userCode: try row.string("user_code"),
                createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"), confirmedBy: try row.optionalUUID("confirmed_by"),
                teamId: try row.optionalUUID("team_id"), deviceName: row.optionalString("device_name"),
                requestedName: row.optionalString("requested_name"), requestedFrom: row.optionalString("requested_from"))
        }
    }

    public func completePairing(id: UUID, device: Credential, agent: Credential) async throws -> Bool {
        try await transaction { connection in
            guard
                try await !connection.query(
                    "DELETE FROM device_pairings WHERE id = ? AND confirmed_by IS NOT NULL RETURNING id", [.uuid(id)]
                ).isEmpty
            else { return false }
            try await Self.insertCredential(agent, on: connection)
            try await Self.insertCredential(device, on: connection)
            return true
        }
    }
}
