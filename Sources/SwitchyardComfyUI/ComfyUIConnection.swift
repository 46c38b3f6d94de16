import Foundation
import Logging
import Synchronization
import WSClient

/// One WebSocket to ComfyUI for every prompt an agent runs, its messages routed by `prompt_id`
/// (`spec/comfyui-protocol.md`: ComfyUI buffers nothing for a client that is not connected, so a prompt is watched
/// before it is posted). The socket is opened on first use and again after it drops; every watcher hears
/// `socketLost` when it does, since messages sent while it was down are gone and must be recovered from `/queue`
/// and `/history`.
public final class ComfyUIConnection: Sendable {
    /// What a watcher hears about its prompt.
    public enum Signal: Sendable, Equatable {
        case event(ComfyUIEvent)
        /// The socket dropped: messages may have been missed.
        case socketLost
    }

    /// The socket could not be opened: ComfyUI is not reachable.
    public struct Unreachable: Error, CustomStringConvertible {
        public let description: String
    }

    public let client: ComfyUIClient
    /// Our `clientId`: the same across reconnects, so ComfyUI keeps sending a running prompt's messages here.
    public let clientId: String
    let logger: Logger
    /// How long opening the socket (handshake and ComfyUI's greeting) may take.
    let connectTimeout: Duration

    private enum Phase {
        case idle
        case connecting([CheckedContinuation<Void, any Error>])
        case open
    }

    private struct State {
        var phase: Phase = .idle
        var watchers: [String: AsyncStream<Signal>.Continuation] = [:]
        var socket: Task<Void, Never>?
        var generation = 0
        var closed = false
    }

    private let state = Mutex(State())

    public init(
        client: ComfyUIClient, clientId: String = "switchyard-" + UUID().uuidString.lowercased(), connectTimeout: Duration = .seconds(10),
        logger: Logger
    ) {
        self.client = client
        self.clientId = clientId
        self.connectTimeout = connectTimeout
        self.logger = logger
    }

    deinit {
        state.withLock { $0.socket?.cancel() }
    }

    /// Starts listening for `promptId`'s messages, opening the socket first when it is not open. Throws
    /// `Unreachable` when ComfyUI does not accept the socket.
    public func watch(_ promptId: String) async throws -> AsyncStream<Signal> {
        let (stream, continuation) = AsyncStream.makeStream(of: Signal.self)
        state.withLock { $0.watchers[promptId] = continuation }
        do {
            try await open()
        } catch {
            unwatch(promptId)
            throw error
        }
        return stream
    }

    /// Stops routing `promptId`'s messages.
    public func unwatch(_ promptId: String) {
        state.withLock { $0.watchers.removeValue(forKey: promptId) }?.finish()
    }

    /// Whether the socket is open now.
    public var isOpen: Bool {
        state.withLock { if case .open = $0.phase { true } else { false } }
    }

    /// Opens the socket unless it is open; returns once it is.
    public func open() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { state -> Int? in
                switch state.phase {
                case .open:
                    continuation.resume()
                    return nil
                case .connecting(let waiters):
                    state.phase = .connecting(waiters + [continuation])
                    return nil
                case .idle:
                    guard !state.closed else {
                        continuation.resume(throwing: Unreachable(description: "the ComfyUI connection was closed"))
                        return nil
                    }
                    state.phase = .connecting([continuation])
                    state.generation += 1
                    return state.generation
                }
            }
            if let generation = start { startSocket(generation) }
        }
    }

    /// Closes the socket for good (the agent is stopping).
    public func close() {
        let (socket, watchers) = state.withLock { state in
            state.closed = true
            defer { state.watchers.removeAll() }
            return (state.socket, Array(state.watchers.values))
        }
        socket?.cancel()
        for watcher in watchers { watcher.finish() }
    }

    private func startSocket(_ generation: Int) {
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 24)
        configuration.autoPing = .disabled
        let url = client.webSocketURL(clientId: clientId)
        let logger = self.logger
        let task = Task {
            do {
                try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, _, _ in
                    // Open once ComfyUI's greeting (`status`) arrives: it registers the socket under our client id
                    // only after the handshake, and messages for an unregistered client are dropped.
                    var greeted = false
                    for try await message in inbound.messages(maxSize: 1 << 24) {
                        if !greeted {
                            greeted = true
                            self.opened(generation)
                        }
                        // Binary preview frames (SaveImageWebsocket) carry no state an executor needs.
                        guard case .text(let text) = message, let (promptId, event) = ComfyUIEvent.parse(text), let promptId else { continue }
                        self.route(promptId, event)
                    }
                }
                self.ended(generation, error: nil)
            } catch {
                self.ended(generation, error: error)
            }
        }
        state.withLock { $0.socket = task }
        // A handshake or greeting that never comes must not hold the prompts waiting for the socket.
        let timeout = connectTimeout
        Task {
            try? await Task.sleep(for: timeout)
            self.connectTimedOut(generation)
        }
    }

    private func connectTimedOut(_ generation: Int) {
        let (waiters, socket) = state.withLock { state -> ([CheckedContinuation<Void, any Error>], Task<Void, Never>?) in
            guard state.generation == generation, case .connecting(let waiters) = state.phase else { return ([], nil) }
            state.phase = .idle
            state.generation += 1
            return (waiters, state.socket)
        }
        guard !waiters.isEmpty else { return }
        socket?.cancel()
        let failure = Unreachable(description: "ComfyUI at \(client.baseURL) did not open a WebSocket within \(connectTimeout)")
        for waiter in waiters { waiter.resume(throwing: failure) }
    }

    private func opened(_ generation: Int) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard state.generation == generation, case .connecting(let waiters) = state.phase else { return [] }
            state.phase = .open
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func route(_ promptId: String, _ event: ComfyUIEvent) {
        _ = state.withLock { $0.watchers[promptId] }?.yield(.event(event))
    }

    private func ended(_ generation: Int, error: (any Error)?) {
        let (waiters, watchers) = state.withLock { state -> ([CheckedContinuation<Void, any Error>], [AsyncStream<Signal>.Continuation]) in
            guard state.generation == generation else { return ([], []) }
            defer { state.phase = .idle }
            switch state.phase {
            case .connecting(let waiters): return (waiters, [])
            case .open: return ([], Array(state.watchers.values))
            case .idle: return ([], [])
            }
        }
        let reason = error.map { "\($0)" } ?? "the server closed it"
        if !waiters.isEmpty {
            let failure = Unreachable(description: "ComfyUI at \(client.baseURL) did not accept a WebSocket: \(reason)")
            for waiter in waiters { waiter.resume(throwing: failure) }
        }
        if !watchers.isEmpty {
            logger.warning("the ComfyUI WebSocket dropped", metadata: ["reason": "\(reason)"])
            for watcher in watchers { watcher.yield(.socketLost) }
        }
    }
}
