import NIOCore
import NIOHTTP1

/// What both HTTP servers (the API and the embedded object store) enforce below the router (docs/security.md):
/// - a request head above the decoder's limits (80 KiB in all, 1,000 headers) is answered — 414 when its request
///   line is over 8 KiB, 431 otherwise — and the connection closed, instead of being held unanswered;
/// - the first request head must be complete within `headTimeout` of the connection's start;
/// - after it, the HTTP server's idle timeout (set where the server is configured) closes a connection that sends
///   nothing for that long while a request's head or body is arriving, or between requests — never while an
///   answer (an event stream) is being written.
public struct RequestLimits: Sendable {
    public var headTimeout: TimeAmount = .seconds(30)
    /// The body of the 414 / 431 answer, for the server's error format.
    public var errorBody: @Sendable (_ status: HTTPResponseStatus) -> (contentType: String, body: String) = { status in
        let message =
            status == .uriTooLong
            ? "the request line is too long: at most 80 KiB" : "the request head is too large: at most 80 KiB of headers and 1,000 header fields"
        return ("application/json", #"{"error_message":"\#(message)"}"#)
    }

    public init(headTimeout: TimeAmount = .seconds(30)) {
        self.headTimeout = headTimeout
    }

    init(errorBody: @escaping @Sendable (_ status: HTTPResponseStatus) -> (contentType: String, body: String)) {
        self.errorBody = errorBody
    }

    /// Adds the handlers to a pipeline that `configureHTTPServerPipeline` (or its upgradable twin) set up.
    func install(on channel: any Channel) throws {
        let operations = channel.pipeline.syncOperations
        let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        let line = RequestLine()
        try operations.addHandler(RequestLineWatcher(line: line), position: .first)
        try operations.addHandler(RequestLimitHandler(limits: self, line: line), position: .after(decoder))
    }
}

/// How long the current request's first line is (bytes up to its LF, or so far), to tell an overlong URL from
/// overlong headers when the decoder gives up on a head.
final class RequestLine {
    var length = 0
    var ended = false

    /// A request line over 8 KiB (what common servers allow a URL) is why the head was refused: 414.
    var isTooLong: Bool { length > 8 * 1024 }

    /// The next bytes start a new request.
    func reset() {
        length = 0
        ended = false
    }
}

/// Measures the request line in the raw bytes (before the HTTP decoder).
final class RequestLineWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let line: RequestLine

    init(line: RequestLine) {
        self.line = line
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !line.ended {
            let bytes = unwrapInboundIn(data).readableBytesView
            if let feed = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                line.length += bytes.distance(from: bytes.startIndex, to: feed)
                line.ended = true
            } else {
                line.length += bytes.count
            }
        }
        context.fireChannelRead(data)
    }
}

/// After the HTTP decoder: answers oversized heads and runs the first head's timer. Reads pass through untouched
/// once the connection asked for a protocol upgrade (WebSocket frames are not HTTP parts).
final class RequestLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let limits: RequestLimits
    private let line: RequestLine
    private var timer: Scheduled<Void>?
    private var passThrough = false
    private var answered = false

    init(limits: RequestLimits, line: RequestLine) {
        self.limits = limits
        self.line = line
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context, limits.headTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !passThrough else {
            context.fireChannelRead(data)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            disarm()
            passThrough = head.headers.contains(name: "upgrade")
        case .body:
            break
        case .end:
            line.reset()
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, parserError == .headerOverflow else {
            context.fireErrorCaught(error)
            return
        }
        answer(context, line.isTooLong ? .uriTooLong : .requestHeaderFieldsTooLarge)
    }

    private func answer(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus) {
        guard !answered else { return }
        answered = true
        disarm()
        let (contentType, text) = limits.errorBody(status)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
