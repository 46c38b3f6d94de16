import Foundation
import Hummingbird
import SwitchyardCore

/// `GET /users/me` (api.md §2.11): the caller's profile and teams.
struct UsersController {
    let storage: any SwitchyardStorage

    struct TeamItem: Encodable {
        let id: UUID
        let displayName: String
        let memberRole: TeamRole

        enum CodingKeys: String, CodingKey {
            case id
            case displayName = "display_name"
            case memberRole = "member_role"
        }
    }

    struct Profile: ResponseEncodable {
        let id: UUID
        let firstName: String
        let lastName: String
        let displayName: String
        let emailAddress: String
        let teamList: [TeamItem]
        let featureFlags: FeatureFlags

        enum CodingKeys: String, CodingKey {
            case id
            case firstName = "first_name"
            case lastName = "last_name"
            case displayName = "display_name"
            case emailAddress = "email_address"
            case teamList = "team_list"
            case featureFlags = "feature_flags"
        }
    }

    /// The documented `feature_flags` shape. A self-hosted Switchyard has no licence gate: what exists is
    /// on, what is not built is off, and quotas are -1 (unlimited).
    struct FeatureFlags: Encodable {
        struct Namespace: Encodable {
            let features: [String: Bool]
            let quotas: [String: Int]
        }

        let global = Namespace(
            features: [
                "registration": false, "oauth": false, "email": false, "oidc_provider": false, "mcp_server": false, "auto_team": false,
                "notifications": false,
            ],
            quotas: ["max_users": -1, "max_teams": -1, "max_agents": -1, "max_concurrent_tasks": -1]
        )
        let account = Namespace(
            features: ["manual_team_creation": true, "team_invitation_accept": true],
            quotas: ["max_owned_teams": -1]
        )
        let teams: [String: Namespace] = [:]
    }

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get("users/me", use: me)
    }

    @Sendable func me(_ request: Request, context: SwitchyardRequestContext) async throws -> Profile {
        let caller = try context.requireCaller()
        guard let user = try await storage.user(id: try caller.requireUser()) else {
            throw SwitchyardError.unauthenticated("the signed-in user no longer exists")
        }
        var memberships = try await storage.teamMemberships(userId: user.id)
        if caller.kind == .device, let teamId = caller.teamId {
            // A device key is bound to one team; it does not reveal the user's other teams.
            memberships = memberships.filter { $0.team.id == teamId }
        }
        return Profile(
            id: user.id, firstName: user.firstName, lastName: user.lastName, displayName: user.displayName, emailAddress: user.emailAddress,
            teamList: memberships.map { TeamItem(id: $0.team.id, displayName: $0.team.displayName, memberRole: $0.role) },
            featureFlags: FeatureFlags()
        )
    }
}
