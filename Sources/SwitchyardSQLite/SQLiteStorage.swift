import Foundation
import Logging
import NIOPosix
import SQLiteNIO
import SwitchyardConcurrency
import SwitchyardCore
import SwitchyardSQL
import Synchronization

/// `SwitchyardStorage` on one SQLite file in WAL mode: a single writer connection whose transactions are
/// serialised by an async lock (SQLite allows one writer anyway; queueing here avoids busy retries), and a
/// small pool of read-only connections that read concurrently with it.
///
/// ```swift
/// let storage = try await SQLiteStorage.open(path: "switchyard-data/switchyard.sqlite", logger: logger)
/// try await storage.migrate()
/// ```
public final class SQLiteStorage: SwitchyardStorage {
    public let backendName = "sqlite"
    public let notifier: any ReplicaNotifier = SingleProcessNotifier()
    let writer: SQLiteConnection
    let readers: [SQLiteConnection]
    let writeLock: AsyncSemaphore
    let nextReader = Mutex(0)
    /// Operations holding or waiting for a connection (`poolUsage`).
    private let inFlight = Atomic<Int>(0)
    public let logger: Logger
    /// Task submissions are group-committed: one transaction (and one fsync) per batch of concurrent inserts.
    let taskInserts: GroupCommitQueue<PendingTaskInsert, TaskInsertOutcome>
    /// Task state changes (assignments, starts, ends) likewise: the dispatcher writes them from many attempts at once.
    let taskChanges: GroupCommitQueue<PendingTaskChange, TaskTransitionOutcome?>
    /// SQLite calls block their thread (the writer's fsync above all), so the storage has threads of its own: one
    /// per connection. On NIO's shared pool (one thread per core) reads queued behind the writer's commits.
    private let threadPool: NIOThreadPool
    private let closed = Mutex(false)

    private init(writer: SQLiteConnection, readers: [SQLiteConnection], threadPool: NIOThreadPool, logger: Logger) {
        self.threadPool = threadPool
        let writeLock = AsyncSemaphore()
        self.writer = writer
        self.readers = readers
        self.logger = logger
        self.writeLock = writeLock
        self.taskInserts = GroupCommitQueue(maxBatch: 512) { items in
            await Self.flushTaskInserts(items, writer: writer, lock: writeLock)
        }
        self.taskChanges = GroupCommitQueue(maxBatch: 256) { items in
            await Self.flushTaskChanges(items, writer: writer, lock: writeLock)
        }
    }

    /// Opens (creating if needed) the database at `path`.
    public static func open(path: String, readerCount: Int = 2, logger: Logger) async throws -> SQLiteStorage {
        let threadPool = NIOThreadPool(numberOfThreads: max(1, readerCount) + 1)
        threadPool.start()
        do {
            return try await open(path: path, readerCount: readerCount, threadPool: threadPool, logger: logger)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    private static func open(path: String, readerCount: Int, threadPool: NIOThreadPool, logger: Logger) async throws -> SQLiteStorage {
        let eventLoops = MultiThreadedEventLoopGroup.singleton
        let writer = try await SQLiteConnection.open(storage: .file(path: path), threadPool: threadPool, logger: logger, on: eventLoops.any())
        for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 5000"] {
            _ = try await writer.query(pragma, [])
        }
        var readers: [SQLiteConnection] = []
        for _ in 0..<max(1, readerCount) {
            let reader = try await SQLiteConnection.open(storage: .file(path: path), threadPool: threadPool, logger: logger, on: eventLoops.any())
            for pragma in ["PRAGMA query_only = ON", "PRAGMA busy_timeout = 5000"] {
                _ = try await reader.query(pragma, [])
            }
            readers.append(reader)
        }
        return SQLiteStorage(writer: writer, readers: readers, threadPool: threadPool, logger: logger)
    }

    /// Closes the connections and stops the storage's threads; later calls do nothing. It finishes in a cancelled
    /// task too (a failed start cancels the service that closes it): the work runs in a task of its own.
    public func close() async throws {
        guard
            closed.withLock({ closed in
                defer { closed = true }; return !closed
            })
        else { return }
        try await Task { [readers, writer, threadPool] in
            for reader in readers { try await reader.close() }
            try await writer.close()
            try await threadPool.shutdownGracefully()
        }.value
    }

    // MARK: Plumbing shared by the repository extensions

    public var poolUsage: DatabasePoolUsage {
        DatabasePoolUsage(maximumConnections: readers.count + 1, operationsInFlight: inFlight.load(ordering: .relaxed))
    }

    /// Counts `body` in `poolUsage` while it runs.
    func tracked<T>(_ body: () async throws -> T) async rethrows -> T {
        inFlight.add(1, ordering: .relaxed)
        defer { inFlight.subtract(1, ordering: .relaxed) }
        return try await body()
    }

    static func transaction<T: Sendable>(
        writer: SQLiteConnection, lock: AsyncSemaphore, _ body: @Sendable @escaping (SQLiteConnection) async throws -> T
    ) async throws -> T {
        try await lock.withPermit {
            let connection = writer
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            do {
                let result = try await body(connection)
                _ = try await connection.query("COMMIT", [])
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK", [])
                throw error
            }
        }
    }
}
