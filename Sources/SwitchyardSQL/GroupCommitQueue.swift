import Synchronization

/// Group commit: concurrent callers' items are written together by one `flush`, so N submissions cost one
/// transaction (and one fsync) instead of N. Nobody returns before the flush holding their item finished.
///
/// There is no background task: the first caller to find the queue idle becomes the leader and flushes its
/// own item plus everything queued behind it (at most `maxBatch` in all); when its flush ends it hands leadership
/// to the oldest waiter, which flushes the next batch (with everything that arrived meanwhile) and so on. Batches
/// therefore grow with load and shrink to one item when idle. A caller cancelled while its item waits in line
/// takes the item back and throws `CancellationError`; once a flush holds the item, the caller waits for its
/// outcome (a flush is never cancelled halfway: it runs outside the leader's task).
///
/// ```swift
/// let queue = GroupCommitQueue<Row, Void>(maxBatch: 256) { rows in await database.insertAll(rows) }
/// try await queue.submit(row)
/// ```
public final class GroupCommitQueue<Item: Sendable, Output: Sendable>: Sendable {
    /// Writes a batch; returns one result per item, in order.
    public typealias Flush = @Sendable ([Item]) async -> [Result<Output, any Error>]

    private enum Role: Sendable {
        case done(Result<Output, any Error>)
        case lead
    }

    private struct Waiter: Sendable {
        let id: UInt64
        let item: Item
        let continuation: CheckedContinuation<Role, any Error>
    }

    private struct State: Sendable {
        var leaderActive = false
        var waiters: [Waiter] = []
        var nextId: UInt64 = 0
        /// Callers whose cancellation arrived before their item joined the line.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let flush: Flush
    /// Told how many items wait, each time one joins the line (for tests and gauges).
    private let onWait: (@Sendable (Int) -> Void)?

    public init(maxBatch: Int, onWait: (@Sendable (Int) -> Void)? = nil, flush: @escaping Flush) {
        self.maxBatch = max(1, maxBatch)
        self.onWait = onWait
        self.flush = flush
    }

    /// How many items wait for a flush now.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Queues `item` and returns once a flush containing it has finished.
    public func submit(_ item: Item) async throws -> Output {
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        let role = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Role, any Error>) in
                let now = state.withLock { state -> Result<Role, any Error>? in
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    guard state.leaderActive else {
                        state.leaderActive = true
                        return .success(.lead)
                    }
                    state.waiters.append(Waiter(id: id, item: item, continuation: continuation))
                    return nil
                }
                if let now { continuation.resume(with: now) } else { onWait?(waiting) }
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
        state.withLock { _ = $0.cancelledEarly.remove(id) }
        switch role {
        case .done(let result):
            return try result.get()
        case .lead:
            return try await lead(with: item).get()
        }
    }

    private func lead(with item: Item) async -> Result<Output, any Error> {
        let followers = state.withLock { state in
            let count = min(state.waiters.count, maxBatch - 1)
            let taken = Array(state.waiters.prefix(count))
            state.waiters.removeFirst(count)
            return taken
        }
        let batch = [item] + followers.map(\.item)
        let flush = self.flush
        var results = await Task { await flush(batch) }.value
        if results.count != batch.count {
            results = Array(repeating: .failure(GroupCommitError.resultCountMismatch), count: batch.count)
        }
        for (index, follower) in followers.enumerated() {
            follower.continuation.resume(returning: .done(results[index + 1]))
        }
        let next = state.withLock { state -> Waiter? in
            guard !state.waiters.isEmpty else {
                state.leaderActive = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        return results[0]
    }
}

/// A flush broke the queue's contract.
public enum GroupCommitError: Error, Sendable {
    /// The flush returned a different number of results than it was given items.
    case resultCountMismatch
}
