/// `task_status` (api.md §2.2, §3.1).
public enum TaskStatus: String, Sendable, CaseIterable, Codable {
    /// Accepted; the scheduler has not picked it up yet.
    case pending
    /// The scheduler has it; no eligible agent is free.
    case waiting
    /// Assigned to an agent; waiting for its ACK.
    case queued
    /// The agent is executing it.
    case running
    case completed
    case failed
    case cancelled

    /// `completed`, `failed` and `cancelled` are final: nothing moves a task out of them.
    public var isTerminal: Bool {
        switch self {
        case .completed, .failed, .cancelled: true
        case .pending, .waiting, .queued, .running: false
        }
    }
}
