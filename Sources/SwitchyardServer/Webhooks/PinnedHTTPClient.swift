import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwitchyardConcurrency
import SwitchyardCore
import Synchronization

/// HTTP/1.1 POSTs to addresses that were already checked against the webhook policy. A connection goes to that
/// address and nowhere else — there is no second DNS lookup between the check and the connect, so a name that
/// answers a public address to the check and a private one to the connect (DNS rebinding) reaches nothing. TLS still
/// verifies the certificate against the URL's host name (sent as SNI); an IP-literal URL is verified against the IP.
///
/// Connections are kept alive and reused per (address, host, TLS), at most `maxConnectionsPerKey` at once (more
/// deliveries to the same receiver wait for one): a receiver sees a few connections, not one per delivery, and
/// pays a few TLS handshakes, not hundreds.
final class PinnedHTTPClient: Sendable {
    /// What the target answered.
    struct Answer: Sendable {
        var status: Int
    }

    /// Why no answer came; `detail` is for the operator's log only (docs/webhooks.md: the delivery log stays coarse so
    /// it cannot be used to scan ports).
    struct NoAnswer: Error, CustomStringConvertible {
        var timedOut: Bool
        var detail: String
        var description: String { detail }
    }

    private struct Key: Hashable {
        var address: String
        var host: String
        var port: Int
        var https: Bool
    }

    private struct Idle {
        var channel: any Channel
        var since: ContinuousClock.Instant
    }

    let group: any EventLoopGroup
    let tls: NIOSSLContext
    /// Idle connections kept per key, and how long one may idle before it is not trusted any more.
    let maxIdlePerKey = 64
    let idleLifetime: Duration = .seconds(20)
    let maxConnectionsPerKey = 8
    private let idle = Mutex<[Key: [Idle]]>([:])
    private let slots = Mutex<[Key: AsyncSemaphore]>([:])

