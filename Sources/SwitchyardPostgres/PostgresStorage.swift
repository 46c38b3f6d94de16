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
    public let logger: Logger
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

    /// Runs the pool and the notification listener until cancelled. The pool outlives the listener: the listener's
    /// last `pg_notify` and its LISTEN connection go back to a pool that still runs, so the pool's shutdown has no
    /// query in flight to strand. A pool that still does not stop within `shutdownLimit` is left behind with an
    /// error logged, rather than holding up the process's shutdown (postgres-nio has had shutdown hangs; a test run
    /// hung on one with every connection already closed).
    public func run() async throws {
        let pool = Task { await client.run() }
        await notifications.run()
        pool.cancel()
        do {
            try await withDeadline(Self.shutdownLimit) { await pool.value }
        } catch {
            logger.error("the PostgreSQL connection pool did not stop within \(Self.shutdownLimit); leaving it behind")
        }
    }

    static let shutdownLimit: Duration = .seconds(10)

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
}
