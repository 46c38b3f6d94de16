import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import SwitchyardConcurrency
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

    /// Sessions admitted at once (their `hello` handled, their row written); the rest wait their turn.
    static let maximumOpening = 64

    let storage: any SwitchyardStorage
    let dispatcher: Dispatcher
    let opening = AsyncSemaphore(permits: AgentGateway.maximumOpening)
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
            let credential = await onChildTask({ try? await authenticate(request.headerFields[.authorization]) })
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

    /// One session: a task per connection, suspended in `read` while the agent is idle. Everything that goes deeper
    /// (the dispatcher's work) runs on shorter-lived tasks, since a task keeps every stack slab it grew until it ends.
    private func serve(credential: Credential, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        var messages = inbound.messages(maxSize: Self.maximumMessageSize).makeAsyncIterator()
        guard let connection = try await open(credential: credential, messages: &messages, outbound: outbound) else { return }
        await read(&messages, connection)
        if connection.overflowed {
            logger.warning("agent disconnected: it does not read its messages", metadata: ["agent": "\(connection.key)"])
        }
        await onChildTask { await dispatcher.disconnected(connection) }
        connection.finish()
        await connection.ended()
    }

    /// `hello` → `welcome`: the session's connection, writing; nil when the session was refused (the agent was told).
    /// Not inlined, like `read`: its locals stay out of the frame that waits in `read` for the session's life.
    @inline(never)
    private func open(
        credential: Credential, messages: inout WebSocketInboundMessageStream.AsyncIterator, outbound: WebSocketOutboundWriter
    ) async throws -> AgentConnection? {
        guard case .text(let text)? = try await messages.next() else { return nil }
        let hello: AgentMessage.Hello
        do {
            guard case .hello(let first) = try WireCoding.decodeAgentMessage(text) else {
                try await goodbye(outbound, "the first message must be hello", retry: false)
                return nil
            }
            hello = first
        } catch {
            try await goodbye(outbound, "the first message must be hello: \(error)", retry: false)
            return nil
        }
        guard hello.protocolVersion == WireProtocol.version else {
            try await goodbye(
                outbound, "protocol version \(hello.protocolVersion) is not supported; this server speaks \(WireProtocol.version)", retry: false)
            return nil
        }
        if let violation = WireProtocol.agentIdViolation(hello.agentId) {
            try await goodbye(outbound, "hello: \(violation)", retry: false)
            return nil
        }
        guard hello.capacity >= 1, hello.capacity <= 256 else {
            try await goodbye(outbound, "hello: capacity must be 1–256", retry: false)
            return nil
        }
        let connection = AgentConnection(
            key: AgentKey(teamId: credential.teamId, agentId: hello.agentId), credentialId: credential.id, socket: WebSocketAgentSocket(outbound))
        // At most `maximumOpening` sessions are admitted at once: ten thousand agents connecting together (a
        // restart, a network blip) wait here with a shallow stack, not each with a dispatcher call in flight.
        let welcome = try await opening.withPermit { await onChildTask { await dispatcher.connect(connection, hello: hello) } }
        try await outbound.writeTextMessage(try WireCoding.encode(welcome))
        if case .goodbye = welcome {
            try? await outbound.close(.normalClosure, reason: nil)
            return nil
        }
        connection.startWriting()
        return connection
    }

    /// Reads the agent's messages until its socket closes; returns once every message read has been handled.
    @inline(never)
    private func read(_ messages: inout WebSocketInboundMessageStream.AsyncIterator, _ connection: AgentConnection) async {
        await withDiscardingTaskGroup { group in
            var router = MessageRouter(connection: connection, dispatcher: dispatcher, logger: logger)
            do {
                while let message = try await messages.next() {
                    // A flood waits here, unread, with TCP pushing back on the agent (`InboundBacklog`).
                    if router.route(message, in: &group) {
                        dispatcher.metrics.agentReadPaused()
                        await router.backlog.drained()
                    }
                }
            } catch {
                logger.debug("agent socket ended", metadata: ["agent": "\(connection.key)", "error": "\(error)"])
            }
            router.finish()
        }
    }

    private func goodbye(_ outbound: WebSocketOutboundWriter, _ reason: String, retry: Bool) async throws {
        try await outbound.writeTextMessage(try WireCoding.encode(GatewayMessage.goodbye(.init(reason: reason, retry: retry))))
        try await outbound.close(.policyViolation, reason: nil)
    }
}

/// The agent's WebSocket as the session's outbox writes to it.
struct WebSocketAgentSocket: AgentSocket {
    let outbound: WebSocketOutboundWriter

