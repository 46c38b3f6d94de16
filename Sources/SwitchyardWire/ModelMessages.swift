import Foundation
import SwitchyardCore

/// Model sync on the wire (docs/agent-protocol.md, "Models"): the gateway sends an agent that syncs the team's
/// active models with a presigned GET each, again whenever that set changes; the agent reports what it holds.
extension GatewayMessage {
    /// The team's whole sync set (not a difference): the agent fetches what it lacks and, after a grace, removes
    /// files it placed that are no longer listed.
    public struct Models: Codable, Sendable, Equatable {
        public var models: [ModelEntry]

        public init(models: [ModelEntry]) { self.models = models }
    }

    /// One model of the sync set, with where to fetch it.
    public struct ModelEntry: Codable, Sendable, Equatable {
        public var modelId: String
        public var displayName: String
        /// Where it goes under the models root: `<model_type>/<path>`, as `required_models` names it.
        public var placement: String
        public var fileSize: Int64
        /// `sha256:` and 64 hex digits, as registered; nil when it was registered without one (the size is checked).
        public var fileHash: String?
        /// A presigned GET of the file; `url_expires_at` says until when (ask `model_url_request` for a fresh one).
        public var url: String
        public var urlExpiresAt: Date

        public init(
            modelId: String, displayName: String, placement: String, fileSize: Int64, fileHash: String?, url: String, urlExpiresAt: Date
        ) {
            self.modelId = modelId
            self.displayName = displayName
            self.placement = placement
            self.fileSize = fileSize
            self.fileHash = fileHash
            self.url = url
            self.urlExpiresAt = urlExpiresAt
        }

        enum CodingKeys: String, CodingKey {
            case url, placement
            case modelId = "model_id"
            case displayName = "display_name"
            case fileSize = "file_size"
            case fileHash = "file_hash"
            case urlExpiresAt = "url_expires_at"
        }
    }

    /// The answer to a `model_url_request`: a fresh GET, or none when the model left the sync set (the agent then
    /// stops the download and removes its partial file).
    public struct ModelURL: Codable, Sendable, Equatable {
        public var requestId: String
        public var modelId: String
        public var url: String?
        public var urlExpiresAt: Date?

        public init(requestId: String, modelId: String, url: String?, urlExpiresAt: Date?) {
            self.requestId = requestId
            self.modelId = modelId
            self.url = url
            self.urlExpiresAt = urlExpiresAt
        }

        enum CodingKeys: String, CodingKey {
            case url
            case requestId = "request_id"
            case modelId = "model_id"
            case urlExpiresAt = "url_expires_at"
        }
    }
}

extension AgentMessage {
    /// What the agent holds (on change; its hello carries the first list): the placements it verified, and the
    /// models it could not take (a hash mismatch, a full disk), which it does not retry until the set changes.
    public struct ModelsHeld: Codable, Sendable, Equatable {
        /// `<model_type>/<model_path>` of each model on disk, verified.
        public var held: [String]
        public var broken: [BrokenModel]

        public init(held: [String], broken: [BrokenModel] = []) {
            self.held = held
            self.broken = broken
        }
    }

    public struct BrokenModel: Codable, Sendable, Equatable {
        public var modelId: String
        public var placement: String
        public var error: String

        public init(modelId: String, placement: String, error: String) {
            self.modelId = modelId
            self.placement = placement
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case placement, error
            case modelId = "model_id"
        }
    }

    /// Asks for a fresh presigned GET of one model (the one it had expired mid-file).
    public struct ModelURLRequest: Codable, Sendable, Equatable {
        public var requestId: String
        public var modelId: String

        public init(requestId: String, modelId: String) {
            self.requestId = requestId
            self.modelId = modelId
        }

        enum CodingKeys: String, CodingKey {
            case requestId = "request_id"
            case modelId = "model_id"
        }
    }
}

extension AgentMessage {
    /// A line for the attempt's task: a `status` event with `message` (its status unchanged), e.g. "syncing model
    /// checkpoints/sdxl.safetensors (6.9 GB) before the task runs".
    public struct AttemptNote: Codable, Sendable, Equatable {
        public var attemptId: String
        public var message: String

        public init(attemptId: String, message: String) {
            self.attemptId = attemptId
            self.message = message
        }

        enum CodingKeys: String, CodingKey {
            case message
            case attemptId = "attempt_id"
        }
    }
}

/// The step of a sync an agent reports while `syncing` (api.md §3.4 `sync_phase`).
public enum SyncPhase: String, Codable, Sendable, CaseIterable {
    case checking
    case downloading
    case verifying
}
