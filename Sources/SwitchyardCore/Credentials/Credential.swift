import Foundation

/// A stored API key. Only `keyHash` (SHA-256 of the secret, hex) and the 12-character `keyPrefix` are kept.
public struct Credential: Sendable, Equatable {
    public var id: UUID
    public var teamId: UUID
    /// The user it acts for (`dk-`), or who created it (`sk-`, `ak-`); nil for bootstrap keys.
    public var userId: UUID?
    public var kind: CredentialKind
    public var displayName: String
    public var keyPrefix: String
    public var keyHash: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var expiresAt: Date?
    public var revokedAt: Date?
    /// For a `dk-` key from device pairing: the `ak-` key minted beside it, revoked with it.
    public var companionId: UUID?

    public init(
        id: UUID, teamId: UUID, userId: UUID?, kind: CredentialKind, displayName: String, keyPrefix: String,
        keyHash: String, createdAt: Date, lastUsedAt: Date? = nil, expiresAt: Date? = nil, revokedAt: Date? = nil,
        companionId: UUID? = nil
    ) {
        self.id = id
        self.teamId = teamId
        self.userId = userId
        self.kind = kind
        self.displayName = displayName
        self.keyPrefix = keyPrefix
        self.keyHash = keyHash
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.companionId = companionId
    }

    /// `active`, `expired` or `revoked` at `date`.
    public func status(at date: Date) -> CredentialStatus {
        if revokedAt != nil { return .revoked }
        if let expiresAt, expiresAt <= date { return .expired }
        return .active
    }
}

/// The `key_status` of a credential.
public enum CredentialStatus: String, Sendable, Codable {
    case active
    case expired
    case revoked
}
