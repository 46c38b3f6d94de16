import Foundation
import Hummingbird
import SwitchyardCore

/// What a change to a team must tell the rest of the server: cached keys to forget, agents to disconnect, tasks
/// whose attempts must stop, files to remove.
struct TeamEffects: Sendable {
    let keyCache: CredentialCache
    let dispatcher: Dispatcher
    let hub: TaskEventHub
    let objects: ObjectStorage
}

/// Teams, members and invitations (api.md §2.11, §3.9; docs/teams.md). `GET/POST /teams` are per-user; the
/// rest act on the team of the request (`X-Team-ID` or the `dk-` key's team) and check the caller's role.
struct TeamsController {
    let storage: any SwitchyardStorage
    let clock: any WallClock
    let effects: TeamEffects
    /// `teams.selfService`: whether `POST /teams` is open to every signed-in user.
    var selfServiceTeams = true

    /// `/teams` (per-user surface).
    func addUserRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get("teams", use: myTeams)
        group.post("teams", use: createTeam)
    }

    /// `/teams/current…`, `/members…`, `/invitations…` (management surface).
    func addTeamRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get("teams/current", use: currentTeam)
        group.put("teams/current", use: renameTeam)
        group.delete("teams/current", use: deleteTeam)
        group.post("teams/current/transfer", use: transfer)
        group.post("teams/current/leave", use: leave)
        group.get("members", use: members)
        group.put("members/{userId}", use: setRole)
        group.delete("members/{userId}", use: removeMember)
        group.post("invitations", use: invite)
        group.get("invitations", use: invitations)
        group.delete("invitations/{invitationId}", use: cancelInvitation)
    }

    // MARK: Bodies

    /// One of the caller's teams.
    struct TeamMembership: Encodable, Sendable {
        let id: UUID
        let displayName: String
        let memberRole: String
        let createdAt: Date
    }

    /// The team of the request, with the caller's role in it (null for a key without one).
    struct CurrentTeam: ResponseEncodable {
        let id: UUID
        let displayName: String
        @Nullable var memberRole: String?
        let createdAt: Date
        let updatedAt: Date
    }

    struct Deleted: ResponseEncodable {
        let isSuccess = true
        let cancelledTaskCount: Int
    }

    struct Member: Encodable, Sendable {
        let userId: UUID
        let emailAddress: String
        let displayName: String
        let firstName: String
        let lastName: String
        let memberRole: String
        let joinedAt: Date
    }

    /// A new invitation: its token is shown this once.
    struct Invited: ResponseEncodable {
        let id: UUID
        let invitationToken: String
        let expiresAt: Date
    }

    struct PendingInvitation: Encodable, Sendable {
        let id: UUID
        let emailAddress: String
        let invitationRole: String
        let createdAt: Date
        let expiresAt: Date
    }

    // MARK: Teams

    @Sendable func myTeams(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<TeamMembership> {
        let caller = try context.requireCaller()
        var memberships = try await storage.teamMemberships(userId: try caller.requireUser())
        if caller.kind == .device { memberships = memberships.filter { $0.team.id == caller.teamId } }
        let page = try request.pageRequest
        let slice = memberships.dropFirst(page.offset).prefix(page.perPage)
        let teams = slice.map {
            TeamMembership(id: $0.team.id, displayName: $0.team.displayName, memberRole: $0.role.rawValue, createdAt: $0.team.createdAt)
        }
        return Listing("team_list", teams, page: page, totalCount: memberships.count)
    }

    @Sendable func createTeam(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Identified> {
        let caller = try context.requireCaller()
        guard caller.kind == .session else {
            throw SwitchyardError.forbidden("a dk- device key is bound to one team; create teams with a user session")
        }
        guard selfServiceTeams else {
            throw SwitchyardError.forbidden(
                "creating teams is switched off on this server (teams.selfService = false); ask an owner of a team to invite you")
        }
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let name = try fields.required("display_name") { key throws(SwitchyardError) in try fields.string(key, length: 1...100, trim: true) }
        let now = clock.now()
        let team = Team(id: UUIDv7.make(at: now), displayName: name, createdAt: now, updatedAt: now)
        let userId = try caller.requireUser()
        try await storage.insertTeam(team, owner: Membership(teamId: team.id, userId: userId, role: .owner, createdAt: now))
        context.logger.info("team created", metadata: ["created_team_id": "\(team.id.lowercased)"])
        return EditedResponse(status: .created, response: Identified(id: team.id))
    }

    @Sendable func currentTeam(_ request: Request, context: SwitchyardRequestContext) async throws -> CurrentTeam {
        let caller = try context.requireCaller()
        guard let team = try await storage.team(id: try caller.requireTeam()) else { throw SwitchyardError.notFound("team not found") }
        return CurrentTeam(
            id: team.id, displayName: team.displayName, memberRole: caller.role?.rawValue, createdAt: team.createdAt, updatedAt: team.updatedAt)
    }

    @Sendable func renameTeam(_ request: Request, context: SwitchyardRequestContext) async throws -> Identified {
        let caller = try context.requireCaller()
        try caller.require(.manage, to: "rename the team")
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let name = try fields.required("display_name") { key throws(SwitchyardError) in try fields.string(key, length: 1...100, trim: true) }
        let teamId = try caller.requireTeam()
        guard try await storage.renameTeam(id: teamId, displayName: name, at: clock.now()) else { throw SwitchyardError.notFound("team not found") }
        return Identified(id: teamId)
    }

    @Sendable func transfer(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        try caller.require(.own, to: "transfer ownership")
        try caller.requireSession(to: "transfer ownership")
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let raw = try fields.required("new_owner_id") { key throws(SwitchyardError) in try fields.string(key) }
        guard let newOwner = UUID(text: raw) else { throw SwitchyardError.invalid("field \"new_owner_id\": \"\(raw)\" is not a UUID") }
        let userId = try caller.requireUser()
        guard newOwner != userId else { throw SwitchyardError.invalid("field \"new_owner_id\": you already own the team") }
        guard try await storage.transferOwnership(teamId: try caller.requireTeam(), from: userId, to: newOwner, at: clock.now()) else {
            throw SwitchyardError.invalid("field \"new_owner_id\": \(newOwner.lowercased) is not a member of the team")
        }
        context.logger.info("team ownership transferred", metadata: ["new_owner_id": "\(newOwner.lowercased)"])
        return Success()
    }

    /// Deletes the team (owner only): unfinished tasks are cancelled and their agents told to stop, every key is
    /// revoked and agents connected with the team's keys are disconnected; model files are removed.
    @Sendable func deleteTeam(_ request: Request, context: SwitchyardRequestContext) async throws -> Deleted {
        let caller = try context.requireCaller()
        try caller.require(.own, to: "delete the team")
        try caller.requireSession(to: "delete the team")
        let teamId = try caller.requireTeam()
        guard let deletion = try await storage.deleteTeam(id: teamId, at: clock.now()) else { throw SwitchyardError.notFound("team not found") }
        effects.keyCache.invalidate(teamId: teamId)
        for taskId in deletion.cancelledTaskIds {
            effects.hub.signal(taskId)
            await effects.dispatcher.cancelled(taskId: taskId)
        }
        await effects.dispatcher.credentialsRevoked(teamId: teamId, credentialIds: nil, reason: "the team was deleted")
        for key in deletion.modelStorageKeys {
            do {
                try await effects.objects.client.deleteObject(key: key)
            } catch {
                context.logger.warning("could not delete a model file of a deleted team", metadata: ["key": "\(key)", "error": "\(error)"])
            }
        }
        context.logger.notice("team deleted", metadata: ["cancelled_tasks": "\(deletion.cancelledTaskIds.count)"])
        return Deleted(cancelledTaskCount: deletion.cancelledTaskIds.count)
    }

    /// Leaves the team; the owner must transfer ownership (or delete the team) first.
    @Sendable func leave(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        try caller.requireSession(to: "leave the team")
        guard caller.role != .owner else {
            throw SwitchyardError.conflict("the owner cannot leave the team; transfer ownership first (POST /teams/current/transfer) or delete it")
        }
        _ = try await storage.removeMember(userId: try caller.requireUser(), teamId: try caller.requireTeam(), at: clock.now())
        return Success()
    }

    // MARK: Members

    @Sendable func members(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<Member> {
        let caller = try context.requireCaller()
        let page = try request.pageRequest
        let result = try await storage.members(teamId: try caller.requireTeam(), page: page)
        let members = result.items.map { member in
            Member(
                userId: member.user.id, emailAddress: member.user.emailAddress, displayName: member.user.displayName,
                firstName: member.user.firstName, lastName: member.user.lastName, memberRole: member.role.rawValue, joinedAt: member.joinedAt)
        }
        return Listing("member_list", members, page: page, totalCount: result.totalCount)
    }

    /// `PUT /members/{userId}` with `{"member_role": "admin" | "member" | "viewer"}` (`role` is accepted too).
    @Sendable func setRole(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        try caller.require(.manageMembers, to: "change roles")
        try caller.requireSession(to: "change roles")
        let userId = try context.parameters.requireUUID("userId")
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let key = fields.has("member_role") || !fields.has("role") ? "member_role" : "role"
        let role = try fields.required(key) { key throws(SwitchyardError) in try fields.enumeration(key, TeamRole.self) }
        guard role != .owner else {
            throw SwitchyardError.invalid("field \"\(key)\": owner is given only by POST /teams/current/transfer; use admin, member or viewer")
        }
        guard userId != caller.userId else { throw SwitchyardError.forbidden("you cannot change your own role") }
        let teamId = try caller.requireTeam()
        guard let current = try await storage.role(userId: userId, teamId: teamId) else { throw SwitchyardError.notFound("member not found") }
        guard current != .owner else { throw SwitchyardError.forbidden("the owner's role changes only by transferring ownership") }
        guard try await storage.setRole(userId: userId, teamId: teamId, role: role) else { throw SwitchyardError.notFound("member not found") }
        context.logger.info("member role changed", metadata: ["member_id": "\(userId.lowercased)", "role": "\(role.rawValue)"])
        return Success()
    }

    /// Removes a member: their session for the team and their device keys end at once; keys they created stay.
    @Sendable func removeMember(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let caller = try context.requireCaller()
        try caller.require(.manageMembers, to: "remove members")
        try caller.requireSession(to: "remove members")
        let userId = try context.parameters.requireUUID("userId")
        guard userId != caller.userId else {
            throw SwitchyardError.invalid("you cannot remove yourself; leave with POST /teams/current/leave")
        }
        let teamId = try caller.requireTeam()
        guard let current = try await storage.role(userId: userId, teamId: teamId) else { throw SwitchyardError.notFound("member not found") }
        guard current != .owner else { throw SwitchyardError.forbidden("the owner cannot be removed") }
        guard try await storage.removeMember(userId: userId, teamId: teamId, at: clock.now()) else {
            throw SwitchyardError.notFound("member not found")
        }
        context.logger.info("member removed", metadata: ["member_id": "\(userId.lowercased)"])
        return Success()
    }

    // MARK: Invitations

    @Sendable func invite(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Invited> {
        let caller = try context.requireCaller()
        try caller.require(.manageMembers, to: "invite members")
        try caller.requireSession(to: "invite members")
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let email = try fields.required("email_address") { key throws(SwitchyardError) in try fields.string(key, length: 3...254, trim: true) }
            .lowercased()
        guard Self.looksLikeEmail(email) else { throw SwitchyardError.invalid("field \"email_address\": \"\(email)\" is not an email address") }
        let role = try fields.required("invitation_role") { key throws(SwitchyardError) in try fields.enumeration(key, TeamRole.self) }
        guard role != .owner else {
            throw SwitchyardError.invalid("field \"invitation_role\": invite as admin, member or viewer; ownership moves only by transfer")
        }
        let now = clock.now()
        var random = SystemRandomNumberGenerator()
        let token = Invitation.tokenPrefix + CredentialSecret.randomString(length: 43, using: &random)
        let invitation = Invitation(
            id: UUIDv7.make(at: now), teamId: try caller.requireTeam(), emailAddress: email, role: role, tokenHash: SecretHasher.keyHash(token),
            invitedBy: caller.userId, createdAt: now, expiresAt: now.addingTimeInterval(Invitation.lifetime))
        try await storage.insertInvitation(invitation, at: now)
        context.logger.info("invitation created", metadata: ["invitation_id": "\(invitation.id.lowercased)"])
        // No mail server: the token is returned once, for the admin to share; only its hash is stored.
        return EditedResponse(status: .created, response: Invited(id: invitation.id, invitationToken: token, expiresAt: invitation.expiresAt))
    }

    @Sendable func invitations(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<PendingInvitation> {
        let caller = try context.requireCaller()
        try caller.require(.manageMembers, to: "see invitations")
        let page = try request.pageRequest
        let result = try await storage.invitations(teamId: try caller.requireTeam(), at: clock.now(), page: page)
        let invitations = result.items.map {
            PendingInvitation(
                id: $0.id, emailAddress: $0.emailAddress, invitationRole: $0.role.rawValue, createdAt: $0.createdAt, expiresAt: $0.expiresAt)
        }
        return Listing("invitation_list", invitations, page: page, totalCount: result.totalCount)
    }

    @Sendable func cancelInvitation(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        try caller.require(.manageMembers, to: "cancel invitations")
        try caller.requireSession(to: "cancel invitations")
        guard try await storage.deleteInvitation(id: try context.parameters.requireUUID("invitationId"), teamId: try caller.requireTeam()) else {
            throw SwitchyardError.notFound("invitation not found")
        }
        return Response(status: .noContent)
    }

    static func looksLikeEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty && !text.contains(where: \.isWhitespace)
    }
}
