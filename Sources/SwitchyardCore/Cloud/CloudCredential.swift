import Foundation

/// A cloud service a team can run tasks on with its own key (api.md §2.7). Only Comfy Cloud so far.
public enum CloudProvider: String, Sendable, CaseIterable {
    case comfyCloud = "comfy_cloud"
}

/// `credential_status`: `active` until the service refuses the key (401), then `revoked` until it is replaced.
public enum CloudCredentialStatus: String, Sendable, CaseIterable {
    case active
    case revoked
}

/// A team's key for a cloud provider: sealed with the secrets key (AES-256-GCM), never stored in clear, and shown
/// only as `key_preview` (its first 8 and last 4 characters). One per provider per team.
public struct CloudCredential: Sendable, Equatable {
    public var teamId: UUID
    public var provider: CloudProvider
    public var sealedKey: String
    public var keyPreview: String
    public var status: CloudCredentialStatus
    /// Why the status is what it is ("Comfy Cloud refused the key (401) …"); nil for a key that was never refused.
    public var statusMessage: String?
    /// Agent-targeted tasks fall back to the cloud when no agent is available (docs/decisions.md defines "available").
    public var cloudFallback: Bool
    /// When the service last accepted the key (its user endpoint answered); nil when it could not be asked.
    public var verifiedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        teamId: UUID, provider: CloudProvider, sealedKey: String, keyPreview: String, status: CloudCredentialStatus = .active,
        statusMessage: String? = nil, cloudFallback: Bool, verifiedAt: Date?, createdAt: Date, updatedAt: Date
    ) {
        self.teamId = teamId
        self.provider = provider
        self.sealedKey = sealedKey
        self.keyPreview = keyPreview
        self.status = status
        self.statusMessage = statusMessage
        self.cloudFallback = cloudFallback
        self.verifiedAt = verifiedAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The first 8 and last 4 characters of a key, with `...` between (`cfy_xxxx...xxxx`); a key of 12 characters or
    /// fewer shows only its first 4, so a preview never is the whole key.
    public static func preview(of key: String) -> String {
        let characters = Array(key)
        guard characters.count > 12 else { return String(characters.prefix(min(4, characters.count / 2))) + "..." }
        return String(characters.prefix(8)) + "..." + String(characters.suffix(4))
    }
}

/// Cloud provider credentials (api.md §2.7).
public protocol CloudCredentialRepository: Sendable {
    /// Stores the team's credential for its provider, replacing one there is (its `created_at` stays); answers what
    /// is stored.
    func putCloudCredential(_ credential: CloudCredential) async throws -> CloudCredential
    func cloudCredential(teamId: UUID, provider: CloudProvider) async throws -> CloudCredential?
    /// Every team's active credential for `provider` (the cloud runners to start).
    func activeCloudCredentials(provider: CloudProvider) async throws -> [CloudCredential]
    /// False when the team had none.
    func deleteCloudCredential(teamId: UUID, provider: CloudProvider) async throws -> Bool
    /// Sets the status of the credential whose sealed key is `sealedKey` (a key replaced meanwhile is left alone);
    /// false when there is no such credential.
    func setCloudCredentialStatus(
        teamId: UUID, provider: CloudProvider, sealedKey: String, status: CloudCredentialStatus, message: String?, at date: Date
    ) async throws -> Bool
}
