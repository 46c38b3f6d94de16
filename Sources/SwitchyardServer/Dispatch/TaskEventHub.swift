import Foundation
import SwitchyardCore
import Synchronization

/// Wakes the event streams of a task when something appended to its log: on this replica directly, on the others
/// through the storage's `ReplicaNotifier` (`.changed`), so no stream polls the log. With a shared database,
/// streams still re-read it on a slow timer as a safety net (`DispatchSettings.streamRereadInterval`).
///
/// Progress lives here too: an agent's progress ticks are fanned out to the streams from memory, not written one
/// fsynced commit each; the dispatcher persists them coalesced (`DispatchSettings.progressPersistInterval`).
final class TaskEventHub: Sendable {
    private let subscribers = Mutex<[UUID: [ObjectIdentifier: EventSignal]]>([:])
    /// The latest progress of each running task on this replica, with a version that grows with every tick.
    private let progress = Mutex<(version: Int, latest: [UUID: (version: Int, data: JSONValue)])>((0, [:]))
    /// Called when a task ended here (the webhook sender looks at its outbox at once).
    private let onEnded: @Sendable () -> Void
    private let notifier: any ReplicaNotifier
    /// Streams that follow every task on this replica (the dashboard's live task list).
    private let watchers = Mutex<[ObjectIdentifier: TaskChangeWatcher]>([:])

    init(notifier: any ReplicaNotifier = SingleProcessNotifier(), onEnded: @escaping @Sendable () -> Void = {}) {
        self.notifier = notifier
        self.onEnded = onEnded
    }

    func subscribe(_ taskId: UUID) -> EventSignal {
        let signal = EventSignal()
        subscribers.withLock { $0[taskId, default: [:]][ObjectIdentifier(signal)] = signal }
        return signal
    }

    func unsubscribe(_ taskId: UUID, _ signal: EventSignal) {
        subscribers.withLock { all in
            all[taskId]?[ObjectIdentifier(signal)] = nil
            if all[taskId]?.isEmpty == true { all[taskId] = nil }
        }
    }

    /// A task reached a terminal state: wake its streams and whoever waits for ended tasks.
    func ended(_ taskId: UUID) {
        progress.withLock { _ = $0.latest.removeValue(forKey: taskId) }
        signal(taskId)
        onEnded()
    }

    /// A progress tick of a running task: kept as its latest, streams woken.
    func publishProgress(_ taskId: UUID, _ data: JSONValue) {
        progress.withLock { state in
            state.version += 1
            state.latest[taskId] = (state.version, data)
        }
        wake(taskId)
    }

    /// The task's latest progress newer than `version`, if any.
    func progress(of taskId: UUID, after version: Int) -> (version: Int, data: JSONValue)? {
        progress.withLock { state in
            guard let latest = state.latest[taskId], latest.version > version else { return nil }
            return latest
        }
    }

    /// The attempt ended without the task ending (back to waiting): its progress no longer applies.
    func clearProgress(_ taskId: UUID) {
        progress.withLock { _ = $0.latest.removeValue(forKey: taskId) }
    }

    /// The task's log grew: its streams here wake, and the other replicas are told.
    func signal(_ taskId: UUID) {
        wake(taskId)
        notifier.publish(.changed(taskId: taskId))
    }

    /// Wakes the task's streams on this replica only (progress from memory; a change another replica announced).
    func wake(_ taskId: UUID) {
        for signal in subscribers.withLock({ Array(($0[taskId] ?? [:]).values) }) { signal.notify() }
        for watcher in watchers.withLock({ Array($0.values) }) { watcher.changed(taskId) }
    }

    /// Wakes every stream (notifications from other replicas may have been missed).
    func wakeAll() {
        for signal in subscribers.withLock({ $0.values.flatMap(\.values) }) { signal.notify() }
        for watcher in watchers.withLock({ Array($0.values) }) { watcher.changedAll() }
    }

    /// A task was created here (other replicas hear of it with its first change).
    func created(_ taskId: UUID) {
        for watcher in watchers.withLock({ Array($0.values) }) { watcher.changed(taskId) }
    }

    /// Follows every task that changes on this replica until `unwatch`.
    func watchAll() -> TaskChangeWatcher {
        let watcher = TaskChangeWatcher()
        watchers.withLock { $0[ObjectIdentifier(watcher)] = watcher }
        return watcher
    }

    func unwatch(_ watcher: TaskChangeWatcher) {
        watchers.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(watcher)) }
    }
}

/// The tasks that changed since the watcher last looked, and a signal when more do. A burst collapses into one set
/// (a task that changed ten times is one id), so a reader that takes them at its own pace does bounded work.
final class TaskChangeWatcher: Sendable {
    private let pending = Mutex<(ids: Set<UUID>, all: Bool)>(([], false))
    private let stopped = StopFlag()
    let signal = EventSignal()

    /// Whether the reader should stop (the server shuts down).
    var isStopped: Bool { stopped.isSet }

    func stop() {
        stopped.set()
        signal.notify()
    }

    func changed(_ taskId: UUID) {
        pending.withLock { _ = $0.ids.insert(taskId) }
        signal.notify()
    }

    /// Changes may have been missed (a replica's notifications were lost): everything may have changed.
    func changedAll() {
        pending.withLock { $0.all = true }
        signal.notify()
    }

    /// The ids changed since the last call, or `all` when the reader should re-read everything.
    func take() -> (ids: Set<UUID>, all: Bool) {
        pending.withLock { state in
            defer { state = ([], false) }
            return state
        }
    }
}

/// Set once, read by a loop that must end (an event stream when the server shuts down gracefully).
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// A level-triggered wake-up: `notify` before `wait` is not lost.
final class EventSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func notify() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns after a `notify` (true) or `timeout` (false), whichever comes first.
    @discardableResult
    func wait(timeout: Duration) async -> Bool {
        let timedOut = Atomic<Bool>(false)
        let timer = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            timedOut.store(true, ordering: .relaxed)
            self.notify()
        }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
        timer.cancel()
        return !timedOut.load(ordering: .relaxed)
    }
}

extension SwitchyardApplication {
    /// Runs `body` while following task `taskId` on this replica: `body`'s argument returns after the task next
    /// changes here (an event appended, a progress tick, a change another replica announced; true) or after
    /// `timeout` (false).
    /// Read the task, then wait, then read again: a change between the two is not lost. For in-process callers
    /// (tests) that follow a task without polling.
    public func followTask<T: Sendable>(
        _ taskId: UUID, _ body: (_ nextChange: @Sendable (_ timeout: Duration) async -> Bool) async throws -> T
    ) async throws -> T {
        let hub = dispatcher.hub
        let signal = hub.subscribe(taskId)
        defer { hub.unsubscribe(taskId, signal) }
        return try await body { timeout in await signal.wait(timeout: timeout) }
    }
}
