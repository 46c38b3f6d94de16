/// A FIFO async lock: unlike an actor, it stays held across suspension points, which a database transaction on a
/// single connection needs. With `permits` above one it is a counting semaphore: at most that many bodies run at
/// once, the others wait in order.
public actor AsyncLock {
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// The next waiter to resume is `waiters[head]`.
    private var head = 0

    public init(permits: Int = 1) {
        precondition(permits >= 1, "a lock needs at least one permit")
        available = permits
    }

    /// Runs `body` while holding a permit.
    public func withLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        guard head < waiters.count else {
            available += 1
            return
        }
        let next = waiters[head]
        head += 1
        if head == waiters.count {
            waiters = []
            head = 0
        }
        next.resume()
    }
}
