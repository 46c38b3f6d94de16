import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import SwitchyardAgent
import SwitchyardClient
import SwitchyardCore

/// Where an agent's models root is: `--models-dir`, `models_dir:` in the config file, or the folder its ComfyUI
/// reads checkpoints from.
struct ModelsRootOptions: ParsableArguments {
    @Option(name: .long, help: "The agent's models root (default: models_dir: in the config file, else ComfyUI's models folder).")
    var modelsDir: String?

    @Option(name: .long, help: "The local ComfyUI, asked where its models are (default http://127.0.0.1:8188).")
    var comfyui: String?

    @Option(name: .long, help: "Config file (default ./switchyard-agent.yaml when present).")
    var config: String?

    func configuration() throws -> AgentConfiguration {
        var configuration: AgentConfiguration
        do { configuration = try AgentConfiguration.load(file: config).configuration } catch { throw ValidationError("\(error)") }
        if let modelsDir { configuration.modelsDirectory = modelsDir }
        if let comfyui { configuration.comfyUI = comfyui }
        return configuration
    }

    /// The models root, and ComfyUI's model folders when it answered.
    func root() async throws -> (root: String, folders: [String: [String]]?) {
        let configuration = try configuration()
        let executor = ComfyUIExecutor(baseURL: configuration.comfyUI, logger: Logger(label: "switchyard.agent.models"))
        defer { executor.close() }
        let folders = await executor.modelFolders()
        if let directory = configuration.modelsDirectory { return (directory, folders) }
        guard let folders, let found = AgentRunner.modelsRoot(in: folders) else {
            throw ValidationError("no models root: pass --models-dir (ComfyUI at \(configuration.comfyUI) did not say where its models are)")
        }
        return (found, folders)
    }
}

/// `switchyard agent models`: what the agent placed, what it is downloading, and — with a `switchyard login` on
/// this machine — what it would fetch and remove to match the team's set.
struct AgentModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the models this agent placed, its partial downloads, and what it would fetch or remove.",
        discussion: "What it would fetch needs `switchyard login` on this machine (the team's models are read with its device key)."
    )

    @OptionGroup var options: ModelsRootOptions

    func run() async throws {
        let (root, _) = try await options.root()
        let (held, partial) = try ModelCache.recorded(at: URL(fileURLWithPath: root, isDirectory: true))
        print("models root: \(root)")
        print(held.isEmpty ? "placed: none" : "placed:")
        for model in held {
            print("  \(model.relativePath)  \(Self.size(model.size))  \(model.digest)  placed \(RFC3339.format(model.placedAt))")
        }
        for (id, bytes) in partial.sorted(by: { $0.key < $1.key }) { print("downloading: model \(id), \(Self.size(bytes)) so far") }
        guard let login = try? StoredLogin.load() else {
            print("(run `switchyard login` on this machine to compare with the team's models)")
            return
        }
        let wanted = try await Self.teamSet(login)
        let placed = Set(held.map(\.relativePath))
        let missing = wanted.filter { !placed.contains($0.key) }.sorted { $0.key < $1.key }
        let extra = placed.subtracting(wanted.keys).sorted()
        print(missing.isEmpty ? "would fetch: nothing" : "would fetch:")
        for (placement, model) in missing { print("  \(placement)  \(Self.size(model.fileSize))  (\(model.displayName), \(model.id.lowercased))") }
        print(extra.isEmpty ? "would remove: nothing" : "would remove (no longer in the team's set):")
        for placement in extra { print("  \(placement)") }
    }

    /// The team's synced models by placement, read page by page with the stored device key.
    static func teamSet(_ login: StoredLogin) async throws -> [String: ModelRecord] {
        var models: [String: ModelRecord] = [:]
        var page = 1
        while true {
            var request = HTTPClientRequest(url: "\(login.server)/api/v1/models?current_page=\(page)&per_page=100")
            request.headers.add(name: "Authorization", value: "Bearer \(login.deviceKey)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 16 << 20)
            guard response.status.code == 200, let listed = try? JSONValue.parse(Array(buffer: body)) else {
                throw ValidationError("\(login.server) answered GET /api/v1/models with \(response.status.code)")
            }
            let items = listed["model_list"]?.arrayValue ?? []
            for item in items {
                guard let record = Self.record(item), record.status == .active, let placement = record.placement else { continue }
                models[placement] = record
            }
            guard items.count == 100 else { return models }
            page += 1
        }
    }

    static func record(_ item: JSONValue) -> ModelRecord? {
        guard let id = item["id"]?.stringValue.flatMap(UUID.init(uuidString:)), let type = item["model_type"]?.stringValue,
            let status = item["model_status"]?.stringValue.flatMap(ModelRecord.Status.init(rawValue:))
        else { return nil }
        return ModelRecord(
            id: id, teamId: UUID(), displayName: item["display_name"]?.stringValue ?? "", modelType: type,
            storageKey: item["storage_key"]?.stringValue ?? "", fileSize: item["file_size"]?.numberValue?.intValue ?? 0,
            fileHash: item["file_hash"]?.stringValue,
            modelPath: item["model_path"]?.stringValue, status: status, createdAt: Date(), updatedAt: Date())
    }

    static func size(_ bytes: Int) -> String { AgentConfiguration.sizeText(bytes) }
}

/// `switchyard agent print-model-paths`: the `extra_model_paths.yaml` entry that makes ComfyUI read a models root
/// kept apart from its own folder.
struct AgentModelPathsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print-model-paths",
        abstract: "Print the extra_model_paths.yaml entry that makes ComfyUI read the agent's models root.",
        discussion: "Add it to ComfyUI's extra_model_paths.yaml and restart ComfyUI once; synced models then appear without restarts."
    )

    @OptionGroup var options: ModelsRootOptions

    /// ComfyUI's model types, for a ComfyUI that does not list its own.
    static let standardTypes = [
        "checkpoints", "clip", "clip_vision", "controlnet", "diffusers", "diffusion_models", "embeddings", "gligen", "hypernetworks",
        "loras", "photomaker", "style_models", "text_encoders", "unet", "upscale_models", "vae", "vae_approx",
    ]

    func run() async throws {
        let configuration = try options.configuration()
        guard let root = configuration.modelsDirectory else {
            throw ValidationError("pass --models-dir (or models_dir: in the config file): the folder the agent syncs into")
        }
        let (_, folders) = try await options.root()
        print(Self.yaml(root: root, types: folders.map { Array($0.keys) } ?? Self.standardTypes))
    }

    static func yaml(root: String, types: [String]) -> String {
        let listed = types.filter { !["custom_nodes", "configs"].contains($0) }.sorted()
        return (["switchyard:", "  base_path: \(root)"] + listed.map { "  \($0): \($0)" }).joined(separator: "\n")
    }
}
