import ArgumentParser
import Configuration
import Foundation
import SwitchyardServer
import SystemPackage

/// Flags shared by `serve` and `migrate`. Each flag wins over its environment variable, which wins over the
/// config file, which wins over the default (docs/configuration.md).
struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "JSON config file (env SWITCHYARD_CONFIG).")
    var config: String?

    @Option(name: .long, help: "Directory for the SQLite database, objects and bootstrap.json (default ./switchyard-data).")
    var dataDir: String?

    @Option(name: .long, help: "postgres://user:password@host:5432/db to use PostgreSQL instead of SQLite.")
    var databaseURL: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Option(name: .long, help: "Log format: text (key=value lines) or json (one object per line).")
    var logFormat: String?

    /// Flag values as configuration keys, for the highest-priority provider.
    func flagValues() -> [AbsoluteConfigKey: ConfigValue] {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        if let dataDir { values["data.dir"] = ConfigValue(.string(dataDir), isSecret: false) }
        if let databaseURL { values["database.url"] = ConfigValue(.string(databaseURL), isSecret: true) }
        if let logLevel { values["log.level"] = ConfigValue(.string(logLevel), isSecret: false) }
        if let logFormat { values["log.format"] = ConfigValue(.string(logFormat), isSecret: false) }
        return values
    }

    /// Reads flags, `SWITCHYARD_*` variables and the config file into a validated configuration.
    func loadConfiguration(extraFlags: [AbsoluteConfigKey: ConfigValue] = [:]) async throws -> ServerConfiguration {
        let environment = ProcessInfo.processInfo.environment
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "flags", values: flagValues().merging(extraFlags) { $1 }),
            EnvironmentVariablesProvider(
                environmentVariables: environment,
                secretsSpecifier: .specific(["SWITCHYARD_DATABASE_URL", "SWITCHYARD_S3_SECRET_KEY", "SWITCHYARD_SECRETS_KEY"])
            ).prefixKeys(with: "switchyard"),
        ]
        if let path = config ?? environment["SWITCHYARD_CONFIG"] {
            guard FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("config file \(path) does not exist")
            }
            providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(path)))
        }
        do {
            return try ServerConfiguration(reader: ConfigReader(providers: providers))
        } catch let error as ServerConfiguration.Invalid {
            throw ValidationError(error.description)
        }
    }
}
