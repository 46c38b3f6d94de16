import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardAgent
import SwitchyardClient
import SwitchyardServer
import SwitchyardWire
import Synchronization

/// `switchyard agent …`: runs the agent (`run`, the default, so `switchyard agent --server …` runs it), or looks at
/// its models.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run a GPU agent: dial out to the control plane and run its tasks on a local ComfyUI (or Nerfstudio).",
        discussion: "`switchyard agent [options]` runs it (the run subcommand). See docs/agent.md.",
        subcommands: [AgentRunCommand.self, AgentModelsCommand.self, AgentModelPathsCommand.self], defaultSubcommand: AgentRunCommand.self
    )
}

struct AgentRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a GPU agent: dial out to the control plane and run its tasks on a local ComfyUI (the default).",
        discussion: "Flags override the config file; the key can also come from SWITCHYARD_AGENT_KEY. See docs/agent.md."
    )

    @Option(name: .long, help: "The control plane's URL (default http://127.0.0.1:8080); several replicas' URLs separated by commas.")
    var server: String?

    @Option(name: .long, help: "A file holding the agent key (ak-…), e.g. a systemd credential (env SWITCHYARD_AGENT_KEY_FILE).")
    var keyFile: String?

    @Option(name: .long, help: "The agent key (ak-…); prefer SWITCHYARD_AGENT_KEY, --key-file or the config file.")
    var key: String?

    @Option(name: .long, help: "The local ComfyUI (default http://127.0.0.1:8188).")
    var comfyui: String?

    @Option(name: .long, help: "The tool tasks run on: comfyui (default) or nerfstudio (advertises the nerfstudio label).")
    var tool: String?

    @Option(name: .long, help: "Where Nerfstudio's ns-process-data, ns-train and ns-export are (default: on PATH).")
    var nerfstudioBin: String?

    @Option(name: .long, help: "Where Nerfstudio attempts work, a folder each (default ./switchyard-agent-work).")
    var workDir: String?

    @Option(name: .long, help: "Extra labels, comma-separated (gpu and comfyui are always advertised).")
    var labels: String?

    @Option(name: .long, help: "The agent's region (an opaque string, e.g. eu-west).")
    var region: String?

    @Option(name: .long, help: "How many tasks it runs at once (default 1).")
    var capacity: Int?

    @Option(name: .long, help: "Offers taken beyond --capacity and queued in ComfyUI's own queue, so it never idles (default 2; 0 turns it off).")
    var prefetch: Int?

    @Option(name: .long, help: "A stable id for this agent (default: the host name).")
    var agentId: String?

    @Flag(name: .long, help: "Offer this agent to the community pool (other teams' community tasks).")
    var communityOptIn = false

    @Option(
        name: .long,
        help:
            "Where the team's models are synced (<model_type>/<path> below it): ComfyUI's models/ folder, or one it reads via extra_model_paths.yaml."
    )
    var modelsDir: String?

    @Flag(name: .long, help: "Do not sync the team's models (they are managed by hand on this machine).")
    var noModelSync = false

    @Option(name: .long, help: "The most the synced models may take (bytes, or 500G, 2T); past it models are fetched when a task needs them.")
    var modelsMaxBytes: String?

    @Option(name: .long, help: "Config file (default ./switchyard-agent.yaml when present).")
    var config: String?

    @Option(name: .long, help: "Minimum log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Log format: text (key=value lines) or json (one object per line).")
    var logFormat: String = "text"

    func run() async throws {
        var configuration: AgentConfiguration
        let path: String?
        do { (configuration, path) = try AgentConfiguration.load(file: config) } catch { throw ValidationError("\(error)") }
        // `switchyard login` stored a server and an agent key: used unless the config, a flag or the environment names others.
        if path == nil || configuration.key.isEmpty, let stored = try? StoredLogin.load(), let agentKey = stored.agentKey {
            if server == nil, path == nil { configuration.server = stored.server }
            configuration.key = agentKey
        }
        if let server { configuration.server = server }
        if let file = keyFile ?? ProcessInfo.processInfo.environment["SWITCHYARD_AGENT_KEY_FILE"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read the key file \(file)") }
            configuration.key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let key = key ?? ProcessInfo.processInfo.environment["SWITCHYARD_AGENT_KEY"] { configuration.key = key }
        if let comfyui { configuration.comfyUI = comfyui }
        if let tool {
            guard ["comfyui", "nerfstudio"].contains(tool) else { throw ValidationError("--tool: \"\(tool)\" is not comfyui or nerfstudio") }
            configuration.tool = tool
        }
        if let nerfstudioBin { configuration.nerfstudioBin = nerfstudioBin }
        if let workDir { configuration.workDirectory = workDir }
        if let labels { configuration.labels += labels.split(separator: ",").map(String.init) }
        if let region { configuration.region = region }
        if let capacity {
            guard (1...256).contains(capacity) else { throw ValidationError("--capacity must be 1–256") }
            configuration.capacity = capacity
        }
        if let prefetch {
            guard (0...64).contains(prefetch) else { throw ValidationError("--prefetch must be 0–64") }
            configuration.prefetch = prefetch
        }
        if let agentId { configuration.agentId = agentId }
        if let violation = WireProtocol.agentIdViolation(configuration.agentId) {
            throw ValidationError("\(violation): set one with --agent-id or agent_id: in the config file")
        }
        if communityOptIn { configuration.communityOptIn = true }
        if let modelsDir { configuration.modelsDirectory = modelsDir }
        if noModelSync { configuration.modelSync = false }
        if let modelsMaxBytes {
            guard let bytes = AgentConfiguration.byteCount(modelsMaxBytes) else {
                throw ValidationError("--models-max-bytes: \"\(modelsMaxBytes)\" is not a size (bytes, or with K, M, G or T)")
            }
            configuration.modelsMaxBytes = bytes
        }
        // On the server's own machine, beside its data directory: the first start's agent key.
        if configuration.key.isEmpty, let bootstrap = Self.localBootstrap() {
            configuration.key = bootstrap.agentKey
        }
        configuration.key = configuration.key.trimmingCharacters(in: CharacterSet(charactersIn: "\"' \n"))
        guard configuration.key.hasPrefix("ak-") else {
            let given =
                configuration.key.isEmpty ? "" : " (the key given starts with \"\(configuration.key.prefix(3))\"; sk- and dk- keys are for the API)"
            throw ValidationError(
                "an agent key (ak-…) is required\(given): --key, SWITCHYARD_AGENT_KEY, key: in the config file, switchyard login, or a local server's bootstrap.json"
            )
        }
        configuration.detectGPU = !configuration.labels.contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "gpu" }
        configuration.labels = AgentConfiguration.advertisedLabels(configured: configuration.labels, tool: configuration.tool)
        // Nerfstudio has no models folder of ComfyUI's kind: nothing to sync.
        if configuration.tool == "nerfstudio" { configuration.modelSync = false }

        guard let format = SwitchyardLogHandler.Format(rawValue: logFormat.lowercased()) else {
            throw ValidationError("--log-format: \"\(logFormat)\" is not text or json")
        }
        _ = makeLogger(level: logLevel, format: format)
        let logger = Logger(label: "switchyard.agent")
        let comfy =
            configuration.tool == "comfyui" ? ComfyUIExecutor(baseURL: configuration.comfyUI, agentId: configuration.agentId, logger: logger) : nil
        defer { comfy?.close() }
        let executor: any ToolExecutor =
            comfy
            ?? NerfstudioExecutor(
                binDirectory: configuration.nerfstudioBin, workRoot: configuration.workDirectory, cancelGrace: configuration.cancelGrace,
                logger: logger)
        let runner = AgentRunner(configuration: configuration, executor: executor, logger: logger)
        logger.info(
            "agent starting",
            metadata: [
                "server": "\(configuration.server)", "agent_id": "\(configuration.agentId)", "labels": "\(configuration.labels)",
                "model_sync":
                    "\(configuration.modelSync ? configuration.modelsDirectory ?? "ComfyUI's models folder (/internal/folder_paths)" : "off")",
            ])
        let service = AgentService(runner: runner)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        if let refusal = service.refusal.withLock({ $0 }) {
            // Said plainly and with its own exit code, rather than as the service group's wrapper error.
            FileHandle.standardError.write(Data("error: \(refusal)\n".utf8))
            throw ExitCode(3)
        }
    }

    /// `bootstrap.json` of a server started in this directory (or SWITCHYARD_DATA_DIR), when it is there.
    static func localBootstrap() -> BootstrapResult? {
        let directory = ProcessInfo.processInfo.environment["SWITCHYARD_DATA_DIR"] ?? "./switchyard-data"
        guard let data = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent("bootstrap.json")) else { return nil }
        return try? JSONDecoder().decode(BootstrapResult.self, from: data)
    }
}

/// Runs the agent until SIGTERM/SIGINT, or until the gateway refuses it for good (`refusal` says why).
final class AgentService: Service, Sendable {
    let runner: AgentRunner
    let refusal = Mutex<String?>(nil)

    init(runner: AgentRunner) {
        self.runner = runner
    }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.runner.run() }
        } catch is CancellationError {
            return
        } catch let refused as AgentRunner.Refused {
            refusal.withLock { $0 = refused.description }
        }
    }
}
