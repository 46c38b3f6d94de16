import Foundation
import SwitchyardCore
import SwitchyardWire
import Synchronization

/// Where a session's messages go: the agent's WebSocket, or a recorder in tests.
protocol AgentSocket: Sendable {
    func write(_ message: GatewayMessage) async throws
    /// Closes the socket; the session's reader then ends.
    func close() async
}

/// One agent's live session as the dispatcher sees it: messages to the agent go through an outbox, written in order
/// by a task that exists only while messages wait (`SerialPump`), so the dispatcher never waits on a slow socket and
/// an idle session keeps no writer task. The outbox is bounded: an agent that reads so slowly that `outboxLimit`
/// messages wait for it is disconnected (`overflowed`), rather than holding the server's memory.
final class AgentConnection: Sendable {
    static let defaultOutboxLimit = 1024

    private enum Outgoing: Sendable {
        case message(GatewayMessage)
        /// Close the socket once what was queued before is written.
        case end
    }

    let key: AgentKey
    let credentialId: UUID
    private let socket: any AgentSocket
    private let outbox: SerialPump<Outgoing>
    private let overflow = Atomic<Bool>(false)
    private let ending = Mutex<(ended: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Nothing is written until `startWriting` (the gateway writes the welcome first).
    init(key: AgentKey, credentialId: UUID, socket: any AgentSocket, outboxLimit: Int = AgentConnection.defaultOutboxLimit) {
        self.key = key
        self.credentialId = credentialId
        self.socket = socket
        outbox = SerialPump(limit: outboxLimit, held: true)
    }

    /// Whether the agent fell so far behind that its session was ended: what waited was dropped, the socket closed.
    var overflowed: Bool { overflow.load(ordering: .relaxed) }

    func send(_ message: GatewayMessage) {
        push(.message(message))
    }

    /// Says goodbye and ends the session: what is queued is written, then the goodbye, then the socket closes.
    func close(reason: String, retry: Bool) {
        push(.message(.goodbye(.init(reason: reason, retry: retry))))
        finish()
    }

    /// Ends the session without a goodbye: what is queued is written, then the socket closes.
    func finish() {
        push(.end)
        outbox.close(discarding: false)
    }

    /// Starts writing what the dispatcher queued since the connection was made.
    func startWriting() {
        Task { await drain() }
    }

    /// Returns once the socket is closed by this side (after `finish`, `close` or an overflow).
    func ended() async {
        await withCheckedContinuation { continuation in
            let ended = ending.withLock { state in
                if !state.ended { state.waiters.append(continuation) }
                return state.ended
            }
            if ended { continuation.resume() }
        }
    }

    private func push(_ item: Outgoing) {
        switch outbox.push(item) {
        case .startDrainer: startWriting()
        case .queued, .closed: break
        case .full:
            overflow.store(true, ordering: .relaxed)
            outbox.close(discarding: true)
        }
    }

    private func drain() async {
        var broken = false
        while let item = outbox.next() {
            switch item {
            case .message(let message):
                guard !overflowed, !broken else { continue }
                do { try await socket.write(message) } catch {
                    broken = true
                    outbox.close(discarding: true)
                }
            case .end:
                await end()
            }
        }
        if overflowed || broken { await end() }
    }

    private func end() async {
        await socket.close()
        let waiters = ending.withLock { state in
            defer { state = (true, []) }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
