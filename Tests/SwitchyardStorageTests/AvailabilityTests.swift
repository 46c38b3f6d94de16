import Foundation
import SwitchyardCore
import SwitchyardPostgres
import SwitchyardTestSupport
import Testing
import _ConnectionPoolModule

/// A database that cannot be reached is told apart from a request that is wrong: the API answers 503 for the
/// first (the error middleware asks `isUnavailable`), 500 for an unknown failure.
@Suite("Database availability")
struct AvailabilityTests {
    @Test("PostgreSQL: a pool that cannot connect is unavailable; a failing statement on a live server is not")
    func postgres() async throws {
        guard let base = TestBackend.postgresURL else { return }  // CI always sets it (TestBackendsTests)
        let storage = try PostgresStorage(url: base, logger: testLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await storage.run() }
            defer { group.cancelAll() }
            try await storage.ping()
            #expect(storage.isReachable)
            // The base database has no schema: the statement fails, the server is there.
            let error = await #expect(throws: (any Error).self) { _ = try await storage.task(id: UUID(), teamId: UUID()) }
            #expect(error.map(storage.isUnavailable) == false, "\(String(reflecting: error))")
            #expect(storage.isUnavailable(ConnectionPoolError.connectionCreationCircuitBreakerTripped))
            #expect(!storage.isUnavailable(SwitchyardError.invalid("x")))
        }
    }
}
