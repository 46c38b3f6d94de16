import Foundation

extension TaskRecord {
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
