import Synchronization

/// Opens once, for everyone: callers of `wait()` before the opening wait, callers after pass at once. A latch can
/// also fail, and then every waiter, present and future, throws that error. A waiter whose task is cancelled
/// leaves at once with `CancellationError`.
///
/// ```swift
/// let started = AsyncLatch()
/// // a service: try await started.wait(); … work that needs the migrated database …
/// // the start: try await storage.migrate(); started.open()
/// ```
public final class AsyncLatch: Sendable {
    private enum Outcome {
        case open
        case failed(any Error)
    }

    private struct State {
        var outcome: Outcome?
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextId: UInt64 = 0
        /// Waiters whose cancellation arrived before they joined.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())
    /// Told how many wait, each time a caller starts waiting (for tests).
    private let onWait: (@Sendable (Int) -> Void)?

    public init(onWait: (@Sendable (Int) -> Void)? = nil) {
        self.onWait = onWait
    }

    /// Whether the latch has opened (false while closed and after a failure).
    public var isOpen: Bool {
        state.withLock { if case .open? = $0.outcome { true } else { false } }
    }

    /// Returns once the latch is open; throws its failure, or `CancellationError` when the task is cancelled first.
    public func wait() async throws {
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (immediate, waiting) = state.withLock { state -> (Result<Void, any Error>?, Int) in
                    if state.cancelledEarly.remove(id) != nil { return (.failure(CancellationError()), 0) }
                    switch state.outcome {
                    case .open?: return (.success(()), 0)
                    case .failed(let error)?: return (.failure(error), 0)
                    case nil:
                        state.waiters[id] = continuation
                        return (nil, state.waiters.count)
                    }
                }
                if let immediate {
                    continuation.resume(with: immediate)
                } else {
                    onWait?(waiting)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    if state.outcome == nil { state.cancelledEarly.insert(id) }
                    return CheckedContinuation<Void, any Error>?.none
                }
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Lets every waiter through; later calls of `open` or `fail` change nothing.
    public func open() {
        settle(.open)
    }

    /// Makes every waiter throw `error`; later calls of `open` or `fail` change nothing.
    public func fail(_ error: any Error) {
        settle(.failed(error))
    }

    private func settle(_ outcome: Outcome) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard state.outcome == nil else { return [] }
            state.outcome = outcome
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters {
            switch outcome {
            case .open: waiter.resume()
            case .failed(let error): waiter.resume(throwing: error)
            }
        }
    }
}
