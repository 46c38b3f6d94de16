import Foundation
import SwitchyardCore

// What the API answers, as the client reads it. The server builds these shapes in `Presenters` and its controllers;
// the client declares only the members it uses, so an answer that grows a member stays readable. The SDK's tests
// decode every one of them from a live server's answers, which keeps the two sides in step.

/// One page of a list (api.md §1.3): `{"<kind>_list": [...], "page_meta": {...}}`.
public struct Page<Item: Decodable & Sendable>: Decodable, Sendable {
    public let items: [Item]
    public let currentPage: Int
    public let perPage: Int
    public let totalCount: Int

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    struct Meta: Decodable {
        let current_page: Int
        let per_page: Int
        let total_count: Int
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        // `<kind>_list`, and `credentials` for the keys (api.md §2.9 names that list so).
        guard let listKey = container.allKeys.first(where: { $0.stringValue.hasSuffix("_list") || $0.stringValue == "credentials" }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no …_list member"))
        }
        items = try container.decode([Item].self, forKey: listKey)
        let meta = try container.decode(Meta.self, forKey: Key(stringValue: "page_meta"))
        (currentPage, perPage, totalCount) = (meta.current_page, meta.per_page, meta.total_count)
    }

    /// Whether pages follow this one.
    public var hasMore: Bool { currentPage * perPage < totalCount }
}

/// A task (`GET /r/tasks/{id}`; the list's entries leave out `error`, `parameters` and the queue standing).
public struct TaskInfo: Codable, Sendable, Equatable {
    public let id: UUID
    public let workflowId: UUID
    public let workflowVersion: Int
    public let status: TaskStatus
    /// Why it failed (empty otherwise); nil in a list.
    public let error: String?
    public let parameters: [String: JSONValue]?
    public let agentId: String?
    /// The GPU of the agent that ran it.
    public let gpuType: String?
    /// The server (replica) the agent that ran it was connected to.
    public let gatewayId: String?
    public let retryCount: Int
    public let createdAt: Date
    public let startedAt: Date?
    public let completedAt: Date?
    /// While it waits: 1 when it is next.
    public let queuePosition: Int?
    public let estimatedStartAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, parameters
        case workflowId = "workflow_id"
        case workflowVersion = "workflow_version"
        case status = "task_status"
        case error = "task_error"
        case agentId = "agent_id"
        case gpuType = "gpu_type"
        case gatewayId = "gateway_id"
        case retryCount = "retry_count"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case completedAt = "completed_at"
        case queuePosition = "queue_position"
        case estimatedStartAt = "estimated_start_at"
    }
}

/// `GET /r/tasks/{id}/result`: a completed task's outputs with presigned download URLs.
public struct TaskResult: Codable, Sendable, Equatable {
    public let id: UUID
    public let status: TaskStatus
    public let output: JSONValue?
    /// The primary output's URL.
    public let downloadURL: String?
    /// Every output's URL by its id (`<node_id>.<kind>.<index>`).
    public let downloadURLs: [String: String]
    public let expiresAt: Date?
    public let error: String
    /// Set when the outputs are past the server's retention (no URLs then).
    public let outputsExpiredAt: Date?

    enum CodingKeys: String, CodingKey {
        case id
        case status = "task_status"
        case output = "task_output"
        case downloadURL = "download_url"
        case downloadURLs = "download_urls"
        case expiresAt = "expires_at"
        case error = "task_error"
        case outputsExpiredAt = "outputs_expired_at"
    }

    /// The file name each output has in the store (the last segment of its `storage_key`), by output id.
    public var fileNames: [String: String] {
        guard case .object(let outputs)? = output?["outputs"] else { return [:] }
        var names: [String: String] = [:]
        for (id, file) in outputs {
            if let key = file["storage_key"]?.stringValue, let name = key.split(separator: "/").last { names[id] = String(name) }
        }
        return names
    }
}

/// One event of a task's stream (`GET /r/tasks/{id}/events`): `status`, `progress`, then `completed`, `failed` or
/// `cancelled`.
public struct TaskEvent: Sendable, Equatable {
    /// The sequence number (`id:`); nil for live progress ticks, which are not replayed.
    public let id: Int?
    public let kind: String
    public let data: JSONValue

    /// An event as the stream carries it: its id (nil for progress ticks), name and data.
    public init(id: Int?, kind: String, data: JSONValue) {
        self.id = id
        self.kind = kind
        self.data = data
    }

