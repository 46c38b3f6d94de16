import Foundation
import SwitchyardCore

/// Messages an agent sends on its WebSocket (docs/agent-protocol.md). One JSON object per text frame, with its
/// kind in `"type"`.
public enum AgentMessage: Sendable, Equatable {
    case hello(Hello)
    case heartbeat(Heartbeat)
    case status(StatusChange)
    case ack(AttemptRef)
    /// The engine took the attempt from its own queue and runs it now (agents that prefetch).
    case started(AttemptRef)
    case progress(Progress)
    case uploadRequest(UploadRequest)
    case complete(Completion)
    case fail(Failure)
    case cancelled(Cancelled)
    /// The models it holds changed (docs/agent-protocol.md, "Models").
    case models(ModelsHeld)
    case modelURLRequest(ModelURLRequest)
    /// Something the task's event stream should say before the attempt runs (the agent fetches a model it needs).
    case note(AttemptNote)

    /// The attempt the message is about; nil for session messages (hello, heartbeat, status, models).
    public var attemptId: String? {
        switch self {
        case .hello, .heartbeat, .status, .models, .modelURLRequest: nil
        case .ack(let ref), .started(let ref): ref.attemptId
        case .progress(let progress): progress.attemptId
        case .uploadRequest(let request): request.attemptId
        case .complete(let completion): completion.attemptId
        case .fail(let failure): failure.attemptId
        case .cancelled(let cancelled): cancelled.attemptId
        case .note(let note): note.attemptId
        }
    }

    /// The attempt's last message: after it the agent sends nothing more about it.
    public var endsAttempt: Bool {
        switch self {
        case .complete, .fail, .cancelled: true
        default: false
        }
    }

    public struct Hello: Codable, Sendable, Equatable {
        public var protocolVersion: Int
        public var agentId: String
        public var agentVersion: String
        public var tool: String
        public var toolVersion: String?
        public var labels: [String]
        public var region: String?
        public var communityOptIn: Bool
        public var capacity: Int
        /// Offers it accepts beyond `capacity`, queued in the engine's own queue so that it never idles between
        /// tasks. An agent that sends it reports `started` when an attempt leaves that queue; one that does not
        /// (nil) runs what it acks at once.
        public var prefetch: Int?
        /// Its state at connection (`unhealthy` when its engine does not answer); nil reads as idle.
        public var status: AgentStatus?
        public var systemStats: SystemStats
        /// Attempts the agent still runs after a reconnect; the gateway keeps those it still owns, cancels the rest.
        public var heldAttempts: [String]
        /// Whether it syncs the team's models (the gateway then sends it `models`); nil reads as false.
        public var modelSync: Bool?
        /// The models it holds at connection, as `models.held` lists them.
        public var models: [String]?

        public init(
            protocolVersion: Int = WireProtocol.version, agentId: String, agentVersion: String, tool: String, toolVersion: String?, labels: [String],
            region: String?, communityOptIn: Bool, capacity: Int, prefetch: Int? = nil, status: AgentStatus? = nil, systemStats: SystemStats,
            heldAttempts: [String] = [], modelSync: Bool? = nil, models: [String]? = nil
        ) {
            self.protocolVersion = protocolVersion
            self.agentId = agentId
            self.agentVersion = agentVersion
            self.tool = tool
            self.toolVersion = toolVersion
            self.labels = labels
            self.region = region
            self.communityOptIn = communityOptIn
            self.capacity = capacity
            self.prefetch = prefetch
            self.status = status
            self.systemStats = systemStats
            self.heldAttempts = heldAttempts
            self.modelSync = modelSync
            self.models = models
        }

        enum CodingKeys: String, CodingKey {
            case tool, labels, region, capacity, prefetch, status, models
            case protocolVersion = "protocol_version"
            case agentId = "agent_id"
            case agentVersion = "agent_version"
            case toolVersion = "tool_version"
            case communityOptIn = "community_opt_in"
            case systemStats = "system_stats"
            case heldAttempts = "held_attempts"
            case modelSync = "model_sync"
        }
    }

    public struct Heartbeat: Codable, Sendable, Equatable {
        public var status: AgentStatus
        public var running: [String]
        public var systemStats: SystemStats?

        public init(status: AgentStatus, running: [String], systemStats: SystemStats? = nil) {
            self.status = status
            self.running = running
            self.systemStats = systemStats
        }

