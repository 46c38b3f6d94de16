import Foundation
import NIOCore
import NIOPosix
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardServer

/// A raw TCP exchange: sends `bytes`, collects what comes back until the server closes the connection. `closed`
/// completes when it does; the test bounds the wait.
final class RawConnection: Sendable {
    private let channel: any Channel
    private final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }
    private let received = Received()

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let sink: @Sendable (ByteBuffer) -> Void
        init(sink: @escaping @Sendable (ByteBuffer) -> Void) { self.sink = sink }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { sink(unwrapInboundIn(data)) }
    }

    /// Connects and sends `text` on the event loop the moment the connection is up. Sending from the test's task
    /// after `connect` returned instead left a gap as long as the task waited for a thread — on a loaded two-core CI
    /// machine long enough for the server's head timeout to close the connection first ("I/O on closed channel").
    init(port: Int, sending text: String) async throws {
        let received = self.received
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Collector { buffer in received.bytes.withLock { $0 += buffer.readableBytesView } })
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .flatMap { channel in channel.writeAndFlush(ByteBuffer(string: text)).map { channel } }
            .get()
    }

    var text: String { String(decoding: received.bytes.withLock { $0 }, as: UTF8.self) }

    /// Waits until the server closes the connection (at most `limit`, then the test closes it and fails), then
    /// returns everything it sent.
    func untilClosed(limit: TimeAmount = .seconds(10)) async throws -> String {
        let timedOut = Mutex(false)
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: limit) {
            timedOut.withLock { $0 = true }
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        timer.cancel()
        if timedOut.withLock({ $0 }) { throw TestSupportError("the server did not close the connection in time; it sent: \(text.prefix(300))") }
        return text
    }

    var isOpen: Bool { channel.isActive }

    func close() async {
        try? await channel.close()
    }
}

@Suite("HTTP limits of both servers")
struct HTTPLimitsTests {
    static let quick: @Sendable (inout ServerConfiguration) -> Void = { $0.httpIdleTimeout = 0.3 }
    static let big = String(repeating: "a", count: 100_000)

    @Test("an oversized head is answered (414 for a long request line, 431 otherwise) and the connection closed, on the API and the store")
    func oversizedHeads() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let api = try #require(client.port)
            let cases: [(Int, String, String)] = [
                (api, "GET /api/v1/r/tasks?\(Self.big) HTTP/1.1\r\nHost: x\r\n\r\n", "414 URI Too Long"),
                (api, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(Self.big)\r\n\r\n", "431 Request Header Fields Too Large"),
                (
                    api, "GET /healthz HTTP/1.1\r\nHost: x\r\n" + (0..<10_000).map { "X-\($0): 1\r\n" }.joined() + "\r\n",
                    "431 Request Header Fields Too Large"
                ),
                (
                    api, "POST /api/v1/r/workflows/x/run HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \(Self.big)\r\nContent-Length: 2\r\n\r\n{}",
                    "431 Request Header Fields Too Large"
                ),
            ]
            for (port, request, status) in cases {
                let connection = try await RawConnection(
                    port: port, sending: request)
                let answer = try await connection.untilClosed()
                #expect(answer.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(answer.prefix(80))")
                #expect(answer.contains(#"{"error_message":"the request"#))
            }
            let store = try await RawConnection(
                port: app.environment.configuration.embeddedS3Port, sending: "GET /switchyard/\(Self.big) HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = try await store.untilClosed()
            #expect(answer.hasPrefix("HTTP/1.1 414 URI Too Long\r\n") && answer.contains("<Code>RequestURITooLong</Code>"))
        }
    }

    @Test("half-sent heads, stalled bodies and idle keep-alive connections are closed after http.idleTimeout, on both servers")
    func timeouts() async throws {
        try await TestApp.with(.sqlite, live: true, configure: Self.quick) { app, client in
            let api = try #require(client.port)
            for port in [api, app.environment.configuration.embeddedS3Port] {
                let halfHead = try await RawConnection(
                    port: port, sending: "GET /healthz HTTP/1.1\r\nHost: x\r\n")
                #expect(try await halfHead.untilClosed() == "")

                let stalledBody = try await RawConnection(
                    port: port, sending: "PUT /switchyard/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
                _ = try await stalledBody.untilClosed()
            }
            let idle = try await RawConnection(
                port: api, sending: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await idle.untilClosed().hasPrefix("HTTP/1.1 200 OK"))
        }
    }

    /// One request on a connection of its own (`Connection: close`): the test client's kept-alive connection would
    /// itself be closed for idleness between two calls on a loaded machine.
    static func rawCall(port: Int, _ method: String, _ path: String, token: String, team: UUID? = nil, body: String = "") async throws -> (
        status: Int, body: String
    ) {
        let teamHeader = team.map { "X-Team-ID: \($0.lowercased)\r\n" } ?? ""
        let connection = try await RawConnection(
            port: port,
            sending:
                "\(method) \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\(teamHeader)Content-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        let answer = try await connection.untilClosed()
        let status = Int(answer.dropFirst("HTTP/1.1 ".count).prefix(3)) ?? 0
        let payload = answer.range(of: "\r\n\r\n").map { String(answer[$0.upperBound...]) } ?? ""
        return (status, payload)
    }

    @Test("an event stream outlives the idle timeout: answers being written are never cut")
    func streamsSurvive() async throws {
        // Three seconds rather than `quick`: the calls below each open a connection whose head must arrive within the
        // timeout, which a loaded two-core machine (the whole suite, and a CI build beside it) missed at 0.3 s and 1 s.
        try await TestApp.with(.sqlite, live: true, configure: { $0.httpIdleTimeout = 3 }) { app, client in
            let port = try #require(client.port)
            let login = try await Self.rawCall(
                port: port, "POST", "/api/v1/auth/login", token: "",
                body: #"{"email_address":"\#(app.bootstrap.emailAddress)","password":"\#(app.bootstrap.password)"}"#)
            let session = try #require(
                try JSONValue.parse(login.body)["access_token"]?.stringValue, "\(login)")
            let imported = try await Self.rawCall(
                port: port, "POST", "/api/v1/workflows/import", token: session, team: app.bootstrap.teamId, body: try TestApp.invertImport())
            #expect(imported.status == 201 || imported.status == 200, "\(imported)")
            let run = try await Self.rawCall(
                port: port, "POST", "/api/v1/r/workflows/slug/invert/run", token: app.bootstrap.integrationKey, body: "{}")
            let task = try #require(
                try JSONValue.parse(run.body)["task_id"]?.stringValue, "\(run)")
            let stream = try await RawConnection(
                port: port,
                sending:
                    "GET /api/v1/r/tasks/\(task)/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(app.bootstrap.integrationKey)\r\n\r\n")
            // A second connection closed for idleness is the sign that the timeout has passed for the first too.
            let idle = try await RawConnection(
                port: port, sending: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try await idle.untilClosed()
            #expect(stream.isOpen)
            let cancel = try await Self.rawCall(port: port, "POST", "/api/v1/r/tasks/\(task)/cancel", token: app.bootstrap.integrationKey)
            try #require(cancel.status == 200, "\(cancel)")
            let events = try await stream.untilClosed()
            #expect(events.contains("event: cancelled"), "\(events)")
        }
    }
}
