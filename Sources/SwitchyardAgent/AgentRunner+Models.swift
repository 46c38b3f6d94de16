import Foundation
import SwitchyardWire

/// The agent's model sync (docs/agent.md, "Models"): where its models root is, and what the sync's news means for
/// the agent's status and messages.
extension AgentRunner {
    /// Starts syncing the team's models into `--models-dir`, or, without it, into the models folder ComfyUI says it
    /// reads (`/internal/folder_paths`: the folder holding its `checkpoints`). Tried before each session until
    /// ComfyUI says (it may come up after the agent); a models root the agent cannot write turns sync off, with the
    /// reason in the log: the agent still runs tasks.
    func startModelSync() async {
        var directory = configuration.modelsDirectory
        if directory == nil {
            guard let folders = await executor.modelFolders(), let found = Self.modelsRoot(in: folders) else {
                if !modelSyncOffLogged {
                    modelSyncOffLogged = true
                    logger.warning("model sync is off: no --models-dir, and ComfyUI does not say where its models are (/internal/folder_paths)")
                }
                return
            }
            directory = found
        }
        guard let directory else { return }
        let cache: ModelCache
        do {
            cache = try ModelCache(root: URL(fileURLWithPath: directory, isDirectory: true), http: http)
        } catch {
            modelSyncUnusable = true
            logger.error("model sync is off: the models root cannot be used", metadata: ["models_root": "\(directory)", "error": "\(error)"])
            return
        }
        let sync = ModelSync(
            cache: cache,
            maximumConcurrent: configuration.modelDownloads, removalGrace: configuration.modelRemovalGrace,
            maximumBytes: configuration.modelsMaxBytes, logger: logger)
        models = sync
        modelEvents = Task {
            for await event in sync.events { await self.syncEvent(event) }
        }
        logger.info("syncing the team's models", metadata: ["models_root": "\(directory)"])
    }

    /// ComfyUI's models folder: the parent of its first `checkpoints` folder, when that is named so.
    public static func modelsRoot(in folders: [String: [String]]) -> String? {
        guard let checkpoints = folders["checkpoints"]?.first else { return nil }
        let url = URL(fileURLWithPath: checkpoints, isDirectory: true).standardizedFileURL
        guard url.lastPathComponent == "checkpoints" else { return nil }
        return url.deletingLastPathComponent().path
    }

    /// The model sync's news: its progress as the agent's status (`syncing` while it fetches), what it holds, and
    /// its requests for fresh URLs.
    func syncEvent(_ event: ModelSync.Event) {
        switch event {
        case .progress(let progress):
            syncProgress = progress
            let previous = status
            status = currentStatus()
            if let progress, status == .syncing {
                post(.status(.init(status: .syncing, detail: progress.detail, syncPercent: progress.fraction, syncPhase: progress.phase)))
            } else if status != previous {
                post(.status(.init(status: status, detail: health.detail)))
            }
        case .holdings(let holdings):
            post(.models(holdings))
        case .needsURL(let request):
            post(.modelURLRequest(request))
        }
    }
}