        enum CodingKeys: String, CodingKey {
            case status, running
            case systemStats = "system_stats"
        }
    }

    public struct StatusChange: Codable, Sendable, Equatable {
        public var status: AgentStatus
        public var detail: String?
        /// While `syncing`: 0–1.
        public var syncPercent: Double?
        /// While `syncing`: the step it is at.
        public var syncPhase: SyncPhase?

        public init(status: AgentStatus, detail: String? = nil, syncPercent: Double? = nil, syncPhase: SyncPhase? = nil) {
            self.status = status
            self.detail = detail
            self.syncPercent = syncPercent
            self.syncPhase = syncPhase
        }

        enum CodingKeys: String, CodingKey {
            case status, detail
            case syncPercent = "sync_percent"
            case syncPhase = "sync_phase"
        }
    }

    public struct Progress: Codable, Sendable, Equatable {
        public var attemptId: String
        /// 0–1, never decreasing within an attempt.
        public var progress: Double
        public var stepCurrent: Int?
        public var stepTotal: Int?
        public var currentNode: String?

        public init(attemptId: String, progress: Double, stepCurrent: Int? = nil, stepTotal: Int? = nil, currentNode: String? = nil) {
            self.attemptId = attemptId
            self.progress = progress
            self.stepCurrent = stepCurrent
            self.stepTotal = stepTotal
            self.currentNode = currentNode
        }

        enum CodingKeys: String, CodingKey {
            case progress
            case attemptId = "attempt_id"
            case stepCurrent = "step_current"
            case stepTotal = "step_total"
            case currentNode = "current_node"
        }
    }

    /// Asks for a presigned PUT for one output; `requestId` pairs the answer with the question.
    public struct UploadRequest: Codable, Sendable, Equatable {
        public var attemptId: String
        public var requestId: String
        public var fileName: String
        public var contentType: String
        public var size: Int

        public init(attemptId: String, requestId: String, fileName: String, contentType: String, size: Int) {
            self.attemptId = attemptId
            self.requestId = requestId
            self.fileName = fileName
            self.contentType = contentType
            self.size = size
        }

        enum CodingKeys: String, CodingKey {
            case size
            case attemptId = "attempt_id"
            case requestId = "request_id"
            case fileName = "file_name"
            case contentType = "content_type"
        }
    }

    public struct Completion: Codable, Sendable, Equatable {
        public var attemptId: String
        public var outputs: [OutputFile]

        public init(attemptId: String, outputs: [OutputFile]) {
            self.attemptId = attemptId
            self.outputs = outputs
        }

        enum CodingKeys: String, CodingKey {
            case outputs
            case attemptId = "attempt_id"
        }
    }

    public struct Failure: Codable, Sendable, Equatable {
        public var attemptId: String
        /// Readable: node id, class and ComfyUI's message when a node failed.
        public var error: String
        public var fault: FaultOrigin

        public init(attemptId: String, error: String, fault: FaultOrigin) {
            self.attemptId = attemptId
            self.error = error
            self.fault = fault
        }

        enum CodingKeys: String, CodingKey {
            case error, fault
            case attemptId = "attempt_id"
        }
    }

    /// The work of a cancelled attempt really stopped.
    public struct Cancelled: Codable, Sendable, Equatable {
        public var attemptId: String
        public var stoppedAt: Date
        public var gpuSeconds: Double?

        public init(attemptId: String, stoppedAt: Date, gpuSeconds: Double? = nil) {
            self.attemptId = attemptId
            self.stoppedAt = stoppedAt
            self.gpuSeconds = gpuSeconds
        }

        enum CodingKeys: String, CodingKey {
            case attemptId = "attempt_id"
            case stoppedAt = "stopped_at"
            case gpuSeconds = "gpu_seconds"
        }
    }
}

/// Names one attempt (an `ack` from the agent, a `cancel` from the gateway).
public struct AttemptRef: Codable, Sendable, Equatable {
    public var attemptId: String

    public init(attemptId: String) { self.attemptId = attemptId }

    enum CodingKeys: String, CodingKey {
        case attemptId = "attempt_id"
    }
}

/// Messages the gateway sends to an agent.
public enum GatewayMessage: Sendable, Equatable {
    case welcome(Welcome)
    case offer(Offer)
    case uploadURL(UploadURL)
    case cancel(AttemptRef)
    case refused(Refusal)
    case goodbye(Goodbye)
    /// The team's model sync set, to an agent that syncs (docs/agent-protocol.md, "Models").
    case models(Models)
    case modelURL(ModelURL)

