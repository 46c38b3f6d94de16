import Synchronization

/// A FIFO counting semaphore for async code: at most `permits` bodies run at once, the others wait in order.
/// Unlike an actor it stays held across suspension points, which a transaction on a single connection needs; with
/// one permit it is a lock. A waiter whose task is cancelled leaves the line at once and throws
/// `CancellationError`; a body that already holds a permit runs to its end.
///
/// ```swift
/// let writer = AsyncSemaphore()
/// try await writer.withPermit { try await connection.query("BEGIN IMMEDIATE") … }
/// ```
public final class AsyncSemaphore: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        /// The next waiter to resume is `waiters[head]`.
        var head = 0
        var nextId: UInt64 = 0
        /// Waiters whose cancellation arrived before they joined the line.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state: Mutex<State>
    /// Told how many wait, each time a caller joins the line (for tests and gauges).
    private let onWait: (@Sendable (Int) -> Void)?

    public init(permits: Int = 1, onWait: (@Sendable (Int) -> Void)? = nil) {
        precondition(permits >= 1, "a semaphore needs at least one permit")
        state = Mutex(State(available: permits))
        self.onWait = onWait
    }

    /// Runs `body` while holding a permit; throws `CancellationError` if the task is cancelled while waiting.
    public func withPermit<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }

    /// How many callers wait for a permit now.
    public var waiting: Int { state.withLock { $0.waiters.count - $0.head } }

    private func acquire() async throws {
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate = state.withLock { state -> Result<Void, any Error>? in
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if state.available > 0 {
                        state.available -= 1
                        return .success(())
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) } else { onWait?(waiting) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters[state.head...].firstIndex(where: { $0.id == id }) else {
                    // Not in line yet (it will see this when it arrives), or already granted (the mark is dropped below).
                    state.cancelledEarly.insert(id)
                    return nil
                }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
        // Granted: a cancellation that arrived after the grant must not linger.
        state.withLock { _ = $0.cancelledEarly.remove(id) }
    }

    private func release() {
        let next = state.withLock { state -> Waiter? in
            guard state.head < state.waiters.count else {
                state.available += 1
                return nil
            }
            let next = state.waiters[state.head]
            state.head += 1
            if state.head == state.waiters.count || state.head > 64 {
                state.waiters.removeFirst(state.head)
                state.head = 0
            }
            return next
        }
        next?.continuation.resume()
    }
}
