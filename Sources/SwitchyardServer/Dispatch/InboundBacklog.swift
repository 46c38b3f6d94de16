import Synchronization

/// How much of one agent session's input has been read but not yet handled. Reading never waits for handling (the
/// session's task stays parked in its read), except here: above `high` the reader stops reading until the backlog
/// is down to `low`, so TCP pushes back on the agent. An agent that sends faster than the server handles — a flood
/// of heartbeats or progress — holds at most `high` of the server's memory, and its own messages wait, not others'.
final class InboundBacklog: Sendable {
    struct Amount: Sendable, Equatable {
        var messages: Int
        var bytes: Int
    }

    static let high = Amount(messages: 1024, bytes: 32 << 20)
    static let low = Amount(messages: 256, bytes: 8 << 20)

    private struct State {
        var pending = Amount(messages: 0, bytes: 0)
        var peak = Amount(messages: 0, bytes: 0)
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    let high: Amount
    let low: Amount

    init(high: Amount = InboundBacklog.high, low: Amount = InboundBacklog.low) {
        self.high = high
        self.low = low
    }

    /// A message of `bytes` was read; true when the reader must now wait (`drained()`) before reading more.
    func read(bytes: Int) -> Bool {
        state.withLock { state in
            state.pending.messages += 1
            state.pending.bytes += bytes
            state.peak.messages = max(state.peak.messages, state.pending.messages)
            state.peak.bytes = max(state.peak.bytes, state.pending.bytes)
            return state.pending.messages >= high.messages || state.pending.bytes >= high.bytes
        }
    }

    /// A message of `bytes` was handled; wakes the waiting reader once the backlog is down to `low`.
    func handled(bytes: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.pending.messages -= 1
            state.pending.bytes -= bytes
            guard state.pending.messages <= low.messages, state.pending.bytes <= low.bytes else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns once the backlog is at or below `low`.
    func drained() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                guard state.pending.messages > low.messages || state.pending.bytes > low.bytes else { return true }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    var pending: Amount { state.withLock { $0.pending } }
    /// The most that was ever pending at once.
    var peak: Amount { state.withLock { $0.peak } }
}
