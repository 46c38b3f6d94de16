import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import SwitchyardServer
import SwitchyardWire
import Synchronization
import WSClient

/// A hand-driven agent for gateway tests: it speaks the wire protocol message by message, so a test can ack
/// late, send messages about attempts it does not hold, or vanish mid-task.
public struct WireTestAgent: Sendable {
    public let inbox: Inbox
    let outbound: WebSocketOutboundWriter
    /// The gateway's `welcome` (set before `body` runs).
    public var welcome = GatewayMessage.Welcome(agentId: "", gatewayId: "", heartbeatInterval: 0)

    public func send(_ message: AgentMessage) async throws {
        try await outbound.writeTextMessage(try WireCoding.encode(message))
    }

    /// The next message from the gateway that `match` accepts (others are skipped), within `timeout`.
    public func receive<T: Sendable>(
        within timeout: Duration = .seconds(30), _ what: String = "message", _ match: @Sendable (GatewayMessage) -> T?
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero, let message = await inbox.next(timeout: left) else {
                throw TestSupportError("no \(what) from the gateway within \(timeout)")
            }
            if let value = match(message) { return value }
        }
    }

    public func offer(within timeout: Duration = .seconds(30)) async throws -> GatewayMessage.Offer {
        try await receive(within: timeout, "offer") { if case .offer(let offer) = $0 { offer } else { nil } }
    }

    /// Connects with `key`, sends `hello`, waits for `welcome`, runs `body`, then closes.
    public static func connect(
        port: Int, key: String, hello: AgentMessage.Hello, _ body: @escaping @Sendable (WireTestAgent) async throws -> Void
    ) async throws {
        var configuration = WebSocketClientConfiguration(maxFrameSize: 16 * 1024 * 1024)
        configuration.additionalHeaders[.authorization] = "Bearer \(key)"
        let failure = Mutex<(any Error)?>(nil)
        try await WebSocketClient.connect(
            url: "ws://127.0.0.1:\(port)/api/v1/agent/connect", configuration: configuration, logger: Logger(label: "wire-test-agent")
        ) { inbound, outbound, _ in
            let inbox = Inbox()
            var agent = WireTestAgent(inbox: inbox, outbound: outbound)
            await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 16 * 1024 * 1024) {
                        if case .text(let text) = message, let decoded = try? WireCoding.decodeGatewayMessage(text) { inbox.push(decoded) }
                    }
                    inbox.push(nil)
                }
                do {
                    try await agent.send(.hello(hello))
                    agent.welcome = try await agent.receive("welcome") { if case .welcome(let welcome) = $0 { welcome } else { nil } }
                    try await body(agent)
                } catch {
                    failure.withLock { $0 = error }
                }
                try? await outbound.close(.normalClosure, reason: nil)
                group.cancelAll()
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// A `hello` with test defaults.
    public static func hello(
        _ agentId: String, labels: [String] = ["gpu", "comfyui"], capacity: Int = 1, region: String? = nil, held: [String] = [],
        communityOptIn: Bool = false, vramGB: Int = 24
    ) -> AgentMessage.Hello {
        AgentMessage.Hello(
            agentId: agentId, agentVersion: "test", tool: "comfyui", toolVersion: "0.3.64", labels: labels, region: region,
            communityOptIn: communityOptIn, capacity: capacity,
            systemStats: SystemStats(os: "posix", gpuDevices: [.init(name: "NVIDIA Test GPU", vramTotal: vramGB << 30, vramFree: vramGB << 29)]),
            heldAttempts: held)
    }

    /// Messages in arrival order; nil marks the end of the stream.
    public final class Inbox: Sendable {
        private struct State {
            var buffered: [GatewayMessage?] = []
            var waiter: CheckedContinuation<GatewayMessage??, Never>?
            var closed = false
        }

        private let state = Mutex(State())

        func push(_ message: GatewayMessage?) {
            let waiter = state.withLock { state -> CheckedContinuation<GatewayMessage??, Never>? in
                if let waiter = state.waiter {
                    state.waiter = nil
                    return waiter
                }
                state.buffered.append(message)
                return nil
            }
            waiter?.resume(returning: .some(message))
        }

        /// The next message, nil when the stream ended or `timeout` passed.
        func next(timeout: Duration) async -> GatewayMessage? {
            let timer = Task {
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                let waiter = self.state.withLock { state -> CheckedContinuation<GatewayMessage??, Never>? in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume(returning: .none)
            }
            defer { timer.cancel() }
            let result: GatewayMessage?? = await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> GatewayMessage?? in
                    if state.closed { return .some(nil) }
                    if !state.buffered.isEmpty {
                        let first = state.buffered.removeFirst()
                        if first == nil { state.closed = true }
                        return .some(first)
                    }
                    state.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
            guard case .some(let message) = result else { return nil }
            if message == nil { state.withLock { $0.closed = true } }
            return message
        }
    }
}

extension TestApp {
    /// The common start of a gateway test: a live SQLite app with the `invert` workflow imported (its `task_timeout`
    /// given) and one wire agent (`WireTestAgent.hello(agentId)`) connected.
    public static func withInvertAgent(
        _ agentId: String = "gpu", taskTimeout: Int = 300, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        file: String = #fileID, line: Int = #line, _ body: @escaping @Sendable (TestApp, any TestClientProtocol, WireTestAgent) async throws -> Void
    ) async throws {
        try await TestApp.with(.sqlite, live: true, configure: configure, file: file, line: line) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(timeout: taskTimeout))
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello(agentId)) { agent in
                try await body(app, client, agent)
            }
        }
    }
}
