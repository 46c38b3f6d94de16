import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

extension HTTPServerBuilder {
    /// HTTP/1 with a WebSocket upgrade, where a connection that has not sent its first byte is closed when the
    /// server starts shutting down, and after `firstByteTimeout`.
    ///
    /// Hummingbird's upgradable pipeline only learns of a graceful shutdown once the first request has arrived, so a
    /// client that connected and said nothing yet (a connection pool's spare, a client cancelled between connect and
    /// request) held shutdown open until it went away by itself — tests hung for minutes, and a replica could not stop.
    ///
    /// `RequestLimits` apply (oversized heads answered, head and body timeouts), and a connection idle for
    /// `idleTimeout` between requests is closed.
    public static func http1WebSocketUpgradeClosingSilentConnections(
        configuration: WebSocketServerConfiguration, firstByteTimeout: TimeAmount = .seconds(30), idleTimeout: TimeAmount = .seconds(75),
        limits: RequestLimits = RequestLimits(),
        shouldUpgrade:
            @escaping @Sendable (HTTPRequest, any Channel, Logger) async throws -> ShouldUpgradeResult<
                WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
            >
    ) -> HTTPServerBuilder {
        .init { responder in
            SilentConnectionGuard(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, configuration: .init(http1: .init(idleTimeout: idleTimeout), ws: configuration),
                    shouldUpgrade: shouldUpgrade),
                firstByteTimeout: firstByteTimeout, limits: limits)
        }
    }

    /// Plain HTTP/1 (the embedded object store) with the same guards.
    static func http1Guarded(configuration: HTTP1Channel.Configuration, limits: RequestLimits, firstByteTimeout: TimeAmount = .seconds(30))
        -> HTTPServerBuilder
    {
        .init { responder in
            SilentConnectionGuard(
                base: HTTP1Channel(responder: responder, configuration: configuration), firstByteTimeout: firstByteTimeout, limits: limits)
        }
    }
}

/// A child channel that puts ``SilentConnectionHandler`` in front of `base`'s pipeline.
struct SilentConnectionGuard<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let firstByteTimeout: TimeAmount
    let limits: RequestLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(SilentConnectionHandler(timeout: firstByteTimeout), position: .first)
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }.flatMapThrowing { value in
            try limits.install(on: channel)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Closes the connection on a shutdown request or a timeout as long as no byte has arrived; steps aside (removes
/// itself) at the first byte, after which the HTTP or WebSocket handlers own the connection's shutdown.
final class SilentConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timer?.cancel()
        timer = nil
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
