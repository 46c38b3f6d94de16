import Foundation
import Hummingbird
import HummingbirdTesting
import SwitchyardCore
import SwitchyardObjectStore
import SwitchyardServer

/// The S3 endpoints the object-store contract suite runs against: the embedded store always, and an external
/// emulator (ministack, scripts/s3-emulator.sh) when `SWITCHYARD_TEST_S3_ENDPOINT` and its keys are set. Under
/// `CI=true` a missing emulator fails the run instead of shrinking it.
public enum TestObjectStore: String, Sendable, CaseIterable, CustomStringConvertible {
    case embedded
    case emulator

    public var description: String { rawValue }

    public static var available: [TestObjectStore] {
        if emulatorConfiguration != nil { return [.embedded, .emulator] }
        if ProcessInfo.processInfo.environment["CI"] == "true" { return [.embedded, .emulator] }
        return [.embedded]
    }

    public static var emulatorConfiguration: S3Configuration? {
        let environment = ProcessInfo.processInfo.environment
        guard let endpoint = environment["SWITCHYARD_TEST_S3_ENDPOINT"], let origin = S3Origin(endpoint),
            let accessKey = environment["SWITCHYARD_TEST_S3_ACCESS_KEY_ID"], let secret = environment["SWITCHYARD_TEST_S3_SECRET_ACCESS_KEY"]
        else { return nil }
        return S3Configuration(
            origin: origin, bucket: environment["SWITCHYARD_TEST_S3_BUCKET"] ?? "cp-test",
            region: environment["SWITCHYARD_TEST_S3_REGION"] ?? "us-east-1",
            credentials: S3Credentials(accessKeyId: accessKey, secretAccessKey: secret))
    }

    /// Runs `body` with a configuration for this store (the embedded one served on a free port for the call).
    public func with<T: Sendable>(_ body: @Sendable (S3Configuration, EmbeddedObjectStore?) async throws -> T) async throws -> T {
        switch self {
        case .emulator:
            guard let configuration = Self.emulatorConfiguration else {
                throw TestSupportError(
                    "CI=true but SWITCHYARD_TEST_S3_ENDPOINT/ACCESS_KEY_ID/SECRET_ACCESS_KEY are not set: start scripts/s3-emulator.sh")
            }
            return try await body(configuration, nil)
        case .embedded:
            return try await TestEnvironment.with(.sqlite) { environment in
                try await environment.withStorage { storage in
                    let embedded = try await EmbeddedS3.build(configuration: environment.configuration, storage: storage, logger: testLogger)
                    return try await embedded.application.test(.live) { client in
                        let configuration = S3Configuration(
                            origin: S3Origin(scheme: "http", host: "127.0.0.1", port: client.port!), bucket: embedded.access.bucket,
                            region: embedded.access.region, credentials: embedded.access.credentials)
                        return try await body(configuration, embedded.store)
                    }
                }
            }
        }
    }
}
