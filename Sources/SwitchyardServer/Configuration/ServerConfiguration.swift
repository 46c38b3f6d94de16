import Configuration
import Foundation
import SwitchyardCore
import SwitchyardObjectStore

/// Everything `switchyard serve` reads at start, typed and validated once (flags → environment → config
/// file → defaults; docs/configuration.md lists every key).
public struct ServerConfiguration: Sendable {
    /// Interface to bind (`http.host`).
    public var host = "127.0.0.1"
    /// TCP port; 0 picks a free one (`http.port`).
    public var port = 8080
    /// Seconds a connection may send nothing while a request arrives or between requests, and the first request's
    /// head must take at most (`http.idleTimeout`; both HTTP servers; never cuts an answer being written).
    public var httpIdleTimeout: TimeInterval = 60
    /// Largest request body accepted, in bytes (`http.maxBodySize`).
    public var maxBodySize = 8 * 1024 * 1024
    /// Where SQLite, the embedded object store and `bootstrap.json` live (`data.dir`).
    public var dataDirectory = "./switchyard-data"
    /// `postgres://…` to use PostgreSQL; nil for the embedded SQLite database (`database.url`).
    public var databaseURL: String?
    /// Apply pending migrations when serving starts (`database.migrate`).
    public var migrateOnStart = true
    /// Email address of the owner created on first start (`bootstrap.adminEmail`).
    public var adminEmail = "admin@localhost"
    /// How long a session token from `POST /auth/login` stays valid, in seconds (`auth.sessionTtl`).
    public var sessionLifetime: TimeInterval = 12 * 3600
    /// bcrypt work factor for passwords (`auth.bcryptCost`, 4–31).
    public var bcryptCost = 12
    /// How long the runtime path may reuse what it read (an `sk-` key, a workflow's current version and status),
    /// in seconds (`cache.ttl`; 0 disables it). Changes made through this server apply at once; changes made
    /// through another replica (PostgreSQL deployments) within this time.
    public var cacheTTL: TimeInterval = 1
    /// An external S3-compatible store (`s3.endpoint`, `s3.accessKey`, `s3.secretKey`, `s3.pathStyle`, with
    /// `s3.bucket` and `s3.region`); nil serves the embedded store.
    public var externalS3: S3Configuration?
    /// Port of the embedded S3-compatible store, served on `http.host` (`s3.embeddedPort`; 0 picks a free one).
    public var embeddedS3Port = 8081
    /// Bucket the server keeps inputs, models and outputs in (`s3.bucket`).
    public var s3Bucket = "switchyard"
    /// Region the store's signatures are scoped to (`s3.region`).
    public var s3Region = "us-east-1"
    /// The origin callers and agents reach the object store at, used in presigned URLs (`s3.publicEndpoint`);
    /// nil for the store's own address.
    public var s3PublicEndpoint: String?
    /// Largest single upload `POST /r/files/presign` signs, in bytes (`uploads.maxFileSize`).
    public var maxUploadSize = 500 * 1024 * 1024
    /// How long presigned upload URLs stay valid, in seconds (`uploads.presignTtl`).
    public var uploadURLLifetime = 3600
    /// Model files up to this size have their `file_hash` checked inside `POST /models`; larger ones answer at once
    /// and are checked in the background (`model_status: verifying`), in bytes (`models.verifyInlineMaxBytes`).
    public var modelVerifyInlineMaxBytes = 256 * 1024 * 1024
    /// What the retention reaper deletes and how often it looks (`retention.inputs`, `retention.outputs`,
    /// `retention.multipartUploads`, `retention.interval`, in seconds; 0 keeps that kind forever).
    public var retention = RetentionReaper.Policy(inputs: 86_400, outputs: 7 * 86_400, multipartUploads: 86_400, interval: 600)
    /// Agent sessions and attempts (`dispatch.ackTimeout`, `dispatch.heartbeatInterval`, `dispatch.reconnectGrace`, in
    /// seconds).
    public var dispatch = DispatchSettings()
    /// Webhook delivery (`webhooks.timeout` in seconds, `webhooks.allowInsecure`, `webhooks.allowPrivateNetworks`).
    public var webhooks = WebhookSender.Settings()
    /// Comfy Cloud (`cloud.comfyBaseURL`, `cloud.comfyConcurrency`, `cloud.fallbackWait`, `cloud.pollInterval`).
    public var cloud = CloudSettings()
    /// Base64 of the 32-byte key that encrypts stored webhook secrets (`secrets.key`); nil keeps a generated key in
    /// `<data.dir>/secrets.key`. Replicas sharing a PostgreSQL database must share this key.
    public var secretsKey: String?
    /// Event streams (`GET /r/tasks/{id}/events`) one team may have open on this server at once; one more is a 429
    /// with `Retry-After` (`streams.maxPerTeam`; 0: no limit).
    public var maxEventStreamsPerTeam = 1000
    /// Whether signed-in users may create teams of their own (`teams.selfService`); off, the teams are the first
    /// start's and whatever exists, and people join them by invitation.
    public var selfServiceTeams = true
    /// Whether login, invitation accept and device pairing are rate-limited per client address and per account
    /// (`limits.auth`; docs/security.md lists the rules).
    public var rateLimitAuth = true
    /// The rules themselves (tests tighten them).
    var rateLimitRules = RateLimiter.Rules()
    /// Whether the client address of a request is the last hop of `X-Forwarded-For` (`http.trustForwardedFor`): set
    /// it when a reverse proxy you run is the only way in, so rate limits count clients rather than the proxy.
    public var trustForwardedFor = false
    /// Whether `GET /metrics` serves Prometheus metrics (`metrics.enabled`).
    public var metricsEnabled = true
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (`metrics.token`).
    public var metricsToken: String?
    /// Minimum log level (`log.level`).
    public var logLevel = "info"
    /// `text` (one `key=value` line per event) or `json` (one object per line) (`log.format`).
    public var logFormat = SwitchyardLogHandler.Format.text

