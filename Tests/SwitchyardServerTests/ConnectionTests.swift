import AsyncHTTPClient
import Foundation
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import NIOPosix
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardServer

/// Channels to close once a test is over.
final class Box: Sendable {
    private let channels = Mutex<[any Channel]>([])
    func append(_ channel: any Channel) { channels.withLock { $0.append(channel) } }
    var all: [any Channel] { channels.withLock { $0 } }
    func closeAll() { for channel in all { channel.close(promise: nil) } }
}

@Suite("Connections: a client that never speaks holds nothing open")
struct ConnectionTests {
    /// Records the user events that reach it.
    final class EventRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var quiesceEvents = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { quiesceEvents += 1 }
            context.fireUserInboundEventTriggered(event)
        }
    }

    static func connectedChannel(timeout: TimeAmount = .seconds(30)) throws -> (EmbeddedChannel, EventRecorder) {
        let recorder = EventRecorder()
        let channel = EmbeddedChannel(handlers: [SilentConnectionHandler(timeout: timeout), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        return (channel, recorder)
    }

    @Test("a shutdown closes a connection that has not sent a byte")
    func quiesceBeforeFirstByte() throws {
        let (channel, recorder) = try Self.connectedChannel()
        #expect(channel.isActive)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!channel.isActive)
        #expect(recorder.quiesceEvents == 0)
    }

    @Test("a connection that sends nothing for the first-byte timeout is closed")
    func firstByteTimeout() throws {
        let (channel, _) = try Self.connectedChannel(timeout: .seconds(30))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }

    @Test("after the first byte the guard steps aside: the bytes pass, a shutdown reaches the HTTP handlers, no timeout")
    func afterFirstByte() throws {
        let (channel, recorder) = try Self.connectedChannel(timeout: .seconds(30))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        #expect(throws: ChannelPipelineError.self) { try channel.pipeline.syncOperations.handler(type: SilentConnectionHandler.self) }
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(recorder.quiesceEvents == 1)
        #expect(channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// Fails by the time limit with a pipeline that ignores the shutdown (it then waits for the silent client forever).
    @Test("the live server stops while a client holds a connection on which it never sent a byte", .timeLimit(.minutes(1)))
    func liveShutdownWithSilentClient() async throws {
        let silent = Box()
        defer { silent.closeAll() }
        try await TestApp.with(.sqlite, live: true) { _, client in
            let port = try #require(client.port)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            silent.append(channel)
            // A later connection is accepted after the silent one, so once it is answered the server holds both.
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz"), timeout: .seconds(10))
            #expect(response.status == .ok)
            #expect(channel.isActive)
        }
        // The server stopped, and closed the silent connection on its way out.
        for channel in silent.all {
            try? await channel.closeFuture.get()
            #expect(!channel.isActive)
        }
    }
}