    /// `completed`, `failed` or `cancelled`: the last event of the stream.
    public var isTerminal: Bool { ["completed", "failed", "cancelled"].contains(kind) }
    /// 0…1 on progress events.
    public var progress: Double? { data["progress"]?.numberValue.flatMap { Double($0.description) } }
    public var currentNode: String? { data["current_node"]?.stringValue }
    public var message: String? { data["message"]?.stringValue }
}

/// A workflow as the API shows it (the graph only on the management detail).
public struct WorkflowInfo: Codable, Sendable, Equatable {
    public let id: UUID
    public let slug: String
    public let displayName: String
    public let description: String?
    public let version: Int
    public let status: String
    public let parameters: [Parameter]
    public let requiredLabels: [String]
    public let requiredModels: [String]?
    public let graph: JSONValue?
    public let updatedAt: Date

    /// One typed parameter (api.md §2.1).
    public struct Parameter: Codable, Sendable, Equatable {
        public let key: String
        public let type: String
        public let label: String?
        public let required: Bool
        public let description: String?
        public let defaultValue: JSONValue?
        public let min: JSONValue?
        public let max: JSONValue?
        public let options: [JSONValue]?
        public let accept: [String]?

        enum CodingKeys: String, CodingKey {
            case key, type, label, required, description, min, max, options, accept
            case defaultValue = "default"
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, description, version, parameters
        case slug = "workflow_slug"
        case displayName = "display_name"
        case status = "workflow_status"
        case requiredLabels = "required_labels"
        case requiredModels = "required_models"
        case graph = "workflow_json"
        case updatedAt = "updated_at"
    }
}

/// One saved version of a workflow.
public struct SnapshotInfo: Codable, Sendable, Equatable {
    public let workflowId: UUID
    public let version: Int
    public let note: String?
    public let createdAt: Date

    enum CodingKeys: String, CodingKey {
        case version, note
        case workflowId = "workflow_id"
        case createdAt = "created_at"
    }
}

/// Where to upload an input file (`POST /r/files/presign`).
public struct PresignedUpload: Codable, Sendable, Equatable {
    /// The value a file parameter takes.
    public let fileKey: String
    public let uploadURL: String
    /// Headers the upload must carry exactly (they are signed).
    public let uploadHeaders: [String: String]
    public let expiresAt: Date

    enum CodingKeys: String, CodingKey {
        case fileKey = "file_key"
        case uploadURL = "upload_url"
        case uploadHeaders = "upload_headers"
        case expiresAt = "expires_at"
    }
}

/// A registered model (api.md §2.4).
public struct ModelInfo: Codable, Sendable, Equatable {
    public let id: UUID
    public let displayName: String
    public let modelType: String
    public let modelPath: String?
    public let storageKey: String
    public let fileSize: Int
    public let fileHash: String?
    /// `active`, `disabled`, `verifying` or `rejected`.
    public let status: String
    public let verificationError: String?

    enum CodingKeys: String, CodingKey {
        case id
        case displayName = "display_name"
        case modelType = "model_type"
        case modelPath = "model_path"
        case storageKey = "storage_key"
        case fileSize = "file_size"
        case fileHash = "file_hash"
        case status = "model_status"
        case verificationError = "verification_error"
    }
}

/// A connected (or recently seen) agent (api.md §2.5).
public struct AgentInfo: Codable, Sendable, Equatable {
    public let agentId: String
    public let status: String
    public let labels: [String]
    public let capacity: Int
    public let runningCount: Int
    public let toolVersion: String?
    public let lastHeartbeat: Date?
    public let syncPhase: String?
    public let syncDetail: String?
    /// How far the sync is, 0–100.
    public let syncPercent: Double?
    /// The model placements it holds (nil for an agent that does not sync models: those are managed by hand).
    public let modelsHeld: [String]?
    /// The models it could not take, and why.
    public let modelsBroken: [BrokenModel]?

    /// A model an agent could not place.
    public struct BrokenModel: Codable, Sendable, Equatable {
        public let modelId: UUID
        public let placement: String
        public let error: String

        enum CodingKeys: String, CodingKey {
            case placement, error
            case modelId = "model_id"
        }
    }

