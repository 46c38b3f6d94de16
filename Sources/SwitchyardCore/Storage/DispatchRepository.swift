import Foundation

/// Who took a task: written with the `queued` transition.
public struct AttemptAssignment: Sendable, Equatable {
    public var attemptId: UUID
    public var agentId: String
    public var agentLabels: [String]
    public var gatewayId: String
    public var gpuType: String?

    public init(attemptId: UUID, agentId: String, agentLabels: [String], gatewayId: String, gpuType: String?) {
        self.attemptId = attemptId
        self.agentId = agentId
        self.agentLabels = agentLabels
        self.gatewayId = gatewayId
        self.gpuType = gpuType
    }
}

/// What an attempt's end writes beside the state change.
public struct AttemptResult: Sendable, Equatable {
    /// The task's error when the attempt failed (kept while the task waits for a retry, so pollers see why).
    public var error: String?
    /// The task's output when it completed.
    public var output: JSONValue?

    public init(error: String? = nil, output: JSONValue? = nil) {
        self.error = error
        self.output = output
    }
}

/// The dispatcher's and gateway's view of tasks and agents. Tasks are read across teams here (the dispatcher
/// serves every team); every change is conditional on the task's current attempt, so two dispatchers — or a
/// late message from an agent that lost its attempt — can never move a task twice.
public protocol DispatchRepository: Sendable {
    /// `pending` and `waiting` tasks of every team, oldest first.
    func dispatchableTasks(limit: Int) async throws -> [TaskRecord]
    /// `queued` and `running` tasks of every team (the attempts a starting dispatcher must account for).
    func activeTasks() async throws -> [TaskRecord]
    /// Applies `change` to the task's current row and appends the matching event, in one transaction. Nil when
    /// the change does not apply (see `TaskRecord.apply`): the caller lost a race or refuses the message.
    func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome?
    /// Gives a `pending`/`waiting` task to an agent (`changeTask` with `.assign`, unless a backend has a faster
    /// path for the dispatcher's hottest write).
    func assignTask(id: UUID, to assignment: AttemptAssignment, at date: Date) async throws -> TaskTransitionOutcome?
    /// Records that the work of a cancelled attempt stopped; false when the attempt is not the task's.
    func recordAttemptStopped(taskId: UUID, attemptId: UUID, stoppedAt: Date, gpuSeconds: Double?) async throws -> Bool
    /// Appends a `progress` event to a task that is `running` under `attemptId`; its sequence number, or nil
    /// when the attempt is not the task's current one.
    func appendProgress(taskId: UUID, attemptId: UUID, data: JSONValue, at date: Date) async throws -> Int?
    /// Appends a `status` event with `message` (the status unchanged) to a task that is `queued` or `running` under
    /// `attemptId`; its sequence number, or nil when the attempt is not the task's current one.
    func appendAttemptNote(taskId: UUID, attemptId: UUID, message: String, at date: Date) async throws -> Int?

    /// Creates or replaces agents' rows, in one transaction (the dispatcher writes the rows of agents that connect
    /// or leave together in one commit).
    func upsertAgents(_ agents: [AgentRecord]) async throws
    /// The team's agents, connected ones first, then by id.
    func agents(teamId: UUID, includeDisconnected: Bool, page: PageRequest) async throws -> Page<AgentRecord>

    /// Records that the replica (dispatcher) `gatewayId` is alive now: its lease row.
    func heartbeatReplica(gatewayId: String, at date: Date) async throws
    /// The replicas whose last heartbeat is at or after `since`.
    func liveReplicas(since: Date) async throws -> Set<String>
    /// Moves an active attempt to replica `to`, if it is still the task's attempt and still held by replica `from`
    /// (a dead one); false when another replica took it first or the attempt ended.
    func takeOverAttempt(taskId: UUID, attemptId: UUID, from: String, to: String) async throws -> Bool
    /// Marks the connected agent rows of every replica not in `live` disconnected (their replica died); how many.
    func disconnectAgents(notOn live: Set<String>, at date: Date) async throws -> Int

    /// `pending`/`waiting` tasks of every team whose `start_deadline` is at or before `date`, soonest first.
    func tasksPastStartDeadline(at date: Date, limit: Int) async throws -> [UUID]
    /// How many of the team's tasks wait to be taken (`pending` and `waiting`).
    func backlog(teamId: UUID) async throws -> Int
    /// Where a waiting task stands in its team's queue (see `QueueStanding`).
    func queueStanding(of task: TaskRecord) async throws -> QueueStanding
    /// Every team's tasks that have not ended, counted by status, for `/metrics` (all replicas' tasks: the database's
    /// view, read by the status index).
    func taskCensus() async throws -> TaskCensus
}

/// How many tasks are in each status that is not terminal, and when the oldest still waiting to be taken
/// (`pending` or `waiting`) was submitted.
public struct TaskCensus: Sendable, Equatable {
    public var counts: [TaskStatus: Int]
    public var oldestWaitingSince: Date?

    public init(counts: [TaskStatus: Int], oldestWaitingSince: Date?) {
        self.counts = counts
        self.oldestWaitingSince = oldestWaitingSince
    }
}

extension DispatchRepository {
    /// Creates or replaces the team's agent row.
    public func upsertAgent(_ agent: AgentRecord) async throws {
        try await upsertAgents([agent])
    }

    /// Gives a `pending`/`waiting` task to an agent: one conditional update, and the `queued` event. Nil when the
    /// task is no longer dispatchable (another dispatcher took it, or it was cancelled).
    public func assignTask(id: UUID, to assignment: AttemptAssignment, at date: Date) async throws -> TaskTransitionOutcome? {
        try await changeTask(id: id, .assign(assignment), at: date)
    }

    /// Applies `event` to a task whose current attempt is `attemptId` (and that is not terminal), writing `result`;
    /// `message` goes into a `waiting` event. Nil when the attempt is not the task's current one or the task ended.
    public func applyAttemptEvent(
        taskId: UUID, attemptId: UUID, event: TaskStateMachine.Event, result: AttemptResult, message: String?, at date: Date
    ) async throws -> TaskTransitionOutcome? {
        try await changeTask(id: taskId, .attempt(id: attemptId, event: event, result: result, message: message), at: date)
    }

    /// Moves a `pending` task to `waiting`, with why it waits. Nil when the task is no longer pending.
    public func markTaskWaiting(id: UUID, message: String, at date: Date) async throws -> TaskTransitionOutcome? {
        try await changeTask(id: id, .markWaiting(message: message), at: date)
    }
}
