import Synchronization

/// Items handled one at a time and in order by a drainer that exists only while items wait. A task keeps every
/// stack slab it ever grew until it ends, so a session that parked a task per queue would hold that memory for its
/// whole life; with a pump, an idle session holds none. `push` says when the caller must start the drainer, which
/// then calls `next` until it answers nil.
final class SerialPump<Element: Sendable>: Sendable {
    enum Pushed: Equatable {
        /// No drainer runs: the caller starts one.
        case startDrainer
        /// A drainer runs and will take it.
        case queued
        /// Not taken: the pump holds `limit` items.
        case full
        /// Not taken: the pump was closed.
        case closed
    }

    /// The waiting items are `items[head...]`; an empty pump holds no buffer at all (every idle session has two).
    private struct State: Sendable {
        var items: [Element] = []
        var head = 0
        var draining = false
        var closed = false

        mutating func popFirst() -> Element? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count { removeAll() }
            return item
        }

        mutating func removeAll() {
            items = []
            head = 0
        }
    }

    private let state = Mutex(State())
    private let limit: Int

    /// `held`: as if a drainer already ran, so nothing is drained until the owner starts one itself (a session whose
    /// first message is written before the rest).
    init(limit: Int = .max, held: Bool = false) {
        self.limit = limit
        state.withLock { $0.draining = held }
    }

    func push(_ item: Element) -> Pushed {
        state.withLock { state in
            guard !state.closed else { return .closed }
            guard state.items.count - state.head < limit else { return .full }
            state.items.append(item)
            guard !state.draining else { return .queued }
            state.draining = true
            return .startDrainer
        }
    }

    /// The next item; nil when none waits, and the drainer ends (the next `push` asks for another).
    func next() -> Element? {
        state.withLock { state in
            if let item = state.popFirst() { return item }
            state.draining = false
            return nil
        }
    }

    /// Takes nothing more; `discarding` drops what waits too.
    func close(discarding: Bool) {
        state.withLock { state in
            state.closed = true
            if discarding { state.removeAll() }
        }
    }
}
