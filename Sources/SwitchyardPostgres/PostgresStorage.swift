import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import SwitchyardCore
import SwitchyardSQL
import Synchronization

/// `SwitchyardStorage` on PostgreSQL through a PostgresNIO connection pool, which reconnects by itself after
/// the database restarts. The storage is a `Service`: its `run()` drives the pool and must be running (in
/// the server's service group, or beside a one-off command) while queries are made.
///
/// ```swift
/// let storage = try PostgresStorage(url: "postgres://cp:secret@127.0.0.1:5432/switchyard", logger: logger)
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await storage.run() }
///     try await storage.migrate()
///     group.cancelAll()
/// }
/// ```
public final class PostgresStorage: SwitchyardStorage, Service {
    public let backendName = "postgres"
    public var notifier: any ReplicaNotifier { notifications }
    let notifications: PostgresNotifier
    let client: PostgresClient
    let logger: Logger
    /// Task submissions without idempotency keys are group-committed, on a few queues so that several batches
    /// are in flight on separate connections while one waits for its commit.
    let taskInserts: [GroupCommitQueue<PendingPostgresInsert, TaskInsertOutcome>]
    let nextInsertShard = Atomic<Int>(0)
    /// Operations holding or waiting for a pooled connection (`poolUsage`).
    private let inFlight = Atomic<Int>(0)
    private let maximumConnections: Int

    public init(configuration: PostgresClient.Configuration, logger: Logger) {
        var configuration = configuration
        configuration.options.maximumConnections = max(configuration.options.maximumConnections, 16)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.maximumConnections = configuration.options.maximumConnections
        self.logger = logger
        self.notifications = PostgresNotifier(client: client, logger: logger)
        self.taskInserts = (0..<Self.insertQueues).map { _ in
            GroupCommitQueue(maxBatch: 256) { items in await Self.flushTaskInserts(items, client: client, logger: logger) }
        }
    }

    static let insertQueues = 4

    public convenience init(url: String, logger: Logger) throws {
        self.init(configuration: try PostgresURL.configuration(from: url), logger: logger)
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.notifications.run() }
        }
    }

    /// Migrations run under a session advisory lock, so replicas starting together apply each version once.
    public func migrate() async throws {
        let logger = self.logger
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(7291001)", logger: logger)
            do {
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)",
                    logger: logger
                )
                var applied = Set<Int>()
                for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
                    applied.insert(version)
                }
                for migration in Schema.migrations where !applied.contains(migration.version) {
                    try await connection.withTransaction(logger: logger) { transaction in
                        for statement in migration.statements(for: .postgres) {
                            try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await transaction.query(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), now())",
                            logger: logger
                        )
                    }
                    logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(7291001)", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(7291001)", logger: logger)
        }
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }

    public func close() async throws {}

    // MARK: Plumbing shared by the repository extensions

    public var poolUsage: DatabasePoolUsage {
        DatabasePoolUsage(maximumConnections: maximumConnections, operationsInFlight: inFlight.load(ordering: .relaxed))
    }

    /// Counts `body` in `poolUsage` while it runs.
    func tracked<T>(_ body: () async throws -> T) async rethrows -> T {
        inFlight.add(1, ordering: .relaxed)
        defer { inFlight.subtract(1, ordering: .relaxed) }
        return try await body()
    }

    /// Runs a query and collects its rows.
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await tracked { try await client.query(query, logger: logger).collect() }
    }

    /// Runs `body` on a pooled connection, outside a transaction.
    func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await tracked { try await client.withConnection(body) }
    }

    /// Runs `body` in a transaction, rethrowing the underlying error rather than PostgresNIO's wrapper.
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await tracked { try await client.withTransaction(logger: logger) { connection in try await body(connection) } }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }
}
