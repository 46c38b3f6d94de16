import Synchronization

/// Group commit: concurrent callers' items are written together by one `flush`, so N submissions cost one
/// transaction (and one fsync) instead of N. Nobody returns before the flush holding their item finished.
///
/// Callers queue their items and wait. The first caller to find the queue idle starts a drain (a task of its own
/// that lives only while items wait): it flushes everything in line (at most `maxBatch` at a time), hands each
/// caller its result and goes straight on to what arrived meanwhile, ending once the line is empty. Batches
/// therefore grow with load and shrink to one item when idle, and under load one batch follows another with no
/// task created or woken between them. A caller cancelled while its item waits in line takes the item back and
/// throws `CancellationError`; once a flush holds the item, the caller waits for its outcome — a flush runs in
/// the drain's task, which nobody cancels, so it is never cut halfway.
///
/// ```swift
/// let queue = GroupCommitQueue<Row, Void>(maxBatch: 256) { rows in await database.insertAll(rows) }
/// try await queue.submit(row)
/// ```
public final class GroupCommitQueue<Item: Sendable, Output: Sendable>: Sendable {
    /// Writes a batch; returns one result per item, in order.
    public typealias Flush = @Sendable ([Item]) async -> [Result<Output, any Error>]

    private struct Waiter: Sendable {
        let id: UInt64
        let item: Item
        let continuation: CheckedContinuation<Output, any Error>
    }

    private struct State: Sendable {
        /// Whether a drain is running (it clears this itself, under the lock, when it finds the line empty).
        var draining = false
        var waiters: [Waiter] = []
        var nextId: UInt64 = 0
        /// Callers whose cancellation arrived before their item joined the line.
        var cancelledEarly: Set<UInt64> = []
    }

    /// What a caller found when it came to join the line.
    private enum Joined {
        case cancelled
        case startedDrain
        case queued(Int)
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let flush: Flush
    /// Told how many items wait, each time one joins a line that a flush is already working on (for tests and
    /// gauges).
    private let onWait: (@Sendable (Int) -> Void)?

    public init(maxBatch: Int, onWait: (@Sendable (Int) -> Void)? = nil, flush: @escaping Flush) {
        self.maxBatch = max(1, maxBatch)
        self.onWait = onWait
        self.flush = flush
    }

    /// How many items wait for a flush now (not counting those a flush holds).
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Queues `item` and returns once a flush containing it has finished.
    public func submit(_ item: Item) async throws -> Output {
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        defer { state.withLock { _ = $0.cancelledEarly.remove(id) } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Output, any Error>) in
                let joined = state.withLock { state -> Joined in
                    if state.cancelledEarly.remove(id) != nil { return .cancelled }
                    state.waiters.append(Waiter(id: id, item: item, continuation: continuation))
                    guard state.draining else {
                        state.draining = true
                        return .startedDrain
                    }
                    return .queued(state.waiters.count)
                }
                switch joined {
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .startedDrain: Task { await self.drain() }
                case .queued(let count): onWait?(count)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelledEarly.insert(id)
                    return nil
                }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Flushes batch after batch until the line is empty.
    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiter] in
                let count = min(state.waiters.count, maxBatch)
                if count == 0 { state.draining = false }
                let taken = Array(state.waiters.prefix(count))
                state.waiters.removeFirst(count)
                return taken
            }
            guard !batch.isEmpty else { return }
            var results = await flush(batch.map(\.item))
            if results.count != batch.count {
                results = Array(repeating: .failure(GroupCommitError.resultCountMismatch), count: batch.count)
            }
            for (waiter, result) in zip(batch, results) { waiter.continuation.resume(with: result) }
        }
    }
}

/// A flush broke the queue's contract.
public enum GroupCommitError: Error, Sendable {
    /// The flush returned a different number of results than it was given items.
    case resultCountMismatch
}
