import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwitchyardCore
import Synchronization

/// Sends webhook deliveries from the outbox (docs/webhooks.md). Wakes when a task ends on this replica and
/// otherwise looks every `pollInterval`, so deliveries written by another replica or due for a retry go out too.
/// Each due delivery is claimed (hidden from other senders for `claimLease`), POSTed once, and its attempt recorded
/// together with the outcome: delivered on a 2xx, or the next slot of the retry schedule, or dead.
public final class WebhookSender: Service, Sendable {
    public struct Settings: Sendable, Equatable {
        /// Per-attempt limit for connecting and answering (`webhooks.timeout`, seconds).
        public var timeout: TimeInterval = 10
        /// How often the outbox is read when nothing woke the sender (seconds).
        public var pollInterval: TimeInterval = 1
        /// Deliveries sent at once.
        public var concurrency = 64
        /// Which targets are allowed (`webhooks.allowInsecure`, `webhooks.allowPrivateNetworks`).
        public var policy = WebhookTargetPolicy()
        /// Whether the service sends by itself; tests that step through retries turn it off and call `drain()`.
        public var sendsInBackground = true

        public init() {}
    }

    let storage: any SwitchyardStorage
    let box: SecretBox
    let clock: any WallClock
    let settings: Settings
    let logger: Logger
    let metrics: ServerMetrics
    private let clientBox = Mutex<PinnedHTTPClient?>(nil)
    /// Turns a host name into addresses; tests swap it (`resolveHosts(with:)`).
    private let resolver = Mutex<Resolver>(WebhookSender.resolve)
    private let wakeUp = EventSignal()
    private let stopping = Atomic(false)
    private let userAgent = "Switchyard-Webhooks/\(SwitchyardVersion.current)"

    init(storage: any SwitchyardStorage, box: SecretBox, clock: any WallClock, settings: Settings, logger: Logger, metrics: ServerMetrics) {
        self.metrics = metrics
        self.storage = storage
        self.box = box
        self.clock = clock
        self.settings = settings
        var logger = logger
        logger[metadataKey: "component"] = "webhooks"
        self.logger = logger
    }

    typealias Resolver = @Sendable (_ host: String, _ port: Int) async throws -> [String]

    /// The HTTP client, made on first use (it loads the system's trust roots). Redirects are not followed: a 3xx
    /// fails the attempt.
    private func client() throws -> PinnedHTTPClient {
        try clientBox.withLock { client in
            if let client { return client }
            let made = try PinnedHTTPClient()
            client = made
            return made
        }
    }

    /// Connections kept alive for reuse (tests).
    var idleConnections: Int { clientBox.withLock { $0?.idleConnections ?? 0 } }

    /// Replaces how host names are resolved (tests: a name that resolves only here).
    func resolveHosts(with resolver: @escaping Resolver) {
        self.resolver.withLock { $0 = resolver }
    }

