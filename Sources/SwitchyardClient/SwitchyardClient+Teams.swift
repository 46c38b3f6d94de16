import AsyncHTTPClient
import Foundation
import SwitchyardCore

// Users, teams, members and invitations (api.md §2.11, docs/teams.md). Team-scoped calls act in the client's
// `teamId` (`X-Team-ID`); use `inTeam(_:)` for a client that acts in another of the caller's teams. Changing
// members, roles and the team itself needs a user session (`signIn`), not a key.

/// The signed-in user (`GET /users/me`).
public struct UserProfile: Decodable, Sendable, Equatable {
    public let id: UUID
    public let emailAddress: String
    public let displayName: String
    public let firstName: String
    public let lastName: String
    /// The teams the user belongs to, with the user's role in each.
    public let teams: [Team]

    public struct Team: Decodable, Sendable, Equatable {
        public let id: UUID
        public let displayName: String
        public let role: TeamRole

        enum CodingKeys: String, CodingKey {
            case id
            case displayName = "display_name"
            case role = "member_role"
        }
    }

    enum CodingKeys: String, CodingKey {
        case id
        case emailAddress = "email_address"
        case displayName = "display_name"
        case firstName = "first_name"
        case lastName = "last_name"
        case teams = "team_list"
    }
}

/// A team as its members see it (`GET /teams`, `GET /teams/current`); `role` is the caller's.
public struct TeamInfo: Decodable, Sendable, Equatable {
    public let id: UUID
    public let displayName: String
    public let role: TeamRole?
    public let createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id
        case displayName = "display_name"
        case role = "member_role"
        case createdAt = "created_at"
    }
}

/// A member of the current team (`GET /members`).
public struct MemberInfo: Decodable, Sendable, Equatable {
    public let userId: UUID
    public let emailAddress: String
    public let displayName: String
    public let role: TeamRole
    public let joinedAt: Date

    enum CodingKeys: String, CodingKey {
        case userId = "user_id"
        case emailAddress = "email_address"
        case displayName = "display_name"
        case role = "member_role"
        case joinedAt = "joined_at"
    }
}

/// An invitation: `token` only in the answer that created it (it is stored hashed, and shown once).
public struct InvitationInfo: Decodable, Sendable, Equatable {
    public let id: UUID
    public let emailAddress: String?
    public let role: TeamRole?
    public let token: String?
    public let expiresAt: Date

    enum CodingKeys: String, CodingKey {
        case id
        case emailAddress = "email_address"
        case role = "invitation_role"
        case token = "invitation_token"
        case expiresAt = "expires_at"
    }
}

/// What accepting an invitation gives: the membership and a session in that team.
public struct AcceptedInvitation: Decodable, Sendable, Equatable {
    public let teamId: UUID
    public let userId: UUID
    public let role: TeamRole
    /// Whether the invitation created the account (a new address sets its password with it).
    public let accountCreated: Bool
    public let accessToken: String

    enum CodingKeys: String, CodingKey {
        case teamId = "team_id"
        case userId = "user_id"
        case role = "member_role"
        case accountCreated = "account_created"
        case accessToken = "access_token"
    }
}

extension SwitchyardClient {
    /// The same client acting in team `teamId`.
    public func inTeam(_ teamId: UUID) -> SwitchyardClient {
        var copy = self
        copy.teamId = teamId.lowercased
        return copy
    }

    /// `GET /users/me`: the caller and the teams it belongs to.
    public func me() async throws -> UserProfile {
        try await send(.GET, "/users/me")
    }

    /// The caller's teams.
    public func teams(page: Int = 1, perPage: Int = 50) async throws -> Page<TeamInfo> {
        try await send(.GET, "/teams", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Creates a team owned by the signed-in user; its id.
    public func createTeam(displayName: String) async throws -> UUID {
        let created: Created = try await send(.POST, "/teams", json: JSONValue.object(["display_name": .string(displayName)]), expecting: [201])
        return created.id
    }

    /// `GET /teams/current`: the team the client acts in, with the caller's role.
    public func currentTeam() async throws -> TeamInfo {
        try await send(.GET, "/teams/current")
    }

    /// Renames the current team (owner or admin).
    public func renameTeam(displayName: String) async throws {
        try await perform(.PUT, "/teams/current", json: JSONValue.object(["display_name": .string(displayName)]))
    }

    /// Deletes the current team (owner only): its unfinished tasks are cancelled and its keys revoked. Answers how
    /// many tasks were cancelled.
    public func deleteTeam() async throws -> Int {
        struct Deleted: Decodable { let cancelled_task_count: Int }
        let deleted: Deleted = try await send(.DELETE, "/teams/current")
        return deleted.cancelled_task_count
    }

    /// Hands ownership to another member (the caller becomes an admin).
    public func transferTeam(to userId: UUID) async throws {
        try await perform(.POST, "/teams/current/transfer", json: JSONValue.object(["new_owner_id": .string(userId.lowercased)]))
    }

    /// Leaves the current team (an owner hands it over first).
    public func leaveTeam() async throws {
        try await perform(.POST, "/teams/current/leave")
    }

    /// `GET /members`: the current team's members with their roles.
    public func members(page: Int = 1, perPage: Int = 50) async throws -> Page<MemberInfo> {
        try await send(.GET, "/members", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Sets a member's role (`admin`, `member` or `viewer`; ownership moves only by `transferTeam`).
    public func setRole(of userId: UUID, to role: TeamRole) async throws {
        try await perform(.PUT, "/members/\(userId.lowercased)", json: JSONValue.object(["member_role": .string(role.rawValue)]))
    }

    /// Removes a member (not the owner); their sessions and keys stop acting in the team.
    public func removeMember(_ userId: UUID) async throws {
        try await perform(.DELETE, "/members/\(userId.lowercased)")
    }

    /// Invites an address into the current team; the answer carries the invitation token, once.
    public func invite(emailAddress: String, role: TeamRole) async throws -> InvitationInfo {
        let body: JSONValue = ["email_address": .string(emailAddress), "invitation_role": .string(role.rawValue)]
        return try await send(.POST, "/invitations", json: body, expecting: [200, 201])
    }

    /// The current team's pending invitations.
    public func invitations(page: Int = 1, perPage: Int = 50) async throws -> Page<InvitationInfo> {
        try await send(.GET, "/invitations", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Cancels a pending invitation; its token no longer works.
    public func cancelInvitation(_ id: UUID) async throws {
        try await perform(.DELETE, "/invitations/\(id.lowercased)")
    }

    /// Accepts an invitation with its token: a new address sets `password` with it; an existing account proves
    /// itself with its password, or with this client's session when it is that user's.
    public static func acceptInvitation(
        server: String, token: String, password: String?, session: String? = nil, httpClient: HTTPClient = .shared
    ) async throws -> AcceptedInvitation {
        let client = SwitchyardClient(server: server, token: session ?? "", httpClient: httpClient)
        var body: [String: JSONValue] = ["invitation_token": .string(token)]
        if let password { body["password"] = .string(password) }
        return try await client.send(.POST, "/invitations/accept", json: JSONValue.object(body))
    }
}
