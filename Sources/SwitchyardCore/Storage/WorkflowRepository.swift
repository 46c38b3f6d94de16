import Foundation

/// The identity and live state of a workflow without its definition: what a run needs to find the
/// snapshot to use (snapshots are immutable, so their parsed definitions can be cached by id and version).
public struct WorkflowHead: Sendable, Equatable {
    public var id: UUID
    public var slug: String
    public var version: Int
    public var status: WorkflowStatus

    public init(id: UUID, slug: String, version: Int, status: WorkflowStatus) {
        self.id = id
        self.slug = slug
        self.version = version
        self.status = status
    }
}

/// Workflows and their snapshots. Every save (import, update, restore) bumps `version` and writes the
/// snapshot of that version in the same transaction (api.md §3.8).
public protocol WorkflowRepository: Sendable {
    /// Creates the team's workflow with `definition.slug` at version 1, or — when the team already has one with
    /// that slug — overwrites it as version + 1 keeping its id (api.md §2.1 import). Returns the saved workflow
    /// and whether it was created.
    func importWorkflow(
        id: UUID, teamId: UUID, definition: WorkflowDefinition, status: WorkflowStatus?, at date: Date
    ) async throws -> (workflow: Workflow, created: Bool)

    /// Saves a new version of a workflow of the team: `change` receives the current workflow and returns the new
    /// definition and status; it runs inside the transaction, so concurrent updates apply one after the other.
    /// Nil when no such workflow exists in the team; `.conflict` when the new slug is taken in the team.
    func updateWorkflow(
        id: UUID, teamId: UUID, at date: Date, note: String?,
        _ change: @escaping @Sendable (Workflow) throws -> (definition: WorkflowDefinition, status: WorkflowStatus)
    ) async throws -> Workflow?

    func workflow(id: UUID, teamId: UUID) async throws -> Workflow?
    func workflow(slug: String, teamId: UUID) async throws -> Workflow?
    func workflowHead(id: UUID, teamId: UUID) async throws -> WorkflowHead?
    func workflowHead(slug: String, teamId: UUID) async throws -> WorkflowHead?
    /// The team's workflows, newest first.
    func workflows(teamId: UUID, page: PageRequest) async throws -> Page<Workflow>
    /// Deletes a workflow and its snapshots (tasks keep their own copy of what they ran). False when missing.
    func deleteWorkflow(id: UUID, teamId: UUID) async throws -> Bool

    /// A workflow's snapshots, newest first; nil when the workflow is not the team's.
    func workflowSnapshots(workflowId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WorkflowSnapshot>?
    func workflowSnapshot(workflowId: UUID, teamId: UUID, version: Int) async throws -> WorkflowSnapshot?
}

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
    /// The team's tasks, newest first, optionally in one status.
    func tasks(teamId: UUID, status: TaskStatus?, page: PageRequest) async throws -> Page<TaskRecord>

    /// Applies a lifecycle event with `TaskStateMachine` to the task's current state inside one transaction, and
    /// appends the matching event when the state changes. Nil when the task is not the team's; throws
    /// `TaskStateMachine.Refusal` when the event is illegal in the current state.
    func applyTaskEvent(id: UUID, teamId: UUID, event: TaskStateMachine.Event, at date: Date) async throws -> TaskTransitionOutcome?

    /// The task's events with a sequence number above `afterSequence`, in order; nil when not the team's.
    func taskEvents(taskId: UUID, teamId: UUID, afterSequence: Int) async throws -> [TaskEventRecord]?
}

extension TaskRepository {
    /// A task with its single first event.
    public func insertTask(
        _ task: TaskRecord, definition: JSONValue, firstEvent: TaskEventRecord, idempotency: IdempotencyClaim?
    ) async throws -> TaskInsertOutcome {
        try await insertTask(task, definition: definition, events: [firstEvent], idempotency: idempotency)
    }
}
