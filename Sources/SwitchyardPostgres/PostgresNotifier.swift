import Foundation
import Logging
import PostgresNIO
import SwitchyardCore
import Synchronization

/// Replica notifications over PostgreSQL `LISTEN/NOTIFY` on one channel. Published notifications are batched:
/// whatever queued while the previous `pg_notify` ran goes in the next one (payloads up to 7,900 bytes, entries
/// separated by commas, after the sender's replica id so a replica skips its own). One pool connection listens;
/// when it is lost the notifier reconnects with backoff and delivers `.resync`, since NOTIFY keeps nothing for a
/// session that was not listening.
public final class PostgresNotifier: ReplicaNotifier {
    public static let channel = "switchyard_tasks"
    static let maximumPayload = 7_900

    public var isShared: Bool { true }
    /// Distinguishes this process's notifications from the other replicas'.
    let replicaId = String(UUID().uuidString.lowercased().prefix(8))
    let client: PostgresClient
    let logger: Logger

    private struct State {
        var outbox: [String] = []
        var senderWaiting: CheckedContinuation<Void, Never>?
        var subscribers: [UUID: AsyncStream<ReplicaNotification>.Continuation] = [:]
    }

    private let state = Mutex(State())
    /// False from the moment the listening connection is lost until a new one listens: the database is down or
    /// restarting, and requests are answered 503 at once rather than waiting for the pool to give up (60 s).
    let listening = Atomic<Bool>(true)

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func publish(_ notification: ReplicaNotification) {
        let sender = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.outbox.append(notification.encoded)
            defer { state.senderWaiting = nil }
            return state.senderWaiting
        }
        sender?.resume()
    }

    public func notifications() -> AsyncStream<ReplicaNotification> {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: ReplicaNotification.self)
        continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) } }
        state.withLock { $0.subscribers[id] = continuation }
        return stream
    }

    /// Sends and listens until cancelled (part of the storage's `run`).
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.send() }
            group.addTask { await self.listen() }
        }
        let subscribers = state.withLock { state in
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    private func deliver(_ notification: ReplicaNotification) {
        for subscriber in state.withLock({ Array($0.subscribers.values) }) { subscriber.yield(notification) }
    }

    // MARK: Sending

    private func send() async {
        while !Task.isCancelled {
            let batch = await nextBatch()
            for payload in Self.payloads(replicaId: replicaId, entries: batch) {
                do {
                    try await client.query("SELECT pg_notify(\(Self.channel), \(payload))", logger: logger)
                } catch {
                    // The others' rescan (and their `.resync` when they reconnect) covers a lost notification.
                    logger.debug("could not notify the other replicas", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Waits until something is queued, then takes all of it.
    private func nextBatch() async -> [String] {
        while !Task.isCancelled {
            let batch = state.withLock { state in
                defer { state.outbox.removeAll() }
                return state.outbox
            }
            if !batch.isEmpty { return batch }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        guard state.outbox.isEmpty, !Task.isCancelled else { return true }
                        state.senderWaiting = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                let waiting = state.withLock { state in
                    defer { state.senderWaiting = nil }
                    return state.senderWaiting
                }
                waiting?.resume()
            }
        }
        return []
    }

    /// `<replica> <entry>,<entry>…`, split so no payload passes `maximumPayload`.
    static func payloads(replicaId: String, entries: [String]) -> [String] {
        var payloads: [String] = []
        var current = ""
        for entry in entries {
            if !current.isEmpty, current.utf8.count + entry.utf8.count + 1 > maximumPayload {
                payloads.append(current)
                current = ""
            }
            current += current.isEmpty ? "\(replicaId) \(entry)" : ",\(entry)"
        }
        if !current.isEmpty { payloads.append(current) }
        return payloads
    }

    /// The notifications in a payload of another replica; none for this replica's own.
    static func parse(_ payload: String, ownReplicaId: String) -> [ReplicaNotification] {
        guard let space = payload.firstIndex(of: " "), payload[..<space] != ownReplicaId else { return [] }
        return payload[payload.index(after: space)...].split(separator: ",").compactMap(ReplicaNotification.init(encoded:))
    }

    // MARK: Listening

    private func listen() async {
        var delay = Duration.milliseconds(250)
        while !Task.isCancelled {
            let began = ContinuousClock.now
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        self.listening.store(true, ordering: .relaxed)
                        // Whatever happened while nobody listened is unknown.
                        self.deliver(.resync)
                        for try await notification in notifications {
                            for parsed in Self.parse(notification.payload, ownReplicaId: self.replicaId) { self.deliver(parsed) }
                        }
                    }
                }
            } catch {
                guard !Task.isCancelled else { return }
                listening.store(false, ordering: .relaxed)
                logger.warning("lost the PostgreSQL notification listener; reconnecting", metadata: ["error": "\(error)"])
            }
            if began.duration(to: .now) > .seconds(10) { delay = .milliseconds(250) }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}
