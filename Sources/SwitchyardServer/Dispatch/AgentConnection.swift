import Foundation
import SwitchyardCore
import SwitchyardWire
import Synchronization

/// One agent's live session as the dispatcher sees it: messages to the agent go through an outbox that the
/// gateway's writer drains in order, so the dispatcher never waits on a slow socket. The outbox is bounded: an
/// agent that reads so slowly that `outboxLimit` messages wait for it is disconnected (`overflowed`), rather than
/// holding the server's memory.
final class AgentConnection: Sendable {
    static let defaultOutboxLimit = 1024

    let key: AgentKey
    let credentialId: UUID
    let outbox: AsyncStream<GatewayMessage>
    private let continuation: AsyncStream<GatewayMessage>.Continuation
    private let overflow = Atomic<Bool>(false)

    init(key: AgentKey, credentialId: UUID, outboxLimit: Int = AgentConnection.defaultOutboxLimit) {
        self.key = key
        self.credentialId = credentialId
        (outbox, continuation) = AsyncStream.makeStream(of: GatewayMessage.self, bufferingPolicy: .bufferingOldest(outboxLimit))
    }

    /// Whether the agent fell so far behind that its session is being ended: the writer stops at once.
    var overflowed: Bool { overflow.load(ordering: .relaxed) }

    func send(_ message: GatewayMessage) {
        if case .dropped = continuation.yield(message) {
            overflow.store(true, ordering: .relaxed)
            continuation.finish()
        }
    }

    /// Says goodbye and ends the session: the writer sends what is queued, then closes the socket.
    func close(reason: String, retry: Bool) {
        continuation.yield(.goodbye(.init(reason: reason, retry: retry)))
        continuation.finish()
    }

    /// Ends the outbox without a goodbye (the socket is already gone).
    func finish() {
        continuation.finish()
    }
}