    init(_ outbound: WebSocketOutboundWriter) {
        self.outbound = outbound
    }

    func write(_ message: GatewayMessage) async throws {
        try await outbound.writeTextMessage(try WireCoding.encode(message))
    }

    func close() async {
        try? await outbound.close(.normalClosure, reason: nil)
    }
}

/// Runs `body` on a child task. A task keeps every stack slab it grew until it ends, so work that goes deep once (a
/// database write) is run here by a task that lives as long as a connection: the slabs go with the child.
func onChildTask<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await withTaskGroup(of: T.self) { group in
        group.addTask(operation: body)
        // The group has exactly one child, so `next()` answers its result (nil only for a group with no children).
        return await group.next()!
    }
}

/// Where each message of a session is handled. Messages about one attempt are handled in order; different attempts'
/// messages side by side, so one attempt's commit never holds up the next attempt's start (their writes are
/// group-committed). The session's own messages (heartbeats, status) — and the messages of attempts beyond
/// `AgentGateway.maximumLanes` — are handled in order by a task that lives only while they wait. Nothing here waits:
/// the session's task stays suspended in its read with a shallow stack — unless the agent sends faster than its
/// messages are handled, when `backlog` stops the reading for a while.
struct MessageRouter {
    let connection: AgentConnection
    let dispatcher: Dispatcher
    let logger: Logger
    /// A decoded message and the size of its frame, for the backlog.
    struct Inbound: Sendable {
        let message: AgentMessage
        let bytes: Int
    }

    private var lanes: [String: AsyncStream<Inbound>.Continuation] = [:]
    /// Attempts whose messages go through `inLine` (no lane was free at their first message), until they end.
    private var inLineAttempts: Set<String> = []
    private let inLine = SerialPump<Inbound>()
    let backlog: InboundBacklog

    init(connection: AgentConnection, dispatcher: Dispatcher, logger: Logger) {
        self.backlog = InboundBacklog(high: dispatcher.settings.inboundBacklogHigh, low: dispatcher.settings.inboundBacklogLow)
        self.connection = connection
        self.dispatcher = dispatcher
        self.logger = logger
    }

    /// Hands the message to its lane (or the in-line queue); true when the backlog is full and the reader must wait.
    mutating func route(_ message: WebSocketMessage, in group: inout DiscardingTaskGroup) -> Bool {
        guard case .text(let text) = message else { return false }
        let decoded: AgentMessage
        do throws(WireError) {
            decoded = try WireCoding.decodeAgentMessage(text)
        } catch {
            if case .unknownType(let type) = error {
                logger.debug("ignored a message of an unknown type", metadata: ["type": "\(type)"])
            } else {
                connection.send(.refused(.init(attemptId: nil, reason: error.description)))
            }
            return false
        }
        let inbound = Inbound(message: decoded, bytes: text.utf8.count)
        let full = backlog.read(bytes: inbound.bytes)
        guard let attemptId = decoded.attemptId, !inLineAttempts.contains(attemptId),
            lanes[attemptId] != nil || lanes.count < AgentGateway.maximumLanes
        else {
            if let attemptId = decoded.attemptId {
                if decoded.endsAttempt { inLineAttempts.remove(attemptId) } else { inLineAttempts.insert(attemptId) }
            }
            let pushed = inLine.push(inbound)
            if pushed == .full || pushed == .closed { backlog.handled(bytes: inbound.bytes) }
            if pushed == .startDrainer {
                let (inLine, dispatcher, connection, backlog) = (inLine, dispatcher, connection, backlog)
                group.addTask {
                    while let next = inLine.next() {
                        await dispatcher.handle(next.message, from: connection)
                        backlog.handled(bytes: next.bytes)
                    }
                }
            }
            return full
        }
        if lanes[attemptId] == nil {
            let (lane, continuation) = AsyncStream.makeStream(of: Inbound.self)
            lanes[attemptId] = continuation
            let (dispatcher, connection, backlog) = (dispatcher, connection, backlog)
            group.addTask {
                for await next in lane {
                    await dispatcher.handle(next.message, from: connection)
                    backlog.handled(bytes: next.bytes)
                }
            }
        }
        lanes[attemptId]?.yield(inbound)
        if decoded.endsAttempt { lanes.removeValue(forKey: attemptId)?.finish() }
        return full
    }

    /// The socket closed: the lanes end once what they hold is handled.
    func finish() {
        for lane in lanes.values { lane.finish() }
    }
}
