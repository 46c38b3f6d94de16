import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardWire

/// The agents' way in: `GET /api/v1/agent/connect` upgraded to a WebSocket when the bearer is an active `ak-`
/// key (docs/agent-protocol.md). The first message must be `hello`; the session then lives until the socket
/// closes, the agent goes silent, or the server stops.
struct AgentGateway: Sendable {
    /// Attempts of one session whose messages are handled side by side; beyond this they are handled in line.
    static let maximumLanes = 64

    static let path = "/api/v1/agent/connect"
    /// The largest message either side sends (an offer carries the whole definition).
    static let maximumMessageSize = 16 * 1024 * 1024

    let storage: any SwitchyardStorage
    let dispatcher: Dispatcher
    let clock: any WallClock
    let logger: Logger

    /// The agent's credential for an `Authorization: Bearer ak-…` header, or the 401 explaining why not.
    func authenticate(_ authorization: String?) async throws -> Credential {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else {
            throw SwitchyardError.unauthenticated("missing credentials: agents send Authorization: Bearer ak-…")
        }
        let token = authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
        guard CredentialKind(secret: token) == .agent else {
            throw SwitchyardError.unauthenticated("the agent gateway accepts agent keys (ak-) only")
        }
        guard let credential = try await storage.credential(keyHash: SecretHasher.keyHash(token)), credential.kind == .agent,
            credential.status(at: clock.now()) == .active
        else { throw SwitchyardError.unauthenticated("invalid, expired or revoked credential") }
        return credential
    }

    /// The upgrade decision for every HTTP/1 request: only the connect path with a valid key is upgraded; the
    /// rest (and refused upgrades) go to the router, whose connect route explains the refusal.
    func shouldUpgrade(_ request: HTTPRequest) async -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        guard request.path?.split(separator: "?", maxSplits: 1).first.map(String.init) == Self.path,
            let credential = try? await authenticate(request.headerFields[.authorization])
        else { return .dontUpgrade }
        return .upgrade([:]) { inbound, outbound, _ in
            try await serve(credential: credential, inbound: inbound, outbound: outbound)
        }
    }

    /// What a plain (not upgraded) request to the connect path gets: 401 for a bad key, else 426.
    func addRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get(RouterPath(stringLiteral: String(Self.path.dropFirst()))) { request, _ -> Response in
            _ = try await authenticate(request.headers[.authorization])
            throw HTTPError(.upgradeRequired, message: "this endpoint speaks WebSocket only (docs/agent-protocol.md)")
        }
    }

    private func serve(credential: Credential, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        var messages = inbound.messages(maxSize: Self.maximumMessageSize).makeAsyncIterator()
        guard case .text(let text)? = try await messages.next() else { return }
        let hello: AgentMessage.Hello
        do {
            guard case .hello(let first) = try WireCoding.decodeAgentMessage(text) else {
                try await goodbye(outbound, "the first message must be hello", retry: false)
                return
            }
            hello = first
        } catch {
            try await goodbye(outbound, "the first message must be hello: \(error)", retry: false)
            return
        }
        guard hello.protocolVersion == WireProtocol.version else {
            try await goodbye(
                outbound, "protocol version \(hello.protocolVersion) is not supported; this server speaks \(WireProtocol.version)", retry: false)
            return
        }
        guard !hello.agentId.isEmpty, hello.agentId.utf8.count <= 128, hello.capacity >= 1, hello.capacity <= 256 else {
            try await goodbye(outbound, "hello: agent_id must be 1–128 bytes and capacity 1–256", retry: false)
            return
        }

        let connection = AgentConnection(key: AgentKey(teamId: credential.teamId, agentId: hello.agentId), credentialId: credential.id)
        let welcome = await dispatcher.connect(connection, hello: hello)
        try await outbound.writeTextMessage(try WireCoding.encode(welcome))
        if case .goodbye = welcome {
            try? await outbound.close(.normalClosure, reason: nil)
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // The writer: drains the outbox in order; when it ends (goodbye, session replaced), closes the socket.
                for await message in connection.outbox {
                    if connection.overflowed {
                        logger.warning("agent disconnected: it does not read its messages", metadata: ["agent": "\(connection.key)"])
                        break
                    }
                    guard let text = try? WireCoding.encode(message) else { continue }
                    do { try await outbound.writeTextMessage(text) } catch { break }
                }
                try? await outbound.close(.normalClosure, reason: nil)
            }
            // Messages about one attempt are handled in order; different attempts' messages side by side, so one
            // attempt's commit never holds up the next attempt's start (their writes are group-committed). Every
            // message read is handled before the session is ended.
            await withDiscardingTaskGroup { lanesGroup in
                var lanes: [String: AsyncStream<AgentMessage>.Continuation] = [:]
                do {
                    while let message = try await messages.next() {
                        guard case .text(let text) = message else { continue }
                        let decoded: AgentMessage
                        do throws(WireError) {
                            decoded = try WireCoding.decodeAgentMessage(text)
                        } catch {
                            if case .unknownType(let type) = error {
                                logger.debug("ignored a message of an unknown type", metadata: ["type": "\(type)"])
                            } else {
                                connection.send(.refused(.init(attemptId: nil, reason: error.description)))
                            }
                            continue
                        }
                        guard let attemptId = decoded.attemptId, lanes[attemptId] != nil || lanes.count < Self.maximumLanes else {
                            await dispatcher.handle(decoded, from: connection)
                            continue
                        }
                        if lanes[attemptId] == nil {
                            let (lane, continuation) = AsyncStream.makeStream(of: AgentMessage.self)
                            lanes[attemptId] = continuation
                            lanesGroup.addTask {
                                for await message in lane { await dispatcher.handle(message, from: connection) }
                            }
                        }
                        lanes[attemptId]?.yield(decoded)
                        if decoded.endsAttempt { lanes.removeValue(forKey: attemptId)?.finish() }
                    }
                } catch {
                    logger.debug("agent socket ended", metadata: ["agent": "\(connection.key)", "error": "\(error)"])
                }
                for lane in lanes.values { lane.finish() }
            }
            await dispatcher.disconnected(connection)
            connection.finish()
        }
    }

    private func goodbye(_ outbound: WebSocketOutboundWriter, _ reason: String, retry: Bool) async throws {
        try await outbound.writeTextMessage(try WireCoding.encode(GatewayMessage.goodbye(.init(reason: reason, retry: retry))))
        try await outbound.close(.policyViolation, reason: nil)
    }
}
