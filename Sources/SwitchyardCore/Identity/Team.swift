import Foundation

/// The isolation boundary: every resource belongs to exactly one team.
public struct Team: Sendable, Equatable {
    public var id: UUID
    public var displayName: String
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: UUID, displayName: String, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.displayName = displayName
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A user's place in a team.
public struct Membership: Sendable, Equatable {
    public var teamId: UUID
    public var userId: UUID
    public var role: TeamRole
    public var createdAt: Date

    public init(teamId: UUID, userId: UUID, role: TeamRole, createdAt: Date) {
        self.teamId = teamId
        self.userId = userId
        self.role = role
        self.createdAt = createdAt
    }
}
