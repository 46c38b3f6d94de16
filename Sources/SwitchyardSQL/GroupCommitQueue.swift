import Synchronization

/// Group commit: concurrent callers' items are written together by one `flush`, so N submissions cost one
/// transaction (and one fsync) instead of N. Nobody returns before the flush holding their item finished.
///
/// There is no background task: the first caller to find the queue idle becomes the leader and flushes its
/// own item plus everything queued behind it; when its flush ends it hands leadership to the oldest waiter,
/// which flushes the next batch (with everything that arrived meanwhile) and so on. Batches therefore grow
/// with load and shrink to one item when idle.
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
        let item: Item
        let continuation: CheckedContinuation<Role, Never>
    }

    private struct State: Sendable {
        var leaderActive = false
        var waiters: [Waiter] = []
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let flush: Flush

    public init(maxBatch: Int, flush: @escaping Flush) {
        self.maxBatch = max(1, maxBatch)
        self.flush = flush
    }

    /// Queues `item` and returns once a flush containing it has finished.
    public func submit(_ item: Item) async throws -> Output {
        let role = await withCheckedContinuation { (continuation: CheckedContinuation<Role, Never>) in
            let leadNow = state.withLock { state in
                if state.leaderActive {
                    state.waiters.append(Waiter(item: item, continuation: continuation))
                    return false
                }
                state.leaderActive = true
                return true
            }
            if leadNow { continuation.resume(returning: .lead) }
        }
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
        var results = await flush([item] + followers.map(\.item))
        if results.count != followers.count + 1 {
            let failure = Result<Output, any Error>.failure(GroupCommitError.resultCountMismatch)
            results = Array(repeating: failure, count: followers.count + 1)
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
