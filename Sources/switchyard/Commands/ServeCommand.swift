import ArgumentParser
import Configuration
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOPosix
import Prometheus
import ServiceLifecycle
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

    @Option(name: .long, help: "Port of the embedded S3-compatible store (default 8081; 0 picks a free port).")
    var s3Port: Int?

    @Option(name: .long, help: "Email address of the owner created on first start (default admin@localhost).")
    var adminEmail: String?

    @Flag(name: .long, help: "Do not apply database migrations at start (run `switchyard migrate` yourself).")
    var noMigrate = false

    @Option(name: .long, help: "External S3-compatible endpoint (https://s3.eu-central-1.amazonaws.com); without it the embedded store serves.")
    var s3Endpoint: String?

    @Option(name: .long, help: "Region of the S3 store (default us-east-1).")
    var s3Region: String?

    @Option(name: .long, help: "Bucket for inputs, models and outputs (default switchyard).")
    var s3Bucket: String?

    @Option(name: .long, help: "Access key id for the external S3 store.")
    var s3AccessKey: String?

    @Option(name: .long, help: "Secret access key for the external S3 store (prefer SWITCHYARD_S3_SECRET_KEY).")
    var s3SecretKey: String?

    @Option(name: .long, help: "Path-style addressing (true, the default for custom endpoints) or virtual-hosted (false).")
    var s3PathStyle: Bool?

    @Flag(name: .long, help: "Allow http:// webhooks to loopback hosts (local development and tests only).")
    var allowInsecureWebhooks = false

    func run() async throws {
        var flags: [AbsoluteConfigKey: ConfigValue] = [:]
        if let host { flags["http.host"] = ConfigValue(.string(host), isSecret: false) }
        if let port { flags["http.port"] = ConfigValue(.int(port), isSecret: false) }
        if let s3Port { flags["s3.embeddedPort"] = ConfigValue(.int(s3Port), isSecret: false) }
        if let adminEmail { flags["bootstrap.adminEmail"] = ConfigValue(.string(adminEmail), isSecret: false) }
        if noMigrate { flags["database.migrate"] = ConfigValue(.bool(false), isSecret: false) }
        if let s3Endpoint { flags["s3.endpoint"] = ConfigValue(.string(s3Endpoint), isSecret: false) }
        if let s3Region { flags["s3.region"] = ConfigValue(.string(s3Region), isSecret: false) }
        if let s3Bucket { flags["s3.bucket"] = ConfigValue(.string(s3Bucket), isSecret: false) }
        if let s3AccessKey { flags["s3.accessKey"] = ConfigValue(.string(s3AccessKey), isSecret: false) }
        if let s3SecretKey { flags["s3.secretKey"] = ConfigValue(.string(s3SecretKey), isSecret: true) }
        if let s3PathStyle { flags["s3.pathStyle"] = ConfigValue(.bool(s3PathStyle), isSecret: false) }
        if allowInsecureWebhooks { flags["webhooks.allowInsecure"] = ConfigValue(.bool(true), isSecret: false) }
        let configuration = try await options.loadConfiguration(extraFlags: flags)
        try await Self.checkPortsFree(configuration)
        let logger = makeLogger(level: configuration.logLevel, format: configuration.logFormat)

        // The storage is the application's first service: it starts first and closes last. The start migrates and
        // bootstraps before the server listens (`buildApplication`).
        let storage = try await openStorage(configuration: configuration, logger: logger)
        let baseURL = "http://\(configuration.host):\(configuration.port)"
        let built = try await buildApplication(configuration: configuration, storage: storage, runsStorage: true, logger: logger) { result in
            // Unbuffered, so the secrets reach a redirected stdout even if the process is killed soon after.
            let banner = BootstrapBanner.text(result, baseURL: baseURL, filePath: configuration.bootstrapFilePath)
            FileHandle.standardOutput.write(Data(banner.utf8))
        }
        // Libraries that record through swift-metrics land in the same registry as the server's own metrics.
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: built.metrics.registry))
        logger.info(
            "starting Switchyard",
            metadata: ["database": "\(storage.backendName)", "data_dir": "\(configuration.dataDirectory)", "address": "\(baseURL)"]
        )
        // SIGTERM ends the process within ten seconds whatever the database does: the services get seven to
        // finish in order (agents are told to reconnect elsewhere), then two after cancellation.
        var group = ServiceGroupConfiguration(services: [built.application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(7)
        group.maximumCancellationDuration = .seconds(2)
        try await ServiceGroup(configuration: group).run()
    }
}

extension ServeCommand {
    /// Refuses to start, naming the port and its flag, when another process listens where this one would — before
    /// the first start creates (and prints) secrets for a server that could not have served.
    static func checkPortsFree(_ configuration: ServerConfiguration) async throws {
        var wanted = [(configuration.port, "the API", "--port")]
        if configuration.externalS3 == nil { wanted.append((configuration.embeddedS3Port, "the embedded object store", "--s3-port")) }
        for (port, what, flag) in wanted where port != 0 {
            do {
                // SO_REUSEADDR as the server itself binds: a port whose last connections linger in TIME_WAIT (a
                // restart) is free; one another process listens on is not.
                let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: configuration.host, port: port).get()
                try await channel.close()
            } catch {
                throw ValidationError(
                    "cannot listen on \(configuration.host):\(port) for \(what): \(error) (another switchyard serve?); choose another port with \(flag)"
                )
            }
        }
    }
}

/// Sets up the process's log lines (docs/operations.md) and returns the root logger.
func makeLogger(level: String, format: SwitchyardLogHandler.Format) -> Logger {
    let level = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in SwitchyardLogHandler(label: label, level: level, format: format) }
    return Logger(label: "switchyard")
}
