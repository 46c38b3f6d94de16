import Foundation

/// Tasks and their event logs.
public protocol TaskRepository: Sendable {
    /// Stores a new task, its injected definition and its first events (`pending`, and `queued` when the task was
    /// assigned at submission) in one transaction — durable when this returns. With an idempotency claim, a live claim of the same key in the team either replays its task
    /// (same fingerprint) or throws `.conflict` (another fingerprint); claims older than
    /// `IdempotencyClaim.window` are replaced.
    func insertTask(
        _ task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], idempotency: IdempotencyClaim?
    ) async throws -> TaskInsertOutcome

    func task(id: UUID, teamId: UUID) async throws -> TaskRecord?
    /// The definition (with parameters injected) the task runs.
    func taskDefinition(id: UUID, teamId: UUID) async throws -> JSONValue?
    /// The team's tasks, newest first, narrowed by `filter`.
    func tasks(teamId: UUID, filter: TaskFilter, page: PageRequest) async throws -> Page<TaskRecord>

    /// Applies a lifecycle event with `TaskStateMachine` to the task's current state inside one transaction, and
    /// appends the matching event when the state changes. Nil when the task is not the team's; throws
    /// `TaskStateMachine.Refusal` when the event is illegal in the current state.
    func applyTaskEvent(id: UUID, teamId: UUID, event: TaskStateMachine.Event, at date: Date) async throws -> TaskTransitionOutcome?

    /// The task's events with a sequence number above `afterSequence`, in order; nil when not the team's.
    func taskEvents(taskId: UUID, teamId: UUID, afterSequence: Int) async throws -> [TaskEventRecord]?
}

/// What a task listing keeps: every field set must match (`/r/tasks?status=&workflow_id=&agent_id=`).
public struct TaskFilter: Sendable, Equatable {
    public var status: TaskStatus?
    public var workflowId: UUID?
    /// The agent that ran (or runs) the task's latest attempt.
    public var agentId: String?

    public init(status: TaskStatus? = nil, workflowId: UUID? = nil, agentId: String? = nil) {
        self.status = status
        self.workflowId = workflowId
        self.agentId = agentId
    }
}

extension TaskRepository {
    /// The team's tasks, newest first, optionally in one status.
    public func tasks(teamId: UUID, status: TaskStatus?, page: PageRequest) async throws -> Page<TaskRecord> {
        try await tasks(teamId: teamId, filter: TaskFilter(status: status), page: page)
    }

    /// A task with its single first event.
    public func insertTask(
        _ task: TaskRecord, definition: JSONValue, firstEvent: TaskEventRecord, idempotency: IdempotencyClaim?
    ) async throws -> TaskInsertOutcome {
        try await insertTask(task, definition: definition, events: [firstEvent], idempotency: idempotency)
    }
}
