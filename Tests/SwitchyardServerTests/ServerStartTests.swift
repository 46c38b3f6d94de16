import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServiceLifecycle
import SwitchyardCore
import SwitchyardSQLite
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

/// What a start does before the server listens, and what waits for it.
@Suite("Server start: lifecycle")
struct ServerStartTests {
    struct Refused: Error {}

    actor Log {
        var entries: [String] = []
        func append(_ entry: String) { entries.append(entry) }
    }

    struct Probe: Service {
        let log: Log
        func run() async throws { await log.append("service began") }
    }

    @Test("building reads nothing from the database; the start migrates and bootstraps before the first request is answered")
    func startMigratesAndBootstraps() async throws {
        try await TestEnvironment.with(.sqlite) { environment in
            try await withStorage(configuration: environment.configuration, logger: testLogger) { storage in
                let built = try await buildApplication(configuration: environment.configuration, storage: storage, logger: testLogger)
                #expect(!built.startup.isFinished && built.bootstrap == nil)
                await #expect(throws: (any Error).self, "no schema yet") { try await storage.setting(SettingKey.loginDecoyHash) }
                try await built.application.test(.router) { client in
                    #expect(built.startup.isFinished)
                    let bootstrap = try #require(built.bootstrap)
                    let tasks = try await client.execute(
                        uri: "/api/v1/r/tasks", method: .get, headers: [.authorization: "Bearer \(bootstrap.integrationKey)"])
                    #expect(tasks.status == .ok)
                }
            }
        }
    }

    @Test("a failed start fails the application before it answers anything")
    func failedStart() async throws {
        try await TestEnvironment.with(.sqlite) { environment in
            var unmigrated = environment.configuration
            unmigrated.migrateOnStart = false
            let configuration = unmigrated
            try await withStorage(configuration: configuration, logger: testLogger) { storage in
                let built = try await buildApplication(configuration: configuration, storage: storage, logger: testLogger)
                await #expect(throws: (any Error).self) {
                    try await built.application.test(.router) { _ in Issue.record("the application answered after a failed start") }
                }
                #expect(!built.startup.isFinished)
            }
        }
    }

    @Test("a service that needs the database begins after the start's work, and never after a failed start")
    func servicesWait() async throws {
        let log = Log()
        let failed = ServerStartup()
        await #expect(throws: Refused.self) { try await failed.run { throw Refused() } }
        try await AfterStart(startup: failed, service: Probe(log: log)).run()
        #expect(await log.entries.isEmpty)

        let startup = ServerStartup()
        async let service: Void = AfterStart(startup: startup, service: Probe(log: log)).run()
        try await startup.run { await log.append("start work done") }
        try await service
        #expect(await log.entries == ["start work done", "service began"])
    }

    @Test("SQLite's connections close in a cancelled task too (a failed start cancels the service that closes them)")
    func sqliteClosesWhenCancelled() async throws {
        try await TestEnvironment.with(.sqlite) { environment in
            let storage = try await openStorage(configuration: environment.configuration, logger: testLogger)
            #expect(storage is SQLiteStorage)
            try await storage.migrate()
            let closing = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                try await storage.close()
            }
            try await closing.value
            await #expect(throws: (any Error).self) { try await storage.ping() }
        }
    }
}
