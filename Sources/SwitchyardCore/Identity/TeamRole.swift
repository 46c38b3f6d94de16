/// Roles of api.md §3.9, most powerful first.
public enum TeamRole: String, Sendable, CaseIterable, Codable {
    case owner
    case admin
    case member
    case viewer

    /// Owners and admins manage credentials, members and invitations (docs/decisions.md: the role table wins
    /// over the credentials page, so members cannot mint keys).
    public var canManageCredentials: Bool { self == .owner || self == .admin }

    /// Owners and admins import, edit, restore and delete workflows (api.md §3.9: admins manage all resources;
    /// members run workflows and view resources).
    public var canManageWorkflows: Bool { self == .owner || self == .admin }

    /// Everyone but viewers may change team resources and run workflows.
    public var canWrite: Bool { self != .viewer }
}

/// What a role may do in its team (api.md §3.9; docs/teams.md has the table). Every management endpoint names
/// the permission it needs, and the role matrix test walks every role × endpoint.
public enum TeamPermission: String, Sendable, CaseIterable {
    /// Read the team, its members and its resources.
    case view
    /// Run and cancel tasks, upload inputs.
    case run
    /// Rename the team; manage workflows, models, webhooks and credentials.
    case manage
    /// Invite, remove and change the roles of members; see and cancel invitations.
    case manageMembers
    /// Transfer ownership, delete the team.
    case own

    public func allows(_ role: TeamRole) -> Bool {
        switch self {
        case .view: true
        case .run: role.canWrite
        case .manage, .manageMembers: role == .owner || role == .admin
        case .own: role == .owner
        }
    }

    /// The roles that hold this permission, for error messages.
    public var rolesDescription: String {
        TeamRole.allCases.filter(allows).map(\.rawValue).joined(separator: ", ")
    }
}