    init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.group = group
        self.tls = try NIOSSLContext(configuration: .makeClientConfiguration())
    }

    /// POSTs `body` to `path` on `host` (the URL's host, for `Host` and TLS) at one of `addresses` (tried in order;
    /// each was checked). At most `timeout` from the first connect to the end of the answer; up to 64 KiB of the
    /// answer's body is read and dropped.
    func post(
        host: String, port: Int, https: Bool, addresses: [SocketAddress], path: String, headers: HTTPHeaders, body: [UInt8],
        timeout: TimeAmount
    ) async throws -> Answer {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        let bracketed = host.contains(":") ? "[\(host)]" : host
        head.headers.add(name: "Host", value: port == (https ? 443 : 80) ? bracketed : "\(bracketed):\(port)")
        head.headers.add(contentsOf: headers)
        head.headers.add(name: "Content-Length", value: String(body.count))
        let request = head
        var lastError: (any Error)?
        for address in addresses {
            let key = Key(address: "\(address)", host: host, port: port, https: https)
            let slot = slots.withLock { slots in
                if let slot = slots[key] { return slot }
                let made = AsyncSemaphore(permits: maxConnectionsPerKey)
                slots[key] = made
                return made
            }
            do {
                return try await slot.withPermit {
                    // The time limit counts from here: waiting for one of the receiver's connections is not its fault.
                    try await self.send(key: key, address: address, head: request, body: body, deadline: .now() + timeout)
                }
            } catch let error as NoAnswer where error.detail.hasPrefix("could not connect") {
                lastError = error
                continue
            }
        }
        throw NoAnswer(timedOut: false, detail: "could not connect: \(lastError.map { "\($0)" } ?? "no address")")
    }

    /// One request to one address: on a kept connection, else a new one.
    private func send(key: Key, address: SocketAddress, head request: HTTPRequestHead, body: [UInt8], deadline: NIODeadline) async throws
        -> Answer
    {
        // A kept connection the receiver closed meanwhile fails before an answer: then once more on a new one.
        if let reused = checkOut(key) {
            do {
                return try await exchange(on: reused, key: key, head: request, body: body, deadline: deadline)
            } catch let error as NoAnswer where !error.timedOut {
                // closed by the receiver while idle: a new connection below
            }
        }
        let channel: any Channel
        do {
            channel = try await connect(to: address, host: key.host, https: key.https, deadline: deadline)
        } catch {
            throw NoAnswer(timedOut: false, detail: "could not connect: \(error)")
        }
        return try await exchange(on: channel, key: key, head: request, body: body, deadline: deadline)
    }

    /// Connections kept for reuse now (tests).
    var idleConnections: Int { idle.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    private func checkOut(_ key: Key) -> (any Channel)? {
        let now = ContinuousClock.now
        var stale: [any Channel] = []
        let found = idle.withLock { idle -> (any Channel)? in
            while var kept = idle[key], let last = kept.popLast() {
                idle[key] = kept.isEmpty ? nil : kept
                if now - last.since < idleLifetime, last.channel.isActive { return last.channel }
                stale.append(last.channel)
            }
            return nil
        }
        for channel in stale { channel.close(promise: nil) }
        return found
    }

    private func checkIn(_ channel: any Channel, _ key: Key) {
        let kept = idle.withLock { idle -> Bool in
            guard idle[key, default: []].count < maxIdlePerKey else { return false }
            idle[key, default: []].append(Idle(channel: channel, since: .now))
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    private func connect(to address: SocketAddress, host: String, https: Bool, deadline: NIODeadline) async throws -> any Channel {
        let tls = https ? self.tls : nil
        let serverName = IPAddressClass(host) == nil ? host : nil
        return try await ClientBootstrap(group: group)
            .connectTimeout(max(.milliseconds(1), deadline - .now()))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AnswerReader())
                }
            }
            .connect(to: address).get()
    }

    /// Sends one request on `channel` and waits for its answer; the connection goes back to the pool when the
    /// answer allows it, and is closed otherwise (and on any failure).
    private func exchange(on channel: any Channel, key: Key, head: HTTPRequestHead, body: [UInt8], deadline: NIODeadline) async throws
        -> Answer
    {
        let promise = channel.eventLoop.makePromise(of: AnswerReader.Result.self)
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            promise.fail(NoAnswer(timedOut: true, detail: "no answer in time"))
        }
        defer { timer.cancel() }
        do {
            try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                do {
                    try channel.pipeline.syncOperations.handler(type: AnswerReader.self).expect(promise)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
                return channel.writeAndFlush(HTTPClientRequestPart.end(nil))
            }.get()
            let result = try await promise.futureResult.get()
            if result.keepAlive, channel.isActive { checkIn(channel, key) } else { channel.close(promise: nil) }
            return Answer(status: result.status)
        } catch {
            promise.fail(error)
            channel.close(promise: nil)
            throw error as? NoAnswer ?? NoAnswer(timedOut: false, detail: "\(error)")
        }
    }
}

/// Reads one answer per request: its status, whether the connection may be reused, and up to 64 KiB of body
/// (dropped; more than that and the connection is not reused).
final class AnswerReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    struct Result: Sendable {
        var status: Int
        var keepAlive: Bool
    }

    private var pending: EventLoopPromise<Result>?
    private var status: Int?
    private var keepAlive = false
    private var bodyBytes = 0

    func expect(_ promise: EventLoopPromise<Result>) {
        pending = promise
        status = nil
        bodyBytes = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx interim answers are followed by the real one.
            guard head.status.code >= 200 else { return }
            status = Int(head.status.code)
            keepAlive = head.isKeepAlive
        case .body(let chunk):
            bodyBytes += chunk.readableBytes
            if bodyBytes > 64 * 1024 { finish(keepAlive: false) }
        case .end:
            finish(keepAlive: keepAlive)
        }
    }

    private func finish(keepAlive: Bool) {
        guard let status, let pending else { return }
        self.pending = nil
        pending.succeed(Result(status: status, keepAlive: keepAlive))
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.fail(PinnedHTTPClient.NoAnswer(timedOut: false, detail: "the connection closed before an answer"))
        pending = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }
}
