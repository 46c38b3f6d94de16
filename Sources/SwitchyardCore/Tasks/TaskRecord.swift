import Foundation

/// A submitted run of a workflow (api.md §2.2). The injected definition it runs is stored beside it and read
/// separately (`TaskRepository.taskDefinition`), since lists and polls never need it.
public struct TaskRecord: Sendable, Equatable {
    /// How the task was submitted (api.md §2.2: `jwt` from a user session, `api_key` from a credential).
    public enum Source: String, Sendable, CaseIterable {
        case jwt
        case apiKey = "api_key"
    }

    public var id: UUID
    public var teamId: UUID
    public var workflowId: UUID
    /// The snapshot version the task was validated and injected against.
    public var workflowVersion: Int
    public var status: TaskStatus
    public var source: Source
    public var userId: UUID?
    public var credentialId: UUID?
    /// The parameter values after defaults.
    public var parameters: [String: JSONValue]
    public var dispatchTarget: DispatchTarget
    public var targetPool: TargetPool
    public var submitterRegion: String?
    public var toolType: ToolType
    public var requiredLabels: [String]
    public var taskTimeout: Int
    public var maxRetries: Int
    public var retryCount: Int
    public var agentId: String?
    public var agentLabels: [String]?
    public var gatewayId: String?
    public var gpuType: String?
    /// The attempt that holds the task while it is `queued` or `running` (kept after a terminal state, so late
    /// messages about it can be told apart from messages about an older attempt).
    public var attemptId: UUID?
    /// When the agent reported that the work of a cancelled attempt really stopped, and the GPU time it used.
    public var stoppedAt: Date?
    public var gpuSeconds: Double?
    /// Empty unless the task failed.
    public var error: String
    public var output: JSONValue?
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    public var completedAt: Date?
    /// The run's `start_deadline`: if no attempt has started by then, the task fails as expired.
    public var startDeadline: Date?

    public init(
        id: UUID, teamId: UUID, workflowId: UUID, workflowVersion: Int, status: TaskStatus = .pending, source: Source, userId: UUID?,
        credentialId: UUID?, parameters: [String: JSONValue], dispatchTarget: DispatchTarget, targetPool: TargetPool,
        submitterRegion: String?, toolType: ToolType, requiredLabels: [String], taskTimeout: Int, maxRetries: Int, retryCount: Int = 0,
        agentId: String? = nil, agentLabels: [String]? = nil, gatewayId: String? = nil, gpuType: String? = nil, error: String = "",
        output: JSONValue? = nil, createdAt: Date, updatedAt: Date? = nil, startedAt: Date? = nil, completedAt: Date? = nil,
        attemptId: UUID? = nil, stoppedAt: Date? = nil, gpuSeconds: Double? = nil, startDeadline: Date? = nil
    ) {
        self.id = id
        self.teamId = teamId
        self.workflowId = workflowId
        self.workflowVersion = workflowVersion
        self.status = status
        self.source = source
        self.userId = userId
        self.credentialId = credentialId
        self.parameters = parameters
        self.dispatchTarget = dispatchTarget
        self.targetPool = targetPool
        self.submitterRegion = submitterRegion
        self.toolType = toolType
        self.requiredLabels = requiredLabels
        self.taskTimeout = taskTimeout
        self.maxRetries = maxRetries
        self.retryCount = retryCount
        self.agentId = agentId
        self.agentLabels = agentLabels
        self.gatewayId = gatewayId
        self.gpuType = gpuType
        self.attemptId = attemptId
        self.stoppedAt = stoppedAt
        self.gpuSeconds = gpuSeconds
        self.error = error
        self.output = output
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.startDeadline = startDeadline
    }
}

/// One entry of a task's event log (the SSE stream of api.md §3.2 replays it). `sequence` starts at 1 and
/// grows by one per event of the task.
public struct TaskEventRecord: Sendable, Equatable {
    /// SSE event names of api.md §3.2.
    public enum Kind: String, Sendable, CaseIterable {
        case status, progress, completed, failed, cancelled
    }

    public var taskId: UUID
    public var sequence: Int
    public var kind: Kind
    public var data: JSONValue
    public var createdAt: Date

    public init(taskId: UUID, sequence: Int, kind: Kind, data: JSONValue, createdAt: Date) {
        self.taskId = taskId
        self.sequence = sequence
        self.kind = kind
        self.data = data
        self.createdAt = createdAt
    }

    /// The event recording that a task entered `status` (its kind follows the status: terminal states have
    /// their own event names).
    public static func statusChange(
        taskId: UUID, sequence: Int, to status: TaskStatus, error: String = "", output: JSONValue? = nil, message: String? = nil, at date: Date
    ) -> TaskEventRecord {
        var data: [String: JSONValue] = [
            "task_id": .string(taskId.lowercased), "status": .string(status.rawValue), "timestamp": .string(RFC3339.format(date)),
        ]
        if let message { data["message"] = .string(message) }
        let kind: Kind
        switch status {
        case .completed:
            kind = .completed
            data["output"] = output ?? .null
        case .failed:
            kind = .failed
            data["error"] = .string(error)
        case .cancelled: kind = .cancelled
        case .pending, .waiting, .queued, .running: kind = .status
        }
        return TaskEventRecord(taskId: taskId, sequence: sequence, kind: kind, data: .object(data), createdAt: date)
    }
}

/// An `Idempotency-Key` claim on a run submission: the same key and fingerprint within `window` return the
/// first task; the same key with another fingerprint is a conflict.
public struct IdempotencyClaim: Sendable, Equatable {
    public static let window: TimeInterval = 24 * 3600

    public var key: String
    /// SHA-256 (hex) of what was submitted: the workflow reference and the canonical body.
    public var fingerprint: String

    public init(key: String, fingerprint: String) {
        self.key = key
        self.fingerprint = fingerprint
    }
}

/// What `TaskRepository.insertTask` did.
public enum TaskInsertOutcome: Sendable, Equatable {
    case created
    /// An earlier submission with the same idempotency key and fingerprint created this task.
    case replayed(taskId: UUID)
}

/// What `TaskRepository.applyTaskEvent` did.
public struct TaskTransitionOutcome: Sendable, Equatable {
    public var action: TaskStateMachine.Action
    /// The task after the change (or as it was, for `.none`).
    public var task: TaskRecord

    public init(action: TaskStateMachine.Action, task: TaskRecord) {
        self.action = action
        self.task = task
    }
}

extension IdempotencyClaim {
    /// The 409 text for a key reused with a different request.
    public static let conflictMessage =
        "Idempotency-Key was already used within the last 24 hours for a different request; use a new key for a new request"
}

extension TaskRecord {
    /// Records a state change decided by `TaskStateMachine`: `started_at` is set when the task first runs,
    /// `completed_at` when it reaches a terminal state.
    public mutating func apply(status newStatus: TaskStatus, retryCount newRetryCount: Int, at date: Date) {
        status = newStatus
        retryCount = newRetryCount
        updatedAt = date
        if newStatus == .running && startedAt == nil { startedAt = date }
        if newStatus.isTerminal { completedAt = date }
    }

    /// What `event` does to this task per `TaskStateMachine`; a transition is applied to the record before it is
    /// returned, a refusal is thrown.
    public mutating func take(_ event: TaskStateMachine.Event, at date: Date) throws -> TaskStateMachine.Action {
        let action = try TaskStateMachine.decide(status: status, retryCount: retryCount, maxRetries: maxRetries, event: event).get()
        if case .transition(let newStatus, let newRetryCount) = action {
            apply(status: newStatus, retryCount: newRetryCount, at: date)
        }
        return action
    }
}
