import Foundation
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardObjectStore

/// The embedded S3-compatible store as `serve` runs it: the disk engine under `data.dir/objects`, the bucket
/// the server uses, the key pair (made once and kept in settings, so every start and replica agrees), and
/// the Hummingbird application answering S3 requests on `s3.embeddedPort`. Building it reads nothing from the
/// database; `prepare` (the server's start) reads or creates the key pair.
public struct EmbeddedS3: Sendable {
    public let store: EmbeddedObjectStore
    public let application: Application<EmbeddedS3Responder>
    /// The API's view of this store (clients set by `prepare`).
    let objects: ObjectStorage
    private let credentials: StartupValue<S3Credentials>
    private let endpoint: String
    private let bucket: String
    private let region: String
    private let publicEndpoint: String?
    let clock: any WallClock

    /// What a client needs to reach the store (after `prepare`).
    public var access: ObjectStoreAccess {
        ObjectStoreAccess(endpoint: endpoint, bucket: bucket, region: region, credentials: credentials.current)
    }

    /// Opens (creating if needed) the store and its bucket and reads or creates its key pair.
    public static func build(
        configuration: ServerConfiguration, storage: any SwitchyardStorage, clock: any WallClock = SystemWallClock(), logger: Logger
    ) async throws -> EmbeddedS3 {
        let embedded = try make(configuration: configuration, clock: clock, logger: logger, metrics: nil)
        try await embedded.prepare(storage: storage, secrets: try SecretBox.load(configuration: configuration))
        return embedded
    }

    /// Opens (creating if needed) the store and its bucket, and builds the application that answers for it; its
    /// requests are refused until `prepare` has read the key pair.
    static func make(configuration: ServerConfiguration, clock: any WallClock, logger: Logger, metrics: ServerMetrics?) throws -> EmbeddedS3 {
        let store = try EmbeddedObjectStore(root: URL(fileURLWithPath: configuration.objectsPath))
        try store.createBucket(configuration.s3Bucket)
        let credentials = StartupValue<S3Credentials>()
        let verifier = SigV4Verifier(region: configuration.s3Region) { accessKeyId in
            guard let pair = credentials.ifSet, accessKeyId == pair.accessKeyId else { return nil }
            return pair.secretAccessKey
        }
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
        return EmbeddedS3(
            store: store, application: application,
            objects: ObjectStorage(maximumUploadSize: configuration.maxUploadSize, presignLifetime: configuration.uploadURLLifetime),
            credentials: credentials, endpoint: "http://\(host):\(configuration.embeddedS3Port)", bucket: configuration.s3Bucket,
            region: configuration.s3Region, publicEndpoint: configuration.s3PublicEndpoint, clock: clock)
    }

    /// Reads the key pair from settings, making it on the first start (the secret key sealed with the secrets key;
    /// the access key id is not a secret), and gives the API its clients: server-side requests to the store's own
    /// address, presigned URLs for `s3.publicEndpoint` when set.
    func prepare(storage: any SwitchyardStorage, secrets: SecretBox) async throws {
        var random = SystemRandomNumberGenerator()
        let accessKeyId = try await storage.settingInsertingIfAbsent(
            SettingKey.embeddedS3AccessKeyId, value: "SY" + CredentialSecret.randomString(length: 18, using: &random).uppercased())
        let secretAccessKey = try await secrets.sealedSetting(SettingKey.embeddedS3SecretAccessKey, in: storage) {
            var random = SystemRandomNumberGenerator()
            return CredentialSecret.randomString(length: 40, using: &random)
        }
        let pair = S3Credentials(accessKeyId: accessKeyId, secretAccessKey: secretAccessKey)
        credentials.set(pair)
        let own = S3Configuration(origin: S3Origin(endpoint)!, bucket: bucket, region: region, credentials: pair)
        var published = own
        if let publicEndpoint, let origin = S3Origin(publicEndpoint) { published.origin = origin }
        let clock = self.clock
        objects.publish(
            client: S3Client(configuration: own, now: { clock.now() }), presigner: S3Client(configuration: published, now: { clock.now() }))
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
