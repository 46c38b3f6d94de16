import Foundation
import Logging
import PostgresNIO
import SwitchyardConcurrency
import SwitchyardCore
import SwitchyardPostgres
import SwitchyardServer
import Synchronization

/// The storage backends a test run covers: SQLite always, PostgreSQL when `SWITCHYARD_TEST_POSTGRES_URL` is
/// set (`.ci/run` sets it; `TestBackendsTests` fails in CI when it is missing, so it is never skipped silently).
public enum TestBackend: String, Sendable, CaseIterable {
    case sqlite
    case postgres

    public static var postgresURL: String? {
        ProcessInfo.processInfo.environment["SWITCHYARD_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The backends available to this run.
    public static var available: [TestBackend] {
        postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]
    }
}

/// A fresh, empty data directory and database for one test, removed afterwards. PostgreSQL tests each get
/// their own database cloned from a migrated template (`CREATE DATABASE … TEMPLATE`), so they are isolated
/// and start in milliseconds.
public struct TestEnvironment: Sendable {
    public let backend: TestBackend
    public let dataDirectory: String
    public let databaseURL: String?
    /// A port that was free when the environment was made, for the embedded S3 store (its address is part of
    /// every presigned URL, so it must be known before the application is built).
    public let s3Port: Int = freeTCPPort()
    /// This environment in `EnvironmentWatch`.
    var watchId = UUID()

    /// A configuration pointing at this environment, with test-speed bcrypt.
    public var configuration: ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.embeddedS3Port = s3Port
        configuration.dataDirectory = dataDirectory
        configuration.databaseURL = databaseURL
        configuration.bcryptCost = 4
        return configuration
    }

    public static func with<T: Sendable>(
        _ backend: TestBackend, file: String = #fileID, line: Int = #line, _ body: @Sendable (TestEnvironment) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        switch backend {
        case .sqlite:
            let environment = TestEnvironment(backend: backend, dataDirectory: directory, databaseURL: nil)
            EnvironmentWatch.shared.enter(environment.watchId, site: "\(file):\(line) (sqlite)", phase: "in the test")
            defer { EnvironmentWatch.shared.leave(environment.watchId) }
            return try await body(environment)
        case .postgres:
            guard let baseURL = TestBackend.postgresURL else { throw TestSupportError("SWITCHYARD_TEST_POSTGRES_URL is not set") }
            var watchId = UUID()
            EnvironmentWatch.shared.enter(watchId, site: "\(file):\(line) (postgres)", phase: "cloning its database")
            defer { EnvironmentWatch.shared.leave(watchId) }
            let name = try await PostgresTemplate.shared.cloneDatabase(baseURL: baseURL)
            var environment = TestEnvironment(backend: backend, dataDirectory: directory, databaseURL: replacingDatabase(in: baseURL, with: name))
            environment.watchId = watchId
            EnvironmentWatch.shared.phase(watchId, "in the test")
            do {
                let result = try await body(environment)
                EnvironmentWatch.shared.phase(watchId, "dropping its database")
                try await PostgresTemplate.shared.dropDatabase(name, baseURL: baseURL)
                return result
            } catch {
                EnvironmentWatch.shared.phase(watchId, "dropping its database after \(error)")
                try? await PostgresTemplate.shared.dropDatabase(name, baseURL: baseURL)
                throw error
            }
        }
    }

    /// Opens this environment's storage (migrated) for the duration of `body`.
    public func withStorage<T: Sendable>(_ body: @Sendable (any SwitchyardStorage) async throws -> T) async throws -> T {
        let watchId = watchId
        return try await SwitchyardServer.withStorage(configuration: configuration, logger: testLogger) { storage in
            try await storage.migrate()
            let result = try await body(storage)
            // What follows is the storage's shutdown (its pool and, on PostgreSQL, its notification listener).
            EnvironmentWatch.shared.phase(watchId, "closing its storage")
            return result
        }
    }

    static func replacingDatabase(in url: String, with name: String) -> String {
        var components = URLComponents(string: url)!
        components.path = "/" + name
        return components.string!
    }
}

public let testLogger: Logger = {
    var logger = Logger(label: "switchyard-test")
    logger.logLevel = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Creates the migrated template database once per test process and clones it per test.
///
/// Every statement goes through one admin client that runs for the rest of the test process, and each one has a
/// deadline. A client started and stopped per statement once hung a CI run: its `run()` did not return after
/// cancellation, the clone lock stayed held, and every PostgreSQL test waited on it, forever, with the server idle.
actor PostgresTemplate {
    static let shared = PostgresTemplate()
    private var templateName: String?
    private var client: PostgresClient?
    /// PostgreSQL refuses to clone a template while another session uses it, so clones happen one at a time.
    private let lock = AsyncSemaphore()
    /// Far beyond what a clone takes (milliseconds); reached only when something is stuck, and then it says so.
    private static let statementDeadline: Duration = .seconds(60)

    func cloneDatabase(baseURL: String) async throws -> String {
        try await lock.withPermit { try await self.cloneDatabaseLocked(baseURL: baseURL) }
    }

    private func cloneDatabaseLocked(baseURL: String) async throws -> String {
        let template = try await ensureTemplate(baseURL: baseURL)
        let name = "sy_test_\(UUID().uuidString.prefix(8).lowercased())_\(Int.random(in: 0..<1_000_000))"
        try await admin(baseURL, "CREATE DATABASE \(name) TEMPLATE \(template)")
        return name
    }

    func dropDatabase(_ name: String, baseURL: String) async throws {
        try await admin(baseURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    private func ensureTemplate(baseURL: String) async throws -> String {
        if let templateName { return templateName }
        let name = "sy_template_\(getpid())"
        try await admin(baseURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        try await admin(baseURL, "CREATE DATABASE \(name)")
        let storage = try PostgresStorage(url: TestEnvironment.replacingDatabase(in: baseURL, with: name), logger: testLogger)
        // The storage's pool is stopped without waiting for it: a stop that never came back would hold the lock.
        let running = Task { try await storage.run() }
        defer { running.cancel() }
        try await withDeadline(Self.statementDeadline) { try await storage.migrate() }
        templateName = name
        return name
    }

    /// Runs `sql` on the base database, giving up (with the statement named) after `statementDeadline`.
    private func admin(_ baseURL: String, _ sql: String) async throws {
        let client = try adminClient(baseURL)
        do {
            try await withDeadline(Self.statementDeadline) { _ = try await client.query(PostgresQuery(unsafeSQL: sql)) }
        } catch is DeadlineExceeded {
            throw TestSupportError("PostgreSQL did not finish `\(sql)` within \(Self.statementDeadline)")
        }
    }

    private func adminClient(_ baseURL: String) throws -> PostgresClient {
        if let client { return client }
        let created = PostgresClient(configuration: try PostgresURL.configuration(from: baseURL), backgroundLogger: testLogger)
        // Runs until the test process exits.
        Task.detached { await created.run() }
        client = created
        return created
    }
}

/// A loopback TCP port nothing listens on right now, never handed out twice in this process (asking the
/// kernel for port 0 can return a port another test was just given but has not bound yet). Ports come from
/// 20000–32000, below Linux's ephemeral range, so outgoing connections do not take them either.
public func freeTCPPort() -> Int {
    while true {
        let port = nextTestPort.withLock { next in
            defer { next = next >= 32_000 ? 20_000 : next + 1 }
            return next
        }
        if canBind(port) { return port }
    }
}

private let nextTestPort = Mutex(20_000 + Int(getpid() % 1_000) * 10)

private func canBind(_ port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
