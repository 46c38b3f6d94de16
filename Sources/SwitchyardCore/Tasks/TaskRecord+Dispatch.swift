import Foundation

/// A dispatch-side change to one task, decided on its current row inside the storage's transaction.
public enum TaskChange: Sendable, Equatable {
    /// `pending`/`waiting` → `queued` under a new attempt.
    case assign(AttemptAssignment)
    /// An event of the task's current attempt, with what it writes and the message for a `waiting` event.
    case attempt(id: UUID, event: TaskStateMachine.Event, result: AttemptResult, message: String?)
    /// `pending` → `waiting`, saying why.
    case markWaiting(message: String)
    /// `pending`/`waiting` → `failed` with this error, when the task's `start_deadline` has passed and no attempt of
    /// it ever started.
    case expire(message: String)
}

extension TaskRecord {
    /// Applies `change` when it applies to the task as it is; returns what happened and the message for its event,
    /// or nil (not applicable: already taken, another attempt, already ended).
    public mutating func apply(_ change: TaskChange, at date: Date) -> (TaskStateMachine.Action, String?)? {
        switch change {
        case .assign(let assignment):
            return assign(assignment, at: date).map { ($0, nil) }
        case .attempt(let attemptId, let event, let result, let message):
            return takeAttemptEvent(attemptId: attemptId, event, result: result, at: date).map { ($0, message) }
        case .markWaiting(let message):
            guard status == .pending, let action = try? take(.scheduled, at: date) else { return nil }
            return (action, message)
        case .expire(let message):
            guard let deadline = startDeadline, deadline <= date, startedAt == nil, let action = try? take(.expired, at: date) else { return nil }
            error = message
            return (action, message)
        }
    }

    /// Gives the task to an agent (`pending`/`waiting` → `queued`); nil when it is not dispatchable any more.
    public mutating func assign(_ assignment: AttemptAssignment, at date: Date) -> TaskStateMachine.Action? {
        guard status == .pending || status == .waiting, let action = try? take(.assigned, at: date) else { return nil }
        attemptId = assignment.attemptId
        agentId = assignment.agentId
        agentLabels = assignment.agentLabels
        gatewayId = assignment.gatewayId
        gpuType = assignment.gpuType
        stoppedAt = nil
        gpuSeconds = nil
        return action
    }

    /// Applies an attempt's event when `attemptId` is the task's current attempt and the task has not ended;
    /// nil otherwise (a late or foreign message), and for events illegal in the current state.
    public mutating func takeAttemptEvent(attemptId: UUID, _ event: TaskStateMachine.Event, result: AttemptResult, at date: Date)
        -> TaskStateMachine.Action?
    {
        guard self.attemptId == attemptId, !status.isTerminal, let action = try? take(event, at: date) else { return nil }
        if let error = result.error { self.error = error }
        if let output = result.output { self.output = output }
        if case .transition(let newStatus, _) = action, newStatus == .completed { self.error = "" }
        return action
    }

    /// The event a state change appends to the task's log.
    public func statusEvent(sequence: Int, message: String? = nil, at date: Date) -> TaskEventRecord {
        .statusChange(taskId: id, sequence: sequence, to: status, error: error, output: output, message: message, at: date)
    }
}
