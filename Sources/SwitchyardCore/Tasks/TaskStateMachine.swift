/// The task lifecycle of api.md §3.1 as a pure function from (state, event) to a decision:
///
/// ```
/// pending ─▶ waiting ─▶ queued ─▶ running ─▶ completed | failed
///    └────────────────────▲  │        │
///                            └─▶ waiting (attempt failed, retries left) ◀─┘
/// any non-terminal ─▶ cancelled
/// pending | waiting ─▶ failed (start_deadline passed)
/// ```
///
/// Storage applies the decision inside the transaction that read the state, so a terminal state is written
/// once and never overwritten.
public enum TaskStateMachine {
    public enum Event: Sendable, Hashable {
        /// The dispatcher took the task and found no free eligible agent.
        case scheduled
        /// The dispatcher assigned the task to an agent.
        case assigned
        /// The agent acknowledged the assignment and started.
        case acknowledged
        /// The agent reported success.
        case succeeded
        /// The attempt failed (error, timeout, missed ACK, agent disconnect); `retriable` attempts go back to
        /// `waiting` while retries remain.
        case attemptFailed(retriable: Bool)
        /// The attempt ended through no fault of the task or its agent's work: no ACK in time, or a platform
        /// fault. The task waits again without using up a retry.
        case released
        /// A caller cancelled the task.
        case cancel
        /// No agent started the task before its `start_deadline`.
        case expired
    }

    public enum Action: Sendable, Equatable {
        /// Move to `status`, with the attempt counter now at `retryCount`.
        case transition(to: TaskStatus, retryCount: Int)
        /// Nothing to do, and that is not an error (cancelling a finished task).
        case none
    }

    public enum Refusal: Error, Sendable, Equatable {
        /// The task already reached a terminal state.
        case alreadyTerminal(TaskStatus)
        /// The event makes no sense in this state.
        case illegal(from: TaskStatus, event: Event)
    }

    public static func decide(
        status: TaskStatus, retryCount: Int, maxRetries: Int, event: Event
    ) -> Result<Action, Refusal> {
        if status.isTerminal {
            return event == .cancel ? .success(.none) : .failure(.alreadyTerminal(status))
        }
        switch (status, event) {
        case (_, .cancel):
            return .success(.transition(to: .cancelled, retryCount: retryCount))
        case (.pending, .expired), (.waiting, .expired):
            return .success(.transition(to: .failed, retryCount: retryCount))
        case (.pending, .scheduled):
            return .success(.transition(to: .waiting, retryCount: retryCount))
        case (.pending, .assigned), (.waiting, .assigned):
            return .success(.transition(to: .queued, retryCount: retryCount))
        case (.queued, .acknowledged):
            return .success(.transition(to: .running, retryCount: retryCount))
        case (.running, .succeeded):
            return .success(.transition(to: .completed, retryCount: retryCount))
        case (.queued, .released), (.running, .released):
            return .success(.transition(to: .waiting, retryCount: retryCount))
        case (.queued, .attemptFailed(let retriable)), (.running, .attemptFailed(let retriable)):
            if retriable && retryCount < maxRetries {
                return .success(.transition(to: .waiting, retryCount: retryCount + 1))
            }
            return .success(.transition(to: .failed, retryCount: retryCount))
        default:
            return .failure(.illegal(from: status, event: event))
        }
    }
}