    /// A task ended here: look at the outbox now rather than at the next poll.
    func nudge() {
        wakeUp.notify()
    }

    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            while !Task.isCancelled, !stopping.load(ordering: .relaxed) {
                guard settings.sendsInBackground else {
                    await wakeUp.wait(timeout: .seconds(3600))
                    continue
                }
                await drain()
                var wait = settings.pollInterval
                if let due = try? await storage.nextDeliveryDue() { wait = max(0, min(wait, due.timeIntervalSince(clock.now()))) }
                if wait > 0 { await wakeUp.wait(timeout: .milliseconds(Int64(wait * 1000))) }
            }
        } onCancelOrGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.wakeUp.notify()
        }
    }

    /// Sends every delivery due now, batch after batch; returns how many attempts it made. Tests call it directly.
    @discardableResult
    public func drain() async -> Int {
        var attempts = 0
        while !Task.isCancelled {
            let now = clock.now()
            let claimed: [ClaimedDelivery]
            do {
                claimed = try await storage.claimDueDeliveries(
                    at: now, leaseUntil: now.addingTimeInterval(settings.timeout * 3 + 30), limit: settings.concurrency)
            } catch {
                logger.error("could not read the webhook outbox", metadata: ["error": "\(error)"])
                return attempts
            }
            guard !claimed.isEmpty else { return attempts }
            await withTaskGroup(of: Void.self) { group in
                for delivery in claimed { group.addTask { await self.attempt(delivery) } }
            }
            attempts += claimed.count
        }
        return attempts
    }

    /// One POST of a claimed delivery, recorded with its outcome.
    func attempt(_ claimed: ClaimedDelivery) async {
        let delivery = claimed.delivery
        let started = clock.now()
        let startedInstant = ContinuousClock.now
        var statusCode: Int?
        var failure: String?
        do {
            let (target, addresses) = try await checkTarget(claimed.url)
            let secret = try box.open(claimed.sealedSecret, boundTo: delivery.webhookId)
            let body = Array(delivery.payload.utf8)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "User-Agent", value: userAgent)
            headers.add(name: "X-Webhook-Event", value: delivery.event.rawValue)
            let timestamp = Int(started.timeIntervalSince1970)
            for (name, value) in WebhookSignature.headers(secret: secret, id: delivery.id.lowercased, timestamp: timestamp, body: body) {
                headers.add(name: name, value: value)
            }
            let answer = try await client().post(
                host: target.host, port: target.port, https: target.isHTTPS, addresses: addresses, path: Self.requestTarget(claimed.url),
                headers: headers, body: body, timeout: .seconds(Int64(settings.timeout)))
            statusCode = answer.status
            if !(200..<300).contains(answer.status) {
                if (300..<400).contains(answer.status) {
                    failure = "answered \(answer.status) (redirects are not followed; use the final URL)"
                } else {
                    failure = "answered \(answer.status)"
                }
            }
        } catch let error as SwitchyardError {
            failure = error.message
        } catch {
            // One message for refused, unreachable, TLS failures and timeouts: the delivery log must not tell open
            // ports from closed or filtered ones. The operator's log has the detail.
            failure = "no HTTP answer within \(Int(settings.timeout)) s (connection or TLS failed, or nothing answered)"
            logger.notice(
                "webhook target gave no answer",
                metadata: ["delivery_id": "\(delivery.id.lowercased)", "webhook_id": "\(delivery.webhookId.lowercased)", "error": "\(error)"])
        }
        let took = ContinuousClock.now - startedInstant
        let latency = Double(took.components.seconds) * 1000 + Double(took.components.attoseconds) / 1e15
        let failuresInRound = delivery.roundAttempts + 1
        let nextRetry = failure == nil ? nil : WebhookRetrySchedule.delay(afterFailures: failuresInRound).map { clock.now().addingTimeInterval($0) }
        metrics.webhookAttempt(outcome: failure == nil ? "delivered" : nextRetry == nil ? "dead" : "failed", duration: took)
        let attempt = WebhookAttempt(
            deliveryId: delivery.id, number: delivery.attemptCount + 1, attemptedAt: started, statusCode: statusCode, latencyMilliseconds: latency,
            error: failure, nextRetryAt: nextRetry)
        do {
            let recorded = try await storage.recordDeliveryAttempt(attempt, claimToken: claimed.claimToken)
            var metadata: Logger.Metadata = [
                "delivery_id": "\(delivery.id.lowercased)", "webhook_id": "\(delivery.webhookId.lowercased)",
                "task_id": "\(delivery.taskId.lowercased)",
                "status_code": "\(statusCode.map(String.init) ?? "none")",
            ]
            if let failure { metadata["error"] = "\(failure)" }
            if !recorded {
                logger.warning("webhook attempt not recorded: the claim lapsed", metadata: metadata)
            } else if failure == nil {
                logger.debug("webhook delivered", metadata: metadata)
            } else {
                logger.notice(nextRetry == nil ? "webhook delivery dead" : "webhook attempt failed", metadata: metadata)
            }
        } catch {
            logger.error("could not record a webhook attempt", metadata: ["delivery_id": "\(delivery.id.lowercased)", "error": "\(error)"])
        }
    }

    /// Re-checks the URL against the policy, then every address its host resolves to now (an address may have
    /// changed since the webhook was saved), and returns those addresses: the delivery connects to one of them and
    /// resolves nothing again (DNS rebinding). `*.localhost` names that do not resolve stand for loopback.
    func checkTarget(_ url: String) async throws -> (WebhookTargetPolicy.Target, [SocketAddress]) {
        let target = try settings.policy.validate(url)
        var texts: [String]
        if IPAddressClass(target.host) != nil {
            texts = [target.host]
        } else if WebhookTargetPolicy.isLoopbackName(target.host) {
            texts = (try? await resolver.withLock { $0 }(target.host, target.port)) ?? ["127.0.0.1", "::1"]
        } else {
            texts = try await resolver.withLock { $0 }(target.host, target.port)
        }
        var addresses: [SocketAddress] = []
        for text in texts {
            guard let addressClass = IPAddressClass(text) else { continue }
            try settings.policy.check(addressClass, address: text == target.host ? text : "\(target.host) (\(text))")
            if WebhookTargetPolicy.isLoopbackName(target.host), addressClass != .loopback {
                throw SwitchyardError.invalid("\(target.host) resolves to \(text), not a loopback address")
            }
            if let address = try? SocketAddress(ipAddress: text, port: target.port) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw SwitchyardError.invalid("\(target.host) does not resolve") }
        return (target, addresses)
    }

    /// The path and query of `url`, as sent in the request line.
    static func requestTarget(_ url: String) -> String {
        guard let components = URLComponents(string: url) else { return "/" }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        return components.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
    }

    /// The addresses `host` resolves to, as text.
    static func resolve(_ host: String, port: Int) async throws -> [String] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
                throw SwitchyardError.invalid("\(host) does not resolve")
            }
            defer { freeaddrinfo(first) }
            var addresses: [String] = []
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let entry = cursor {
                var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                    addresses.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
                }
                cursor = entry.pointee.ai_next
            }
            return addresses
        }
    }
}
