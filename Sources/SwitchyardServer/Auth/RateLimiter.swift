import Foundation
import Hummingbird
import SwitchyardCore
import Synchronization

/// Token buckets for the routes an attacker would hammer without credentials (docs/security.md): login, invitation
/// accept, pairing start, poll and confirm — each limited per client address and per account. A refused request is
/// a 429 with `Retry-After`: the seconds until the bucket holds a token again. Buckets live in this replica's
/// memory; with N replicas behind a balancer the effective limit is up to N times the rule.
final class RateLimiter: Sendable {
    /// `burst` requests at once, then one more every `interval` seconds.
    struct Rule: Sendable, Equatable {
        var burst: Int
        var interval: TimeInterval
    }

    /// The rules (`limits.auth` turns them all off, for load tests behind one address).
    struct Rules: Sendable, Equatable {
        /// `POST /auth/login`, per client address and per email address.
        var loginPerAddress = Rule(burst: 20, interval: 3)
        var loginPerAccount = Rule(burst: 10, interval: 6)
        /// `POST /invitations/accept`, per client address and per invitation token.
        var acceptPerAddress = Rule(burst: 20, interval: 3)
        var acceptPerInvitation = Rule(burst: 10, interval: 6)
        /// `POST /desktop/pair/start`, per client address.
        var pairingStartPerAddress = Rule(burst: 10, interval: 6)
        /// `POST /desktop/pair/poll`, per client address (the device code has its own `slow_down` pacing).
        var pairingPollPerAddress = Rule(burst: 60, interval: 1)
        /// `POST /desktop/pair/confirm`, per client address and per signed-in user (a user code has 40 bits).
        var pairingConfirmPerAddress = Rule(burst: 20, interval: 3)
        var pairingConfirmPerUser = Rule(burst: 10, interval: 6)
        var enabled = true
    }

    private struct Bucket {
        var tokens: Double
        var at: Date
    }

    let rules: Rules
    let clock: any WallClock
    /// Whether the client is the last address in `X-Forwarded-For` (`http.trustForwardedFor`: a proxy in front).
    let trustForwardedFor: Bool
    private let buckets = Mutex<[String: Bucket]>([:])
    /// Per polled secret: when it was last polled and the interval it must keep (RFC 8628 `slow_down`).
    private let pacing = Mutex<[String: (last: Date, interval: Int)]>([:])
    /// Buckets kept before full ones are dropped (a full bucket is the same as none).
    private let sweepAbove = 50_000

    init(rules: Rules, clock: any WallClock, trustForwardedFor: Bool) {
        self.rules = rules
        self.clock = clock
        self.trustForwardedFor = trustForwardedFor
    }

    /// The client's address: the peer's, or the last hop a trusted proxy added.
    func clientAddress(_ request: Request, _ context: SwitchyardRequestContext) -> String {
        if trustForwardedFor, let forwarded = request.headers[.init("X-Forwarded-For")!],
            let last = forwarded.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty
        {
            return String(last.prefix(64))
        }
        return context.remoteAddress ?? "unknown"
    }

    /// Takes one token from each named bucket, or none and throws a 429 naming what was limited.
    func take(_ checks: [(key: String, rule: Rule)], what: String) throws(SwitchyardError) {
        guard rules.enabled else { return }
        let now = clock.now()
        let wait = buckets.withLock { buckets -> TimeInterval in
            if buckets.count > sweepAbove { sweep(&buckets, now: now) }
            var refilled: [(String, Bucket)] = []
            var wait: TimeInterval = 0
            for (key, rule) in checks {
                var bucket = buckets[key] ?? Bucket(tokens: Double(rule.burst), at: now)
                bucket.tokens = min(Double(rule.burst), bucket.tokens + max(0, now.timeIntervalSince(bucket.at)) / rule.interval)
                bucket.at = now
                if bucket.tokens < 1 { wait = max(wait, (1 - bucket.tokens) * rule.interval) }
                refilled.append((key, bucket))
            }
            for (key, var bucket) in refilled {
                if wait == 0 { bucket.tokens -= 1 }
                buckets[key] = bucket
            }
            return wait
        }
        guard wait > 0 else { return }
        throw .tooManyRequests("too many \(what) attempts; try again in \(Int(wait.rounded(.up))) s", retryAfter: Int(wait.rounded(.up)))
    }

    /// Paces a poller (RFC 8628 §3.5): a poll that comes more than a second sooner than the interval after the one
    /// before is too fast; the interval for `key` then grows by 5 s for this and every later poll. Returns whether
    /// this poll was too fast (answer `slow_down`) and the interval the poller must keep from now on.
    func pace(_ key: String, interval: Int, forgetAfter lifetime: TimeInterval) -> (tooFast: Bool, interval: Int) {
        guard rules.enabled else { return (false, interval) }
        let now = clock.now()
        return pacing.withLock { pacing in
            if pacing.count > sweepAbove { pacing = pacing.filter { now.timeIntervalSince($0.value.last) < lifetime } }
            guard let entry = pacing[key] else {
                pacing[key] = (now, interval)
                return (false, interval)
            }
            let tooFast = now.timeIntervalSince(entry.last) < TimeInterval(entry.interval) - 1
            let kept = tooFast ? entry.interval + 5 : entry.interval
            pacing[key] = (now, kept)
            return (tooFast, kept)
        }
    }

    /// Stops pacing `key` (its pairing ended).
    func forget(_ key: String) {
        _ = pacing.withLock { $0.removeValue(forKey: key) }
    }

    private func sweep(_ buckets: inout [String: Bucket], now: Date) {
        // A bucket idle for ten minutes is full under every rule above.
        buckets = buckets.filter { now.timeIntervalSince($0.value.at) < 600 }
    }
}
