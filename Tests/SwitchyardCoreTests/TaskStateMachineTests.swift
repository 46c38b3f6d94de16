import Foundation
import SwitchyardCore
import Testing

@Suite("Task state machine")
struct TaskStateMachineTests {
    typealias Event = TaskStateMachine.Event

    static let events: [Event] = [
        .scheduled, .assigned, .acknowledged, .succeeded, .attemptFailed(retriable: true), .attemptFailed(retriable: false), .released,
        .cancel, .expired,
    ]

    /// The whole legal table; every other (state, event) pair must be refused.
    static let legal: [TaskStatus: [Event: TaskStatus]] = [
        .pending: [.scheduled: .waiting, .assigned: .queued, .cancel: .cancelled, .expired: .failed],
        .waiting: [.assigned: .queued, .cancel: .cancelled, .expired: .failed],
        .queued: [
            .acknowledged: .running, .attemptFailed(retriable: true): .waiting, .attemptFailed(retriable: false): .failed, .released: .waiting,
            .cancel: .cancelled,
        ],
        .running: [
            .succeeded: .completed, .attemptFailed(retriable: true): .waiting, .attemptFailed(retriable: false): .failed, .released: .waiting,
            .cancel: .cancelled,
        ],
    ]

    @Test("every (state, event) pair: legal moves happen, illegal ones are refused, terminal states never change", arguments: TaskStatus.allCases)
    func table(status: TaskStatus) {
        for event in Self.events {
            let decision = TaskStateMachine.decide(status: status, retryCount: 0, maxRetries: 1, event: event)
            if status.isTerminal {
                if event == .cancel {
                    #expect(decision == .success(.none), "cancel on \(status) is a no-op")
                } else {
                    #expect(decision == .failure(.alreadyTerminal(status)), "\(event) on \(status)")
                }
            } else if let target = Self.legal[status]?[event] {
                // A retriable failure uses a retry; a release (platform fault, missed ACK) does not.
                let retries = event == .attemptFailed(retriable: true) ? 1 : 0
                #expect(decision == .success(.transition(to: target, retryCount: retries)), "\(event) on \(status)")
            } else {
                #expect(decision == .failure(.illegal(from: status, event: event)), "\(event) on \(status)")
            }
        }
    }

    @Test("a failed attempt is retried while retry_count < max_retries, then fails")
    func retries() {
        #expect(
            TaskStateMachine.decide(status: .running, retryCount: 1, maxRetries: 2, event: .attemptFailed(retriable: true))
                == .success(.transition(to: .waiting, retryCount: 2)))
        #expect(
            TaskStateMachine.decide(status: .running, retryCount: 2, maxRetries: 2, event: .attemptFailed(retriable: true))
                == .success(.transition(to: .failed, retryCount: 2)))
        #expect(
            TaskStateMachine.decide(status: .queued, retryCount: 0, maxRetries: 0, event: .attemptFailed(retriable: true))
                == .success(.transition(to: .failed, retryCount: 0)))
    }

    @Test("status events carry task_id, status and timestamp; terminal ones have their own names")
    func statusEvents() {
        let id = UUID()
        let date = Date(timeIntervalSince1970: 1_739_196_000)
        let pending = TaskEventRecord.statusChange(taskId: id, sequence: 1, to: .pending, at: date)
        #expect(pending.kind == .status)
        #expect(pending.data == ["task_id": .string(id.lowercased), "status": "pending", "timestamp": "2025-02-10T14:00:00Z"])
        #expect(TaskEventRecord.statusChange(taskId: id, sequence: 2, to: .cancelled, at: date).kind == .cancelled)
        #expect(TaskEventRecord.statusChange(taskId: id, sequence: 2, to: .failed, error: "boom", at: date).data["error"] == "boom")
    }
}