    enum CodingKeys: String, CodingKey {
        case syncPercent = "sync_percent"
        case modelsHeld = "models_held"
        case modelsBroken = "models_broken"
        case agentId = "agent_id"
        case status = "agent_status"
        case labels = "agent_labels"
        case capacity = "gpu_capacity"
        case runningCount = "running_count"
        case toolVersion = "tool_version"
        case lastHeartbeat = "last_heartbeat"
        case syncPhase = "sync_phase"
        case syncDetail = "sync_detail"
    }
}

/// A webhook (api.md §2.7); `secret` only in the answer that created it.
public struct WebhookInfo: Codable, Sendable, Equatable {
    public let id: UUID
    public let displayName: String
    public let url: String
    public let events: [String]
    public let status: String
    public internal(set) var secret: String?

    enum CodingKeys: String, CodingKey {
        case id
        case displayName = "display_name"
        case url = "webhook_url"
        case events = "webhook_events"
        case status = "webhook_status"
        case secret = "webhook_secret"
    }
}

/// An API key as the team's list shows it (never its secret); `rawKey` only in the answer that created it.
public struct CredentialInfo: Codable, Sendable, Equatable {
    public let id: UUID
    /// `integration` (sk-), `agent` (ak-) or `device` (dk-).
    public let kind: String
    public let displayName: String
    public let keyPrefix: String
    /// `active`, `expired` or `revoked`; nil in the create answer.
    public let status: String?
    public let expiresAt: Date?
    public let lastUsedAt: Date?
    public let rawKey: String?

    enum CodingKeys: String, CodingKey {
        case id, kind
        case displayName = "display_name"
        case keyPrefix = "key_prefix"
        case status = "key_status"
        case expiresAt = "expires_at"
        case lastUsedAt = "last_used_at"
        case rawKey = "raw_key"
    }
}

/// One event's delivery to a webhook, with every attempt (api.md §2.8).
public struct DeliveryInfo: Decodable, Sendable, Equatable {
    public let id: UUID
    public let webhookId: UUID
    public let taskId: UUID
    public let eventType: String
    /// `pending`, `delivered` or `dead`.
    public let status: String
    public let attemptCount: Int
    public let createdAt: Date
    public let deliveredAt: Date?
    public let nextAttemptAt: Date?
    public let lastStatusCode: Int?
    public let lastError: String?
    public let attempts: [Attempt]

    public struct Attempt: Decodable, Sendable, Equatable {
        public let number: Int
        public let attemptedAt: Date
        public let statusCode: Int?
        public let latencyMs: Double
        public let error: String?
        public let nextRetryAt: Date?

        enum CodingKeys: String, CodingKey {
            case error
            case number = "attempt_number"
            case attemptedAt = "attempted_at"
            case statusCode = "status_code"
            case latencyMs = "latency_ms"
            case nextRetryAt = "next_retry_at"
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, attempts
        case webhookId = "webhook_id"
        case taskId = "task_id"
        case eventType = "event_type"
        case status = "delivery_status"
        case attemptCount = "attempt_count"
        case createdAt = "created_at"
        case deliveredAt = "delivered_at"
        case nextAttemptAt = "next_attempt_at"
        case lastStatusCode = "last_status_code"
        case lastError = "last_error"
    }
}

/// `{"id": "…"}`, and the version where a workflow import answers it.
public struct Created: Decodable, Sendable {
    public let id: UUID
    public let version: Int?
}

/// A run's answer (`202 Accepted`): the task, durable.
public struct RunAccepted: Decodable, Sendable {
    public let taskId: UUID

    enum CodingKeys: String, CodingKey {
        case taskId = "task_id"
    }
}

/// `POST /models/presign`: where a model file goes, one PUT (`single`) or parts (`multipart`).
public struct PresignedModelUpload: Decodable, Sendable {
    public let storageKey: String
    /// Empty for a multipart upload (its parts are presigned one by one).
    public let uploadURL: String
    public let uploadHeaders: [String: String]
    public let uploadMethod: String

    init(storageKey: String, uploadURL: String, uploadHeaders: [String: String], uploadMethod: String) {
        (self.storageKey, self.uploadURL, self.uploadHeaders, self.uploadMethod) = (storageKey, uploadURL, uploadHeaders, uploadMethod)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        storageKey = try container.decode(String.self, forKey: .storageKey)
        uploadURL = try container.decodeIfPresent(String.self, forKey: .uploadURL) ?? ""
        uploadHeaders = try container.decodeIfPresent([String: String].self, forKey: .uploadHeaders) ?? [:]
        uploadMethod = try container.decode(String.self, forKey: .uploadMethod)
    }

    enum CodingKeys: String, CodingKey {
        case storageKey = "storage_key"
        case uploadURL = "upload_url"
        case uploadHeaders = "upload_headers"
        case uploadMethod = "upload_method"
    }
}
