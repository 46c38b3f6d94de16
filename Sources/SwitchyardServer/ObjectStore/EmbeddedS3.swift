import Foundation
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardObjectStore

/// The embedded S3-compatible store as `serve` runs it: the disk engine under `data.dir/objects`, the bucket
/// the server uses, the key pair (made once and kept in settings, so every start and replica agrees), and
/// the Hummingbird application answering S3 requests on `s3.embeddedPort`.
public struct EmbeddedS3: Sendable {
    public let store: EmbeddedObjectStore
    public let access: ObjectStoreAccess
    public let application: Application<EmbeddedS3Responder>
    let clock: any WallClock

    /// Opens (creating if needed) the store and its bucket and reads or creates its key pair.
    public static func build(
        configuration: ServerConfiguration, storage: any SwitchyardStorage, clock: any WallClock = SystemWallClock(), logger: Logger
    ) async throws -> EmbeddedS3 {
        try await build(
            configuration: configuration, storage: storage, secrets: try SecretBox.load(configuration: configuration), clock: clock, logger: logger,
            metrics: nil)
    }

    /// `build`, with the secrets box the caller already loaded and the server's metrics (nil: not counted).
    static func build(
        configuration: ServerConfiguration, storage: any SwitchyardStorage, secrets: SecretBox, clock: any WallClock, logger: Logger,
        metrics: ServerMetrics?
    ) async throws -> EmbeddedS3 {
        var random = SystemRandomNumberGenerator()
        let accessKeyId = try await storage.settingInsertingIfAbsent(
            SettingKey.embeddedS3AccessKeyId, value: "SY" + CredentialSecret.randomString(length: 18, using: &random).uppercased())
        // The secret key is sealed with the secrets key (the access key id is not a secret).
        let secretAccessKey = try await secrets.sealedSetting(SettingKey.embeddedS3SecretAccessKey, in: storage) {
            var random = SystemRandomNumberGenerator()
            return CredentialSecret.randomString(length: 40, using: &random)
        }
        let credentials = S3Credentials(accessKeyId: accessKeyId, secretAccessKey: secretAccessKey)
        let store = try EmbeddedObjectStore(root: URL(fileURLWithPath: configuration.objectsPath))
        try store.createBucket(configuration.s3Bucket)
        let verifier = SigV4Verifier(region: configuration.s3Region) { $0 == credentials.accessKeyId ? credentials.secretAccessKey : nil }
        var serverLogger = logger
        serverLogger[metadataKey: "component"] = "s3"
        // Uploads from slow links keep sending; two minutes of silence is a stalled client.
        let idle = TimeAmount.milliseconds(
            Int64(configuration.httpIdleTimeout < 1 ? configuration.httpIdleTimeout * 1000 : max(configuration.httpIdleTimeout, 120) * 1000))
        let application = Application(
            responder: EmbeddedS3Responder(store: store, verifier: verifier, clock: clock, metrics: metrics),
            server: .http1Guarded(
                configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()], idleTimeout: idle),
                limits: EmbeddedS3.requestLimits(headTimeout: idle)),
            configuration: .init(address: .hostname(configuration.host, port: configuration.embeddedS3Port), serverName: "Switchyard S3"),
            logger: serverLogger)
        let host = configuration.host == "0.0.0.0" ? "127.0.0.1" : configuration.host
        let access = ObjectStoreAccess(
            endpoint: "http://\(host):\(configuration.embeddedS3Port)", bucket: configuration.s3Bucket, region: configuration.s3Region,
            credentials: credentials)
        return EmbeddedS3(store: store, access: access, application: application, clock: clock)
    }

    /// The API's view of this store: server-side requests to its own address, presigned URLs for
    /// `s3.publicEndpoint` when set.
    public func objectStorage(configuration: ServerConfiguration) -> ObjectStorage {
        let own = S3Configuration(origin: S3Origin(access.endpoint)!, bucket: access.bucket, region: access.region, credentials: access.credentials)
        var published = own
        if let endpoint = configuration.s3PublicEndpoint, let origin = S3Origin(endpoint) { published.origin = origin }
        let clock = self.clock
        return ObjectStorage(
            client: S3Client(configuration: own, now: { clock.now() }), presigner: S3Client(configuration: published, now: { clock.now() }),
            maximumUploadSize: configuration.maxUploadSize, presignLifetime: configuration.uploadURLLifetime)
    }
}

extension EmbeddedS3 {
    /// The store answers an oversized head in S3's error format.
    static func requestLimits(headTimeout: TimeAmount) -> RequestLimits {
        var limits = RequestLimits(errorBody: { status in
            let code = status == .uriTooLong ? "RequestURITooLong" : "RequestHeaderSectionTooLarge"
            return (
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>the request head is too large: at most 80 KiB</Message></Error>"
            )
        })
        limits.headTimeout = headTimeout
        return limits
    }
}
