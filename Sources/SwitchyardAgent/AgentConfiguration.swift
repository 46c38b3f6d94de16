import Foundation
import Yams

/// What `switchyard agent` needs: flags override `switchyard-agent.yaml`, which overrides the defaults
/// (docs/agent.md lists every key).
public struct AgentConfiguration: Sendable, Equatable {
    /// The control plane's base URL (`http(s)://host:port`); several replicas' URLs separated by commas, tried in
    /// turn when a session drops.
    public var server: String = "http://127.0.0.1:8080"
    /// The `ak-` key.
    public var key: String = ""
    /// The local ComfyUI.
    public var comfyUI: String = "http://127.0.0.1:8188"
    /// The tool it runs tasks on: `comfyui` or `nerfstudio` (`--tool`; docs/agent.md).
    public var tool = "comfyui"
    /// Where Nerfstudio's `ns-*` commands are (`--nerfstudio-bin`); nil: on `PATH`.
    public var nerfstudioBin: String?
    /// Where Nerfstudio attempts work, one folder each (`--work-dir`).
    public var workDirectory = "./switchyard-agent-work"
    /// How long a cancelled Nerfstudio process has after SIGINT before it is killed.
    public var cancelGrace: Duration = .seconds(10)
    /// Stable across restarts; defaults to the host name.
    public var agentId: String = ProcessInfo.processInfo.hostName
    public var labels: [String] = []
    /// True: `gpu` (among `labels`) is advertised only when ComfyUI reports a GPU device. False when the operator
    /// listed `gpu` themselves.
    public var detectGPU = true
    public var region: String?
    public var capacity: Int = 1
    /// Offers accepted beyond `capacity` and queued in ComfyUI's own queue, so it never idles between tasks.
    public var prefetch: Int = 2
    /// How often an engine that does not answer is probed again.
    public var unhealthyProbeInterval: Duration = .seconds(1)
    public var communityOptIn = false
    /// The models root the team's models are synced into (`<model_type>/<path>` below it): ComfyUI's own `models/`
    /// folder, or a folder it reads through `extra_model_paths.yaml`. Nil: no sync.
    public var modelsDirectory: String?
    /// False for machines whose models are managed by hand (`--no-model-sync`).
    public var modelSync = true
    /// How many models download at once.
    public var modelDownloads = 2
    /// The most bytes the synced models may take (`--models-max-bytes`); nil: no limit. Past it the agent keeps the
    /// models fetched first and fetches the others when a task needs them, removing the least recently used files
    /// no running task needs.
    public var modelsMaxBytes: Int?
    /// How long a file the agent placed stays after its model left the team's set (a task that started with it
    /// keeps it).
    public var modelRemovalGrace: Duration = .seconds(600)

    public init() {}

    /// The gateway's WebSocket URL for (the first of) `server`.
    public var gatewayURL: String { gatewayURLs[0] }

    /// The gateway's WebSocket URL of every server listed.
    public var gatewayURLs: [String] {
        let listed = server.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return (listed.isEmpty ? [server] : listed).map { server in
            var base = server.hasSuffix("/") ? String(server.dropLast()) : server
            if base.hasPrefix("https://") { base = "wss://" + base.dropFirst("https://".count) }
            if base.hasPrefix("http://") { base = "ws://" + base.dropFirst("http://".count) }
            return base + "/api/v1/agent/connect"
        }
    }

    /// The labels advertised: the defaults for the tool (`gpu`, `comfyui`) plus the configured ones, deduplicated.
    public static func advertisedLabels(configured: [String], tool: String) -> [String] {
        var seen: Set<String> = []
        return (["gpu", tool] + configured).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter {
            !$0.isEmpty && seen.insert($0).inserted
        }
    }