    public init() {}

    /// Reads and validates every key; throws a message naming the key and the rule on a bad value.
    public init(reader: ConfigReader) throws {
        let defaults = ServerConfiguration()
        host = reader.string(forKey: "http.host", default: defaults.host)
        port = try Self.int(reader, "http.port", default: defaults.port)
        maxBodySize = try Self.int(reader, "http.maxBodySize", default: defaults.maxBodySize)
        httpIdleTimeout = TimeInterval(try Self.int(reader, "http.idleTimeout", default: Int(defaults.httpIdleTimeout)))
        dataDirectory = reader.string(forKey: "data.dir", default: defaults.dataDirectory)
        databaseURL = reader.string(forKey: "database.url").flatMap { $0.isEmpty ? nil : $0 }
        migrateOnStart = try Self.bool(reader, "database.migrate", default: defaults.migrateOnStart)
        adminEmail = reader.string(forKey: "bootstrap.adminEmail", default: defaults.adminEmail)
        sessionLifetime = TimeInterval(try Self.int(reader, "auth.sessionTtl", default: Int(defaults.sessionLifetime)))
        bcryptCost = try Self.int(reader, "auth.bcryptCost", default: defaults.bcryptCost)
        cacheTTL = TimeInterval(try Self.int(reader, "cache.ttl", default: Int(defaults.cacheTTL)))
        embeddedS3Port = try Self.int(reader, "s3.embeddedPort", default: defaults.embeddedS3Port)
        s3Bucket = reader.string(forKey: "s3.bucket", default: defaults.s3Bucket)
        s3Region = reader.string(forKey: "s3.region", default: defaults.s3Region)
        if let endpoint = reader.string(forKey: "s3.endpoint").flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let origin = S3Origin(endpoint) else {
                throw Invalid(description: "s3.endpoint: \"\(endpoint)\" is not an http(s)://host[:port] origin")
            }
            guard let accessKey = reader.string(forKey: "s3.accessKey"), !accessKey.isEmpty,
                let secretKey = reader.string(forKey: "s3.secretKey", isSecret: true), !secretKey.isEmpty
            else { throw Invalid(description: "s3.endpoint is set, so s3.accessKey and s3.secretKey are required") }
            externalS3 = S3Configuration(
                origin: origin, bucket: s3Bucket, region: s3Region, credentials: S3Credentials(accessKeyId: accessKey, secretAccessKey: secretKey),
                pathStyle: try Self.bool(reader, "s3.pathStyle", default: true))
        }
        s3PublicEndpoint = reader.string(forKey: "s3.publicEndpoint").flatMap { $0.isEmpty ? nil : $0 }
        maxUploadSize = try Self.int(reader, "uploads.maxFileSize", default: defaults.maxUploadSize)
        uploadURLLifetime = try Self.int(reader, "uploads.presignTtl", default: defaults.uploadURLLifetime)
        modelVerifyInlineMaxBytes = try Self.int(reader, "models.verifyInlineMaxBytes", default: defaults.modelVerifyInlineMaxBytes)
        retention = RetentionReaper.Policy(
            inputs: TimeInterval(try Self.int(reader, "retention.inputs", default: Int(defaults.retention.inputs))),
            outputs: TimeInterval(try Self.int(reader, "retention.outputs", default: Int(defaults.retention.outputs))),
            multipartUploads: TimeInterval(try Self.int(reader, "retention.multipartUploads", default: Int(defaults.retention.multipartUploads))),
            interval: TimeInterval(try Self.int(reader, "retention.interval", default: Int(defaults.retention.interval))))
        dispatch = DispatchSettings(
            ackTimeout: TimeInterval(try Self.int(reader, "dispatch.ackTimeout", default: Int(defaults.dispatch.ackTimeout))),
            heartbeatInterval: TimeInterval(try Self.int(reader, "dispatch.heartbeatInterval", default: Int(defaults.dispatch.heartbeatInterval))),
            reconnectGrace: TimeInterval(try Self.int(reader, "dispatch.reconnectGrace", default: Int(defaults.dispatch.reconnectGrace))))
        dispatch.maxAgentsPerTeam = try Self.int(reader, "dispatch.maxAgentsPerTeam", default: defaults.dispatch.maxAgentsPerTeam)
        guard dispatch.maxAgentsPerTeam >= 0 else {
            throw Invalid(description: "dispatch.maxAgentsPerTeam: must be 0 (no limit) or more, got \(dispatch.maxAgentsPerTeam)")
        }
        dispatch.communityPool = try Self.bool(reader, "dispatch.communityPool", default: defaults.dispatch.communityPool)
        selfServiceTeams = try Self.bool(reader, "teams.selfService", default: defaults.selfServiceTeams)
        maxEventStreamsPerTeam = try Self.int(reader, "streams.maxPerTeam", default: defaults.maxEventStreamsPerTeam)
        guard maxEventStreamsPerTeam >= 0 else {
            throw Invalid(description: "streams.maxPerTeam: must be 0 (no limit) or more, got \(maxEventStreamsPerTeam)")
        }
        dispatch.maxBacklogPerTeam = try Self.int(reader, "dispatch.maxBacklogPerTeam", default: defaults.dispatch.maxBacklogPerTeam)
        guard dispatch.maxBacklogPerTeam >= 0 else {
            throw Invalid(description: "dispatch.maxBacklogPerTeam: must be 0 (no limit) or more, got \(dispatch.maxBacklogPerTeam)")
        }
        webhooks.timeout = TimeInterval(try Self.int(reader, "webhooks.timeout", default: Int(defaults.webhooks.timeout)))
        webhooks.policy = WebhookTargetPolicy(
            allowInsecureLoopback: try Self.bool(reader, "webhooks.allowInsecure", default: false),
            allowPrivateNetworks: try Self.bool(reader, "webhooks.allowPrivateNetworks", default: false))
        cloud.comfyBaseURL = reader.string(forKey: "cloud.comfyBaseURL", default: defaults.cloud.comfyBaseURL)
        cloud.comfyConcurrency = try Self.int(reader, "cloud.comfyConcurrency", default: defaults.cloud.comfyConcurrency)
        cloud.fallbackWait = TimeInterval(try Self.int(reader, "cloud.fallbackWait", default: Int(defaults.cloud.fallbackWait)))
        cloud.pollInterval = TimeInterval(try Self.int(reader, "cloud.pollInterval", default: Int(defaults.cloud.pollInterval)))
        secretsKey = reader.string(forKey: "secrets.key", isSecret: true).flatMap { $0.isEmpty ? nil : $0 }
        logLevel = reader.string(forKey: "log.level", default: defaults.logLevel)
        let format = reader.string(forKey: "log.format", default: defaults.logFormat.rawValue)
        guard let logFormat = SwitchyardLogHandler.Format(rawValue: format.lowercased()) else {
            throw Invalid(description: "log.format: \"\(format)\" is not text or json")
        }
        self.logFormat = logFormat
        rateLimitAuth = try Self.bool(reader, "limits.auth", default: defaults.rateLimitAuth)
        trustForwardedFor = try Self.bool(reader, "http.trustForwardedFor", default: defaults.trustForwardedFor)
        metricsEnabled = try Self.bool(reader, "metrics.enabled", default: defaults.metricsEnabled)
        metricsToken = reader.string(forKey: "metrics.token", isSecret: true).flatMap { $0.isEmpty ? nil : $0 }
        try validate()
    }

    /// An integer key; a value that is present but not an integer fails the start instead of falling back.
    private static func int(_ reader: ConfigReader, _ key: ConfigKey, default value: Int) throws -> Int {
        if let number = reader.int(forKey: key) { return number }
        if let text = reader.string(forKey: key) {
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw Invalid(description: "\(key): \"\(text)\" is not an integer")
            }
            return number
        }
        return value
    }

    /// A boolean key (`true`/`false`, `1`/`0`, `yes`/`no`); anything else fails the start.
    private static func bool(_ reader: ConfigReader, _ key: ConfigKey, default value: Bool) throws -> Bool {
        if let flag = reader.bool(forKey: key) { return flag }
        if let text = reader.string(forKey: key) {
            switch text.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw Invalid(description: "\(key): \"\(text)\" is not true or false")
            }
        }
        return value
    }

    /// A configuration problem found at start.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public func validate() throws {
        guard (0...65535).contains(port) else { throw Invalid(description: "http.port: \(port) is outside 0–65535") }
        guard (0...65535).contains(embeddedS3Port) else {
            throw Invalid(description: "s3.embeddedPort: \(embeddedS3Port) is outside 0–65535")
        }
        guard EmbeddedObjectStore.isValidBucketName(s3Bucket) else {
            throw Invalid(description: "s3.bucket: \"\(s3Bucket)\" is not a valid bucket name (3–63 of a-z 0-9 . -)")
        }
        if let s3PublicEndpoint, S3Origin(s3PublicEndpoint) == nil {
            throw Invalid(description: "s3.publicEndpoint: \"\(s3PublicEndpoint)\" is not an http(s)://host[:port] origin")
        }
        guard (1...5 * 1024 * 1024 * 1024).contains(maxUploadSize) else {
            throw Invalid(description: "uploads.maxFileSize: \(maxUploadSize) is outside 1–5368709120 bytes (S3's single-PUT limit)")
        }
        guard modelVerifyInlineMaxBytes >= 0 else {
            throw Invalid(description: "models.verifyInlineMaxBytes: \(modelVerifyInlineMaxBytes) is negative")
        }
        guard (60...SigV4.maximumExpiry).contains(uploadURLLifetime) else {
            throw Invalid(description: "uploads.presignTtl: \(uploadURLLifetime) is outside 60–604800 seconds")
        }
        for (key, value) in [
            ("retention.inputs", retention.inputs), ("retention.outputs", retention.outputs),
            ("retention.multipartUploads", retention.multipartUploads),
        ] where value < 0 {
            throw Invalid(description: "\(key): \(Int(value)) is negative (0 keeps forever)")
        }
        for (key, value, range) in [
            ("dispatch.ackTimeout", dispatch.ackTimeout, 0.1...600), ("dispatch.heartbeatInterval", dispatch.heartbeatInterval, 0.1...300),
            ("dispatch.reconnectGrace", dispatch.reconnectGrace, 0.0...3600),
        ] where !range.contains(value) {
            throw Invalid(description: "\(key): \(Int(value)) is outside \(range.lowerBound)–\(range.upperBound) seconds")
        }
        guard (10...86_400).contains(retention.interval) else {
            throw Invalid(description: "retention.interval: \(Int(retention.interval)) is outside 10–86400 seconds")
        }
        guard !s3Region.isEmpty, s3Region.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
            throw Invalid(description: "s3.region: \"\(s3Region)\" is not a region name")
        }
        guard (1...3600).contains(httpIdleTimeout) else {
            throw Invalid(description: "http.idleTimeout: \(Int(httpIdleTimeout)) is outside 1–3600 seconds")
        }
        guard (1...60).contains(webhooks.timeout) else {
            throw Invalid(description: "webhooks.timeout: \(Int(webhooks.timeout)) is outside 1–60 seconds")
        }
        guard S3Origin(cloud.comfyBaseURL) != nil else {
            throw Invalid(description: "cloud.comfyBaseURL: \"\(cloud.comfyBaseURL)\" is not an http(s)://host[:port] origin")
        }
        guard (1...100).contains(cloud.comfyConcurrency) else {
            throw Invalid(description: "cloud.comfyConcurrency: \(cloud.comfyConcurrency) is outside 1–100")
        }
        guard (0...86_400).contains(cloud.fallbackWait) else {
            throw Invalid(description: "cloud.fallbackWait: \(Int(cloud.fallbackWait)) is outside 0–86400 seconds")
        }
        guard cloud.pollInterval > 0, cloud.pollInterval <= 60 else {
            throw Invalid(description: "cloud.pollInterval: \(cloud.pollInterval) must be more than 0 and at most 60 seconds")
        }
        guard maxBodySize >= 1024 else { throw Invalid(description: "http.maxBodySize: \(maxBodySize) is below 1024 bytes") }
        guard !dataDirectory.isEmpty else { throw Invalid(description: "data.dir must not be empty") }
        if let databaseURL, !(databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://")) {
            throw Invalid(description: "database.url must start with postgres:// (omit it for the embedded SQLite database)")
        }
        guard adminEmail.contains("@") else { throw Invalid(description: "bootstrap.adminEmail: \"\(adminEmail)\" is not an email address") }
        guard sessionLifetime >= 60 else { throw Invalid(description: "auth.sessionTtl: \(Int(sessionLifetime)) is below 60 seconds") }
        guard (4...31).contains(bcryptCost) else { throw Invalid(description: "auth.bcryptCost: \(bcryptCost) is outside 4–31") }
        guard (0...300).contains(cacheTTL) else { throw Invalid(description: "cache.ttl: \(Int(cacheTTL)) is outside 0–300 seconds") }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw Invalid(description: "log.level: \"\(logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Path of the SQLite database file.
    public var sqlitePath: String { (dataDirectory as NSString).appendingPathComponent("switchyard.sqlite") }
    /// Where the embedded object store keeps its files.
    public var objectsPath: String { (dataDirectory as NSString).appendingPathComponent("objects") }
    /// Path of the file the first start writes its secrets to.
    public var bootstrapFilePath: String { (dataDirectory as NSString).appendingPathComponent("bootstrap.json") }
}
