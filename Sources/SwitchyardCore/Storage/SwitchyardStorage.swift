import Foundation

/// Everything the server keeps durably. SQLite and PostgreSQL both implement it and both pass the one
/// storage contract suite (`Tests/SwitchyardStorageTests`). Every team-owned read takes the team id, so a
/// row of another team is indistinguishable from a missing one.
public protocol SwitchyardStorage: IdentityRepository, CredentialRepository, SettingsRepository, WorkflowRepository, TaskRepository,
    DispatchRepository,
    ModelRepository, RetentionRepository, TeamRepository, PairingRepository, WebhookRepository, MultipartRepository,
    CloudCredentialRepository
{
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    var backendName: String { get }
    /// How replicas sharing this database tell each other about task changes.
    var notifier: any ReplicaNotifier { get }
    /// Applies pending schema migrations (idempotent; safe when several servers start at once).
    func migrate() async throws
    /// Succeeds when the database answers a trivial query.
    func ping() async throws
    /// Releases connections. The storage must not be used afterwards.
    func close() async throws
    /// Whether `error` says the database cannot be reached now (down, restarting, connection lost) rather than that
    /// the request was wrong: the API answers 503 with `Retry-After` for these.
    func isUnavailable(_ error: any Error) -> Bool
    /// False while the storage knows the database is unreachable (its listening connection was lost and not yet
    /// re-established): requests then get 503 at once.
    var isReachable: Bool { get }
    /// The connection pool's size and how many database operations are in flight now (holding or waiting for a
    /// connection), for `/metrics`.
    var poolUsage: DatabasePoolUsage { get }
}

/// See `SwitchyardStorage.poolUsage`.
public struct DatabasePoolUsage: Sendable, Equatable {
    /// The most connections the storage opens.
    public var maximumConnections: Int
    /// Operations holding a connection or waiting for one.
    public var operationsInFlight: Int

    public init(maximumConnections: Int, operationsInFlight: Int) {
        self.maximumConnections = maximumConnections
        self.operationsInFlight = operationsInFlight
    }
}

extension SwitchyardStorage {
    public func isUnavailable(_ error: any Error) -> Bool { false }
    public var isReachable: Bool { true }
}

/// Users, teams and memberships.
public protocol IdentityRepository: Sendable {
    /// Creates a user; `.conflict` when the email address is taken.
    func insertUser(_ user: User) async throws
    func user(id: UUID) async throws -> User?
    /// Looks a user up by (case-insensitive) email address.
    func user(emailAddress: String) async throws -> User?
    /// Ends every session of the user: bumps the token version (and replaces the password hash when one is
    /// given). The new version, or nil when there is no such user.
    func endSessions(userId: UUID, newPasswordHash: String?, at: Date) async throws -> Int?
    /// Creates a team together with its owner's membership, atomically.
    func insertTeam(_ team: Team, owner: Membership) async throws
    func team(id: UUID) async throws -> Team?
    /// Adds a user to a team; `.conflict` when already a member.
    func insertMembership(_ membership: Membership) async throws
    /// The teams `userId` belongs to, oldest first, with the user's role in each.
    func teamMemberships(userId: UUID) async throws -> [TeamMembership]
    /// The user's role in the team, or nil when not a member.
    func role(userId: UUID, teamId: UUID) async throws -> TeamRole?
    /// Creates the first owner, team, keys and settings in one transaction, unless the database was
    /// already bootstrapped; returns whether it did.
    func bootstrap(_ plan: BootstrapPlan) async throws -> Bool
}

/// A team as seen by one of its members.
public struct TeamMembership: Sendable, Equatable {
    public var team: Team
    public var role: TeamRole

    public init(team: Team, role: TeamRole) {
        self.team = team
        self.role = role
    }
}

/// What a fresh deployment starts with (see `IdentityRepository.bootstrap`).
public struct BootstrapPlan: Sendable {
    public var user: User
    public var team: Team
    public var credentials: [Credential]
    public var settings: [String: String]

    public init(user: User, team: Team, credentials: [Credential], settings: [String: String]) {
        self.user = user
        self.team = team
        self.credentials = credentials
        self.settings = settings
    }
}

/// Stored API keys.
public protocol CredentialRepository: Sendable {
    /// Stores a new credential; `.conflict` on a duplicate id or hash.
    func insertCredential(_ credential: Credential) async throws
    /// The credential whose secret hashes to `keyHash`, whatever its status (the caller checks it).
    func credential(keyHash: String) async throws -> Credential?
    func credential(id: UUID, teamId: UUID) async throws -> Credential?
    /// The team's credentials, newest first, optionally of one kind.
    func credentials(teamId: UUID, kind: CredentialKind?, page: PageRequest) async throws -> Page<Credential>
    /// Revokes a credential of the team. Returns false when no such credential exists in the team; revoking
    /// an already revoked one keeps its first revocation time and returns true.
    func revokeCredential(id: UUID, teamId: UUID, at date: Date) async throws -> Bool
    /// Records use of a credential (the caller throttles how often).
    func markCredentialUsed(id: UUID, at date: Date) async throws
}

/// Small deployment-wide values (signing secrets, bootstrap marker).
public protocol SettingsRepository: Sendable {
    func setting(_ key: String) async throws -> String?
    /// Returns the stored value, inserting `value` first when the key is absent (first writer wins).
    func settingInsertingIfAbsent(_ key: String, value: String) async throws -> String
    /// Replaces the value of `key` when it is still `old` (compare-and-set); false when another writer changed it.
    func replaceSetting(_ key: String, from old: String, to new: String) async throws -> Bool
}

/// Names of the settings rows the server uses.
public enum SettingKey {
    public static let bootstrappedAt = "bootstrapped_at"
    /// The single session-signing secret of versions before named keys (read once, into the key ring, as `s0`).
    public static let sessionSigningSecret = "session_signing_secret"
    /// The session-signing key ring (sealed JSON; `switchyard secrets rotate`).
    public static let sessionSigningKeys = "session_signing_keys"
    /// Prefix of the decoy bcrypt hash per cost (`login_decoy_hash.12`).
    public static let loginDecoyHash = "login_decoy_hash"
    /// The embedded object store's key pair (created on the first start that serves it).
    public static let embeddedS3AccessKeyId = "embedded_s3_access_key_id"
    public static let embeddedS3SecretAccessKey = "embedded_s3_secret_access_key"
}
