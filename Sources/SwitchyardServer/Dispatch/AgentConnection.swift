import Foundation
import SwitchyardCore
import SwitchyardWire

/// Identifies an agent: agents choose their ids, so they are unique within a team only.
struct AgentKey: Hashable, Sendable, CustomStringConvertible {
    let teamId: UUID
    let agentId: String

    var description: String { "\(agentId)@\(teamId.lowercased)" }
}

/// One agent's live session as the dispatcher sees it: messages to the agent go through an outbox that the
/// gateway's writer drains in order, so the dispatcher never waits on a slow socket.
final class AgentConnection: Sendable {
    let key: AgentKey
    let credentialId: UUID
    let outbox: AsyncStream<GatewayMessage>
    private let continuation: AsyncStream<GatewayMessage>.Continuation

    init(key: AgentKey, credentialId: UUID) {
        self.key = key
        self.credentialId = credentialId
        (outbox, continuation) = AsyncStream.makeStream(of: GatewayMessage.self)
    }

    func send(_ message: GatewayMessage) {
        continuation.yield(message)
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
