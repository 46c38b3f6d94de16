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
