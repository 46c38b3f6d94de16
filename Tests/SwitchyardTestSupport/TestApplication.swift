import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardServer

/// A built application on a fresh environment, with the first start's secrets at hand.
public struct TestApp: Sendable {
    public let environment: TestEnvironment
    public let built: SwitchyardApplication
    public let clock: ManualWallClock

    public var storage: any SwitchyardStorage { built.storage }
    /// The bootstrap secrets (every test app starts on an empty database, so they exist; a second replica shares
    /// the first one's).
    public let bootstrap: BootstrapResult

    init(environment: TestEnvironment, built: SwitchyardApplication, clock: ManualWallClock, bootstrap: BootstrapResult? = nil) {
        self.environment = environment
        self.built = built
        self.clock = clock
        self.bootstrap = bootstrap ?? built.bootstrap!
    }

    /// Builds the application on a fresh environment and runs `body` with an in-process HTTP client.
    public static func with(
        _ backend: TestBackend, clock: ManualWallClock = ManualWallClock(Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded())),
        objectStore: TestObjectStore = .embedded, live: Bool = false, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        logger: Logger = testLogger, file: String = #fileID, line: Int = #line,
        _ body: @Sendable (TestApp, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await TestEnvironment.with(backend, file: file, line: line) { environment in
            try await environment.withStorage { storage in
                var configuration = environment.configuration
                if objectStore == .emulator {
                    guard let external = TestObjectStore.emulatorConfiguration else {
                        throw TestSupportError("SWITCHYARD_TEST_S3_* are not set: start scripts/s3-emulator.sh")
                    }
                    configuration.externalS3 = external
                }
                configure(&configuration)
                let built = try await buildApplication(configuration: configuration, storage: storage, logger: logger, clock: clock)
                // The start (migrations, bootstrap) has run when the test framework calls the body. The embedded S3
                // store runs live on its port (presigned URLs point at it); the API in process.
                if let embedded = built.objectStore {
                    try await embedded.application.test(.live) { _ in
                        try await built.application.test(live ? .live : .router) { client in
                            try await body(TestApp(environment: environment, built: built, clock: clock), client)
                        }
                    }
                } else {
                    try await built.application.test(live ? .live : .router) { client in
                        try await body(TestApp(environment: environment, built: built, clock: clock), client)
                    }
                }
            }
        }
    }

    /// Two replicas (`serve` processes) on one fresh database, each live on its own port with its own embedded S3
    /// endpoint over the same data directory, as two servers behind a load balancer would be.
    public static func withReplicas(
        _ backend: TestBackend, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        file: String = #fileID, line: Int = #line,
        _ body: @Sendable (_ a: TestApp, _ clientA: any TestClientProtocol, _ b: TestApp, _ clientB: any TestClientProtocol) async throws -> Void
    ) async throws {
        try await TestEnvironment.with(backend, file: file, line: line) { environment in
            try await environment.withStorage { storageA in
                try await environment.withStorage { storageB in
                    let clock = ManualWallClock(Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded()))
                    var configurationA = environment.configuration
                    configure(&configurationA)
                    var configurationB = configurationA
                    configurationB.embeddedS3Port = freeTCPPort()
                    let builtA = try await buildApplication(configuration: configurationA, storage: storageA, logger: testLogger, clock: clock)
                    let builtB = try await buildApplication(configuration: configurationB, storage: storageB, logger: testLogger, clock: clock)
                    guard let storeA = builtA.objectStore, let storeB = builtB.objectStore else {
                        throw TestSupportError("replicas use the embedded store here")
                    }
                    try await storeA.application.test(.live) { _ in
                        try await storeB.application.test(.live) { _ in
                            try await builtA.application.test(.live) { clientA in
                                // A started first: it bootstrapped; B shares its secrets.
                                let a = TestApp(environment: environment, built: builtA, clock: clock)
                                try await builtB.application.test(.live) { clientB in
                                    let b = TestApp(environment: environment, built: builtB, clock: clock, bootstrap: a.bootstrap)
                                    try await body(a, clientA, b, clientB)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Signs the bootstrap owner in and returns the session token.
    public func ownerSession(_ client: any TestClientProtocol) async throws -> String {
        let body = #"{"email_address":"\#(bootstrap.emailAddress)","password":"\#(bootstrap.password)"}"#
        let response = try await client.execute(uri: "/api/v1/auth/login", method: .post, body: ByteBuffer(string: body))
        guard response.status == .ok, let token = try response.json()["access_token"]?.stringValue else {
            throw TestSupportError("login failed: \(response.status) \(String(buffer: response.body))")
        }
        return token
    }

    /// Stores a credential of `kind` directly (e.g. `dk-`, which only device pairing issues) and returns its secret.
    public func insertKey(
        _ kind: CredentialKind, teamId: UUID? = nil, userId: UUID? = nil, expiresAt: Date? = nil
    ) async throws -> (secret: String, id: UUID) {
        let secret = CredentialSecret.generate(kind: kind)
        let id = UUIDv7.make(at: clock.now())
        try await storage.insertCredential(
            Credential(
                id: id, teamId: teamId ?? bootstrap.teamId, userId: userId, kind: kind, displayName: "test \(kind.rawValue) key",
                keyPrefix: CredentialSecret.displayPrefix(of: secret), keyHash: SecretHasher.keyHash(secret), createdAt: clock.now(),
                expiresAt: expiresAt
            )
        )
        return (secret, id)
    }
}

extension TestResponse {
    /// The body read as the SDK's model `T`, the way `SwitchyardClient` reads it: what a test reads from an answer.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        do {
            return try SwitchyardClient.decode(type, from: body.readableBytesView)
        } catch {
            throw TestSupportError("\(status) \(String(buffer: body)) is not a \(T.self): \(error)")
        }
    }

    /// The body as parsed JSON, for tests about the wire format itself (which members an answer has, exact numbers).
    public func json() throws -> JSONValue {
        try JSONValue.parse(body.readableBytesView)
    }

    /// The `error_message` of an error body.
    public var errorMessage: String? {
        (try? json())?["error_message"]?.stringValue
    }
}

extension JSONValue {
    /// The number as an `Int`, when it is a whole one.
    public var intValue: Int? { numberValue?.intValue }
    /// The number as a `Double`.
    public var doubleValue: Double? { numberValue?.doubleValue }
    /// An array of strings (nil when any element is not one).
    public var stringArray: [String]? {
        guard let array = arrayValue else { return nil }
        let strings = array.compactMap(\.stringValue)
        return strings.count == array.count ? strings : nil
    }
    /// An object whose members are all strings.
    public var stringDictionary: [String: String]? {
        guard let object = objectValue else { return nil }
        let strings = object.compactMapValues(\.stringValue)
        return strings.count == object.count ? strings : nil
    }
}

extension Data {
    init(buffer: ByteBuffer) {
        self = Data(buffer.readableBytesView)
    }
}

/// Request headers for a bearer token and, optionally, a team.
public func authHeaders(_ token: String?, team: UUID? = nil) -> HTTPFields {
    var headers = HTTPFields()
    if let token { headers[.authorization] = "Bearer \(token)" }
    if let team { headers[HTTPField.Name("X-Team-ID")!] = team.uuidString.lowercased() }
    return headers
}
