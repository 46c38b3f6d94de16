import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization

/// A webhook receiver on a loopback port: it records every POST (headers and raw body) and answers with the status
/// the test sets (a receiver that is "down" answers 503, or drops the connection when `status` is nil).
public final class WebhookReceiver: Sendable {
    public struct Received: Sendable {
        public let headers: [String: String]
        public let body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    private let state = Mutex<(status: Int, received: [Received])>((200, []))
    private let waiters = Mutex<[(count: Int, continuation: CheckedContinuation<Void, Never>)]>([])

    public init() {}

    public var received: [Received] { state.withLock { $0.received } }

    /// Returns once at least `count` requests arrived (bound the test with a time limit).
    public func waitForRequests(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in state.received.count >= count }
            if ready {
                continuation.resume()
            } else {
                waiters.withLock { $0.append((count, continuation)) }
                resumeWaiters()
            }
        }
    }

    private func resumeWaiters() {
        let count = state.withLock { $0.received.count }
        let ready = waiters.withLock { waiters in
            let ready = waiters.filter { $0.count <= count }
            waiters.removeAll { $0.count <= count }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    public func answer(_ status: Int) {
        state.withLock { $0.status = status }
    }

    /// Runs the receiver on a free port while `body` runs. Header names are recorded lowercased.
    public func run(_ body: @Sendable (_ port: Int) async throws -> Void) async throws {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            var request = request
            let buffer = try await request.collectBody(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let status = self.state.withLock { state -> Int in
                state.received.append(Received(headers: headers, body: Array(buffer.readableBytesView)))
                return state.status
            }
            self.resumeWaiters()
            return Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(string: "ok")))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            guard let port = client.port else { throw TestSupportError("the webhook receiver has no port") }
            try await body(port)
        }
    }
}