    /// The configuration of `file` (or of `./switchyard-agent.yaml` when there is one and `file` is nil), and the path
    /// it was read from; the defaults when there is none. An unreadable or invalid file is an error naming it.
    public static func load(file: String?) throws -> (configuration: AgentConfiguration, path: String?) {
        var configuration = AgentConfiguration()
        let path = file ?? (FileManager.default.fileExists(atPath: "switchyard-agent.yaml") ? "switchyard-agent.yaml" : nil)
        guard let path else { return (configuration, nil) }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Invalid(description: "cannot read config file \(path)") }
        do { try configuration.apply(yaml: text) } catch { throw Invalid(description: "\(path): \(error)") }
        return (configuration, path)
    }

    /// "2.1 GB", "340 MB", "12 KB", "7 B" (powers of 1000, as disks are sold).
    public static func sizeText(_ bytes: Int) -> String {
        for (scale, unit) in [(1e9, "GB"), (1e6, "MB"), (1e3, "KB")] where Double(bytes) >= scale {
            return String(format: "%.1f", Double(bytes) / scale) + " " + unit
        }
        return "\(bytes) B"
    }

    /// `500000`, `200G`, `1.5T` (powers of 1024); nil for anything else or less than 1.
    public static func byteCount(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var number = Substring(trimmed)
        var scale = 1.0
        if let last = number.last, let unit = units[last] {
            scale = unit
            number = number.dropLast()
        }
        guard let value = Double(number), value.isFinite, value * scale >= 1, value * scale < 9e18 else { return nil }
        return Int(value * scale)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Applies the keys of a `switchyard-agent.yaml` (`server`, `key`, `comfyui`, `agent_id`, `agent_labels`,
    /// `region`, `capacity`, `prefetch`, `community_opt_in`, `models_dir`, `model_sync`, `tool`, `nerfstudio_bin`, `work_dir`), read with Yams; an unknown key or a malformed value is
    /// an error naming it.
    public mutating func apply(yaml text: String) throws {
        let document: Node?
        do { document = try Yams.compose(yaml: text) } catch { throw Invalid(description: "not YAML: \(error)") }
        guard let document else { return }
        guard let mapping = document.mapping else { throw Invalid(description: "expected key: value lines at the top level") }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? "\(keyNode)"
            switch (key, value.scalar?.string, value.sequence) {
            case ("server", let text?, _): server = text
            case ("key", let text?, _): self.key = text
            case ("comfyui", let text?, _): comfyUI = text
            case ("tool", let text?, _):
                guard ["comfyui", "nerfstudio"].contains(text) else { throw Invalid(description: "tool: \"\(text)\" is not comfyui or nerfstudio") }
                tool = text
            case ("nerfstudio_bin", let text?, _): nerfstudioBin = text.isEmpty ? nil : text
            case ("work_dir", let text?, _): workDirectory = text
            case ("agent_id", let text?, _): agentId = text
            case ("region", let text?, _): region = text
            case ("models_dir", let text?, _): modelsDirectory = text.isEmpty ? nil : text
            case ("models_max_bytes", let text?, _):
                guard let bytes = Self.byteCount(text) else {
                    throw Invalid(description: "models_max_bytes: \"\(text)\" is not a size (bytes, or with K, M, G or T)")
                }
                modelsMaxBytes = bytes
            case ("model_sync", let text?, _):
                guard let flag = ["true": true, "yes": true, "false": false, "no": false][text.lowercased()] else {
                    throw Invalid(description: "model_sync: \"\(text)\" is not true or false")
                }
                modelSync = flag
            case ("agent_labels", _, let items?):
                labels = try items.map { item in
                    guard let label = item.scalar?.string else { throw Invalid(description: "agent_labels: each label must be a text") }
                    return label
                }
            case ("agent_labels", ""?, _): labels = []
            case ("capacity", let text?, _):
                guard let number = Int(text), (1...256).contains(number) else { throw Invalid(description: "capacity: \"\(text)\" is not 1–256") }
                capacity = number
            case ("prefetch", let text?, _):
                guard let number = Int(text), (0...64).contains(number) else { throw Invalid(description: "prefetch: \"\(text)\" is not 0–64") }
                prefetch = number
            case ("community_opt_in", let text?, _):
                guard let flag = ["true": true, "yes": true, "false": false, "no": false][text.lowercased()] else {
                    throw Invalid(description: "community_opt_in: \"\(text)\" is not true or false")
                }
                communityOptIn = flag
            case ("agent_labels", _, _): throw Invalid(description: "agent_labels must be a list")
            default: throw Invalid(description: "\(key): unknown key, or a list where a value belongs")
            }
        }
    }
}