    public struct Welcome: Codable, Sendable, Equatable {
        public var protocolVersion: Int
        public var agentId: String
        public var gatewayId: String
        /// Seconds between heartbeats the gateway expects; three missed ones end the session.
        public var heartbeatInterval: Double
        /// Of the `held_attempts` of the hello, those the agent still holds (the rest are not its any more: a
        /// restarted agent stops their engine work without reporting). Absent from older gateways.
        public var keptAttempts: [String]?

        public init(
            protocolVersion: Int = WireProtocol.version, agentId: String, gatewayId: String, heartbeatInterval: Double,
            keptAttempts: [String]? = nil
        ) {
            self.protocolVersion = protocolVersion
            self.agentId = agentId
            self.gatewayId = gatewayId
            self.heartbeatInterval = heartbeatInterval
            self.keptAttempts = keptAttempts
        }

        enum CodingKeys: String, CodingKey {
            case protocolVersion = "protocol_version"
            case agentId = "agent_id"
            case gatewayId = "gateway_id"
            case heartbeatInterval = "heartbeat_interval"
            case keptAttempts = "kept_attempts"
        }
    }

    /// A task for the agent. The definition travels as its exact JSON text (64-bit seeds survive); the agent
    /// must `ack` within `ackTimeout` seconds or the task goes back to waiting.
    public struct Offer: Codable, Sendable, Equatable {
        public var attemptId: String
        public var taskId: String
        public var tool: String
        public var definitionJSON: String
        public var inputs: [OfferInput]
        public var ackTimeout: Double
        /// Seconds from the start the attempt may run.
        public var timeout: Double
        /// Whether previews (ComfyUI's temp outputs) are kept; nil reads as true.
        public var keepPreviews: Bool?
        /// The workflow's `required_models` (`<model_type>/<path>`): an agent that syncs fetches those of the team's
        /// set it lacks before it runs the attempt (docs/agent-protocol.md, "Models").
        public var requiredModels: [String]?

        public init(
            attemptId: String, taskId: String, tool: String, definitionJSON: String, inputs: [OfferInput], ackTimeout: Double, timeout: Double,
            keepPreviews: Bool? = nil, requiredModels: [String]? = nil
        ) {
            self.attemptId = attemptId
            self.taskId = taskId
            self.tool = tool
            self.definitionJSON = definitionJSON
            self.inputs = inputs
            self.ackTimeout = ackTimeout
            self.timeout = timeout
            self.keepPreviews = keepPreviews
            self.requiredModels = requiredModels
        }

        /// The definition, parsed with the exact parser.
        public func definition() throws -> JSONValue { try JSONValue.parse(Array(definitionJSON.utf8)) }

        enum CodingKeys: String, CodingKey {
            case tool, inputs, timeout
            case attemptId = "attempt_id"
            case taskId = "task_id"
            case definitionJSON = "definition_json"
            case ackTimeout = "ack_timeout"
            case keepPreviews = "keep_previews"
            case requiredModels = "required_models"
        }
    }

    public struct UploadURL: Codable, Sendable, Equatable {
        public var attemptId: String
        public var requestId: String
        public var storageKey: String
        public var url: String
        public var headers: [String: String]

        public init(attemptId: String, requestId: String, storageKey: String, url: String, headers: [String: String]) {
            self.attemptId = attemptId
            self.requestId = requestId
            self.storageKey = storageKey
            self.url = url
            self.headers = headers
        }

        enum CodingKeys: String, CodingKey {
            case url, headers
            case attemptId = "attempt_id"
            case requestId = "request_id"
            case storageKey = "storage_key"
        }
    }

    /// A message the gateway will not act on (an attempt the agent no longer owns, a malformed message).
    public struct Refusal: Codable, Sendable, Equatable {
        public var attemptId: String?
        public var reason: String

        public init(attemptId: String?, reason: String) {
            self.attemptId = attemptId
            self.reason = reason
        }

        enum CodingKeys: String, CodingKey {
            case reason
            case attemptId = "attempt_id"
        }
    }

    /// The gateway ends the session (protocol version, revoked key, shutdown); `retry` says whether reconnecting
    /// can help.
    public struct Goodbye: Codable, Sendable, Equatable {
        public var reason: String
        public var retry: Bool

        public init(reason: String, retry: Bool) {
            self.reason = reason
            self.retry = retry
        }
    }
}
