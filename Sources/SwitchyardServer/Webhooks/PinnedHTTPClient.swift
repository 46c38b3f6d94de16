import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwitchyardCore

/// One HTTP/1.1 POST to an address that was already checked against the webhook policy. The connection goes to that
/// address and nowhere else — there is no second DNS lookup between the check and the connect, so a name that
/// answers a public address to the check and a private one to the connect (DNS rebinding) reaches nothing. TLS still
/// verifies the certificate against the URL's host name (sent as SNI); an IP-literal URL is verified against the IP.
struct PinnedHTTPClient: Sendable {
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

    let group: any EventLoopGroup
    let tls: NIOSSLContext

    init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.group = group
        self.tls = try NIOSSLContext(configuration: .makeClientConfiguration())
    }

    /// POSTs `body` to `path` on `host` (the URL's host, for `Host` and TLS) at one of `addresses` (tried in order;
    /// each was checked). At most `timeout` from the first connect to the end of the answer's head; up to 64 KiB of
    /// the answer's body is read and dropped.
    func post(
        host: String, port: Int, https: Bool, addresses: [SocketAddress], path: String, headers: HTTPHeaders, body: [UInt8],
        timeout: TimeAmount
    ) async throws -> Answer {
        try await withThrowingTaskGroup(of: Answer?.self) { group in
            group.addTask {
                var lastError: (any Error)?
                for address in addresses {
                    let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
                    do {
                        channel = try await connect(to: address, host: host, https: https, timeout: timeout)
                    } catch {
                        lastError = error
                        continue
                    }
                    return try await exchange(on: channel, host: host, port: port, https: https, path: path, headers: headers, body: body)
                }
                throw NoAnswer(timedOut: false, detail: "could not connect: \(lastError.map { "\($0)" } ?? "no address")")
            }
            group.addTask {
                try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let answer = first else {
                throw NoAnswer(timedOut: true, detail: "no answer within \(timeout.nanoseconds / 1_000_000_000) s")
            }
            return answer
        }
    }

    private func connect(to address: SocketAddress, host: String, https: Bool, timeout: TimeAmount) async throws -> NIOAsyncChannel<
        HTTPClientResponsePart, HTTPClientRequestPart
    > {
        let tls = https ? self.tls : nil
        let serverName = IPAddressClass(host) == nil ? host : nil
        return try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(to: address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
    }

    private func exchange(
        on channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>, host: String, port: Int, https: Bool, path: String,
        headers: HTTPHeaders, body: [UInt8]
    ) async throws -> Answer {
        try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            let bracketed = host.contains(":") ? "[\(host)]" : host
            head.headers.add(name: "Host", value: port == (https ? 443 : 80) ? bracketed : "\(bracketed):\(port)")
            head.headers.add(contentsOf: headers)
            head.headers.add(name: "Content-Length", value: String(body.count))
            head.headers.add(name: "Connection", value: "close")
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
            var status: Int?
            var bodyBytes = 0
            reading: for try await part in inbound {
                switch part {
                case .head(let answer):
                    // 1xx interim answers are followed by the real one.
                    if answer.status.code >= 200 { status = Int(answer.status.code) }
                case .body(let chunk):
                    bodyBytes += chunk.readableBytes
                    if bodyBytes > 64 * 1024 { break reading }
                case .end:
                    if status != nil { break reading }
                }
            }
            guard let status else { throw NoAnswer(timedOut: false, detail: "the connection closed before an answer") }
            return Answer(status: status)
        }
    }
}
