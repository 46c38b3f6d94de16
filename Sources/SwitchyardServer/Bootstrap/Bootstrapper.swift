import Foundation
import Logging
import SwitchyardCore
import SwitchyardObjectStore

/// The secrets a first start created, shown exactly once (printed, and written to `bootstrap.json`, 0600).
public struct BootstrapResult: Sendable, Codable, Equatable {
    public let emailAddress: String
    public let password: String
    public let teamId: UUID
    public let integrationKey: String
    public let agentKey: String
    /// The embedded object store, for stock S3 tools (`aws s3`, boto3); nil when an external S3 is configured.
    public var objectStore: ObjectStoreAccess?

    enum CodingKeys: String, CodingKey {
        case emailAddress = "email_address"
        case password
        case teamId = "team_id"
        case integrationKey = "integration_key"
        case agentKey = "agent_key"
        case s3Endpoint = "s3_endpoint"
        case s3Bucket = "s3_bucket"
        case s3Region = "s3_region"
        case s3AccessKeyId = "s3_access_key_id"
        case s3SecretAccessKey = "s3_secret_access_key"
    }

    public init(emailAddress: String, password: String, teamId: UUID, integrationKey: String, agentKey: String) {
        self.emailAddress = emailAddress
        self.password = password
        self.teamId = teamId
        self.integrationKey = integrationKey
        self.agentKey = agentKey
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(emailAddress, forKey: .emailAddress)
        try container.encode(password, forKey: .password)
        try container.encode(teamId.lowercased, forKey: .teamId)
        try container.encode(integrationKey, forKey: .integrationKey)
        try container.encode(agentKey, forKey: .agentKey)
        if let objectStore {
            try container.encode(objectStore.endpoint, forKey: .s3Endpoint)
            try container.encode(objectStore.bucket, forKey: .s3Bucket)
            try container.encode(objectStore.region, forKey: .s3Region)
            try container.encode(objectStore.credentials.accessKeyId, forKey: .s3AccessKeyId)
            try container.encode(objectStore.credentials.secretAccessKey, forKey: .s3SecretAccessKey)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            emailAddress: try container.decode(String.self, forKey: .emailAddress), password: try container.decode(String.self, forKey: .password),
            teamId: try container.decode(UUID.self, forKey: .teamId), integrationKey: try container.decode(String.self, forKey: .integrationKey),
            agentKey: try container.decode(String.self, forKey: .agentKey))
        if let endpoint = try container.decodeIfPresent(String.self, forKey: .s3Endpoint) {
            objectStore = ObjectStoreAccess(
                endpoint: endpoint, bucket: try container.decode(String.self, forKey: .s3Bucket),
                region: try container.decode(String.self, forKey: .s3Region),
                credentials: S3Credentials(
                    accessKeyId: try container.decode(String.self, forKey: .s3AccessKeyId),
                    secretAccessKey: try container.decode(String.self, forKey: .s3SecretAccessKey)))
        }
    }
}

/// How to reach the object store with a stock S3 client.
public struct ObjectStoreAccess: Sendable, Equatable {
    public var endpoint: String
    public var bucket: String
    public var region: String
    public var credentials: S3Credentials
}

/// First-start set-up: on an empty database, an owner with a random password, a team, one `sk-` and one
/// `ak-` key, in one transaction. A database that was bootstrapped before is left alone.
struct Bootstrapper {
    let storage: any SwitchyardStorage
    let configuration: ServerConfiguration
    let clock: any WallClock
    let logger: Logger
    /// The embedded store's access, recorded in `bootstrap.json` when this start bootstraps.
    var objectStore: ObjectStoreAccess?

    func run() async throws -> BootstrapResult? {
        if try await storage.setting(SettingKey.bootstrappedAt) != nil {
            try refreshSecretsFile()
            return nil
        }
        let now = clock.now()
        var random = SystemRandomNumberGenerator()
        let password = CredentialSecret.randomString(length: 24, using: &random)
        let passwordHash = try await SecretHasher.hashPassword(password, cost: configuration.bcryptCost, refusable: false)
        let user = User(
            id: UUIDv7.make(at: now), emailAddress: configuration.adminEmail.lowercased(), displayName: "Administrator",
            passwordHash: passwordHash, createdAt: now, updatedAt: now)
        let team = Team(id: UUIDv7.make(at: now), displayName: "Default team", createdAt: now, updatedAt: now)
        let integrationKey = CredentialSecret.generate(kind: .integration)
        let agentKey = CredentialSecret.generate(kind: .agent)
        let credentials = [(integrationKey, "bootstrap integration key"), (agentKey, "bootstrap agent key")].map { secret, name in
            Credential(
                id: UUIDv7.make(at: now), teamId: team.id, userId: user.id, kind: CredentialKind(secret: secret) ?? .integration,
                displayName: name, keyPrefix: CredentialSecret.displayPrefix(of: secret), keyHash: SecretHasher.keyHash(secret), createdAt: now
            )
        }
        guard try await storage.bootstrap(BootstrapPlan(user: user, team: team, credentials: credentials, settings: [:])) else {
            return nil
        }
        var result = BootstrapResult(
            emailAddress: user.emailAddress, password: password, teamId: team.id, integrationKey: integrationKey, agentKey: agentKey
        )
        result.objectStore = objectStore
        try Self.writeSecretsFile(result, to: configuration.bootstrapFilePath)
        logger.notice("bootstrapped a new deployment", metadata: ["team_id": "\(team.id.lowercased)", "owner": "\(user.emailAddress)"])
        return result
    }

    /// A later start on another embedded-store port (or bucket) brings `bootstrap.json`'s `s3_*` in step, so the
    /// tools that read it (the CLI, `aws s3`) reach the store where it now is. Nothing else in the file changes.
    func refreshSecretsFile() throws {
        let path = configuration.bootstrapFilePath
        guard let objectStore, let data = FileManager.default.contents(atPath: path),
            var recorded = try? JSONDecoder().decode(BootstrapResult.self, from: data), recorded.objectStore != objectStore
        else { return }
        recorded.objectStore = objectStore
        try Self.writeSecretsFile(recorded, to: path)
        logger.info("bootstrap.json now names the object store at its current endpoint", metadata: ["s3_endpoint": "\(objectStore.endpoint)"])
    }

    /// Writes the file atomically with mode 0600 from the start (never world-readable, not even briefly).
    static func writeSecretsFile(_ result: BootstrapResult, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(result)
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary]) }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        fsync(descriptor)
        close(descriptor)
        guard written == data.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }

}

/// The text `serve` prints once on the first start.
public enum BootstrapBanner {
    public static func text(_ result: BootstrapResult, baseURL: String, filePath: String) -> String {
        """

        ================ Switchyard: first start ================
        These secrets are shown once (also saved to \(filePath), mode 0600).
          owner email       \(result.emailAddress)
          owner password    \(result.password)
          team id           \(result.teamId.lowercased)
          integration key   \(result.integrationKey)
          agent key         \(result.agentKey)
        Try it:
          curl -H "Authorization: Bearer \(result.integrationKey)" \(baseURL)/api/v1/openapi.yaml
        =========================================================

        """
    }
}
