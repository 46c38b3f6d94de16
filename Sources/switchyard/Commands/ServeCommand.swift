import ArgumentParser
import Configuration
import Foundation
import Hummingbird
import Logging
import SwitchyardServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the control plane: REST API, agent gateway and (by default) embedded SQLite storage."
    )

    @OptionGroup var options: ServerOptions

    @Option(name: .long, help: "Interface to listen on (default 127.0.0.1).")
    var host: String?

    @Option(name: .long, help: "Port to listen on (default 8080; 0 picks a free port).")
    var port: Int?

    @Option(name: .long, help: "Email address of the owner created on first start (default admin@localhost).")
    var adminEmail: String?

    @Flag(name: .long, help: "Do not apply database migrations at start (run `switchyard migrate` yourself).")
    var noMigrate = false

    func run() async throws {
        var flags: [AbsoluteConfigKey: ConfigValue] = [:]
        if let host { flags["http.host"] = ConfigValue(.string(host), isSecret: false) }
        if let port { flags["http.port"] = ConfigValue(.int(port), isSecret: false) }
        if let adminEmail { flags["bootstrap.adminEmail"] = ConfigValue(.string(adminEmail), isSecret: false) }
        if noMigrate { flags["database.migrate"] = ConfigValue(.bool(false), isSecret: false) }
        let configuration = try await options.loadConfiguration(extraFlags: flags)
        let logger = makeLogger(level: configuration.logLevel)

        try await withStorage(configuration: configuration, logger: logger) { storage in
            let baseURL = "http://\(configuration.host):\(configuration.port)"
            let built = try await buildApplication(configuration: configuration, storage: storage, logger: logger) { result in
                // Unbuffered, so the secrets reach a redirected stdout even if the process is killed soon after.
                let banner = BootstrapBanner.text(result, baseURL: baseURL, filePath: configuration.bootstrapFilePath)
                FileHandle.standardOutput.write(Data(banner.utf8))
            }
            logger.info(
                "starting Switchyard",
                metadata: ["database": "\(storage.backendName)", "data_dir": "\(configuration.dataDirectory)", "address": "\(baseURL)"]
            )
            try await built.application.runService()
        }
    }
}

func makeLogger(level: String) -> Logger {
    var logger = Logger(label: "switchyard")
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}
