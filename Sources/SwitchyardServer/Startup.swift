import ServiceLifecycle
import SwitchyardConcurrency
import SwitchyardCore
import SwitchyardPostgres

/// What one start of the server does before it listens (`beforeServerStarts`: migrations, the first start's
/// bootstrap, the secrets read from the database) and whether that is done: the services that use the database
/// (`AfterStart`) begin only once it is.
public final class ServerStartup: Sendable {
    /// Opens when the start's work is done; fails with its error.
    let finished = AsyncLatch()
    private let result = StartupValue<BootstrapResult>()

    /// The secrets this start created, or nil when the database was bootstrapped before (or the start is not done).
    public var bootstrap: BootstrapResult? { result.ifSet }

    /// Whether the start's work is done.
    public var isFinished: Bool { finished.isOpen }

    func record(_ bootstrap: BootstrapResult?) {
        if let bootstrap { result.set(bootstrap) }
    }

    /// Runs the start's `work`, opening `finished` when it succeeds and failing it (and the start) when it throws.
    func run(_ work: () async throws -> Void) async throws {
        do {
            try await work()
            finished.open()
        } catch {
            finished.fail(error)
            throw error
        }
    }
}

/// A service that uses the migrated database: it begins when the server's start is done. A graceful shutdown (or a
/// failed start) before then ends it without beginning.
struct AfterStart<Wrapped: Service>: Service {
    let startup: ServerStartup
    let service: Wrapped

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await startup.finished.wait() }
        } catch {
            // Shut down before the start finished, or the start failed (the server reports why).
            return
        }
        try await service.run()
    }
}

/// The storage as a service: the first one added, so it is the last to shut down — after the HTTP server, the
/// dispatcher, the reaper and the webhook sender have finished with it. PostgreSQL's pool (and its `LISTEN`
/// connection) runs until then; SQLite's connections close then.
struct StorageService: Service {
    let storage: any SwitchyardStorage

    func run() async throws {
        if let postgres = storage as? PostgresStorage {
            await cancelWhenGracefulShutdown { try? await postgres.run() }
        } else {
            // Ends at the graceful shutdown, or when a failed start cancels the services: either way, close.
            try? await gracefulShutdown()
        }
        try await storage.close()
    }
}
