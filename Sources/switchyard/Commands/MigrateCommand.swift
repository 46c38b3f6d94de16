import ArgumentParser
import SwitchyardServer

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending database migrations and exit (serve also applies them unless --no-migrate)."
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let configuration = try await options.loadConfiguration()
        let logger = makeLogger(level: configuration.logLevel, format: configuration.logFormat)
        try await withStorage(configuration: configuration, logger: logger) { storage in
            try await storage.migrate()
            logger.info("database is up to date", metadata: ["database": "\(storage.backendName)"])
        }
    }
}
