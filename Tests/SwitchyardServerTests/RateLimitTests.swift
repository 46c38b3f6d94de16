import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOPosix
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardServer

@Suite("Rate limits on the routes without credentials")
struct RateLimitTests {
    static func login(_ app: TestApp, _ client: any TestClientProtocol, email: String, from address: String? = nil) async throws -> TestResponse {
        var headers = HTTPFields()
        if let address { headers[.init("X-Forwarded-For")!] = "203.0.113.9, \(address)" }
        return try await app.call(
            client, .post, "/api/v1/auth/login", token: nil, body: #"{"email_address":"\#(email)","password":"wrong password"}"#, headers: headers)
    }

    @Test("login: ten wrong passwords for one account, then 429 with Retry-After until a token is back; other accounts unaffected")
    func loginPerAccount() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let email = app.bootstrap.emailAddress
            for _ in 0..<10 { #expect(try await Self.login(app, client, email: email).status == .unauthorized) }
            let limited = try await Self.login(app, client, email: email)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] == "6")
            #expect(limited.errorMessage?.contains("too many sign-in attempts") == true)
            #expect(try await Self.login(app, client, email: "someone-else@example.com").status == .unauthorized)
            app.clock.advance(by: 6)
            #expect(try await Self.login(app, client, email: email).status == .unauthorized)
            #expect(try await Self.login(app, client, email: email).status == .tooManyRequests)
        }
    }

    @Test("login per client address; behind a trusted proxy the last X-Forwarded-For hop is the client, else the header is ignored")
    func loginPerAddress() async throws {
        let tight: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.rateLimitRules.loginPerAddress = .init(burst: 3, interval: 60)
            configuration.trustForwardedFor = true
        }
        try await TestApp.with(.sqlite, configure: tight) { app, client in
            for n in 0..<3 { #expect(try await Self.login(app, client, email: "a\(n)@example.com", from: "198.51.100.1").status == .unauthorized) }
            let limited = try await Self.login(app, client, email: "a9@example.com", from: "198.51.100.1")
            #expect(limited.status == .tooManyRequests && limited.headers[.retryAfter] == "60")
            #expect(try await Self.login(app, client, email: "a9@example.com", from: "198.51.100.2").status == .unauthorized)
        }
    }

    @Test("without http.trustForwardedFor, X-Forwarded-For does not make a new client")
    func forwardedForIgnored() async throws {
        let untrusted: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.rateLimitRules.loginPerAddress = .init(burst: 3, interval: 60)
        }
        try await TestApp.with(.sqlite, configure: untrusted) { app, client in
            for n in 0..<3 {
                let response = try await Self.login(app, client, email: "a\(n)@example.com", from: "198.51.100.\(n)")
                #expect(response.status == .unauthorized)
            }
            let limited = try await Self.login(app, client, email: "a9@example.com", from: "198.51.100.9")
            #expect(limited.status == .tooManyRequests)
        }
    }

    @Test("limits.auth off: no 429 however often")
    func switchedOff() async throws {
        try await TestApp.with(.sqlite, configure: { $0.rateLimitAuth = false }) { app, client in
            for _ in 0..<15 {
                let response = try await Self.login(app, client, email: app.bootstrap.emailAddress)
                #expect(response.status == .unauthorized)
            }
        }
    }

    @Test("invitation accept: ten tries of one token, then 429")
    func invitationAccept() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let body = #"{"invitation_token":"guessed-token","password":"long enough"}"#
            for _ in 0..<10 { #expect(try await app.call(client, .post, "/api/v1/invitations/accept", token: nil, body: body).status == .notFound) }
            let limited = try await app.call(client, .post, "/api/v1/invitations/accept", token: nil, body: body)
            #expect(limited.status == .tooManyRequests && limited.headers[.retryAfter] == "6")
        }
    }

    @Test("pairing: start limited per address; confirm limited per user (a user code has 40 bits)")
    func pairingStartAndConfirm() async throws {
        try await TestApp.with(.sqlite) { app, client in
            for _ in 0..<10 { #expect(try await app.call(client, .post, "/api/v1/desktop/pair/start", token: nil).status == .ok) }
            #expect(try await app.call(client, .post, "/api/v1/desktop/pair/start", token: nil).status == .tooManyRequests)
            let session = try await app.ownerSession(client)
            let confirm = { () async throws -> HTTPResponse.Status in
                try await app.call(
                    client, .post, "/api/v1/desktop/pair/confirm", token: session, team: app.bootstrap.teamId, body: #"{"user_code":"ABCD-EFGH"}"#
                ).status
            }
            for _ in 0..<10 { #expect(try await confirm() == .notFound) }
            #expect(try await confirm() == .tooManyRequests)
        }
    }

    @Test("pairing poll sooner than the interval: 429 slow_down, and the interval grows by 5 s for every later poll (RFC 8628)")
    func pollSlowDown() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let start = try await app.call(client, .post, "/api/v1/desktop/pair/start", token: nil).json()
            let body = #"{"device_code":"\#(try #require(start["device_code"]?.stringValue))"}"#
            let poll = { try await app.call(client, .post, "/api/v1/desktop/pair/poll", token: nil, body: body) }
            #expect(try await poll().json()["interval"]?.intValue == 2)
            let fast = try await poll()
            #expect(fast.status == .tooManyRequests && fast.headers[.retryAfter] == "7")
            #expect(try fast.json()["status"]?.stringValue == "slow_down" && fast.json()["interval"]?.intValue == 7)
            app.clock.advance(by: 7)
            let pending = try await poll()
            #expect(pending.status == .ok)
            #expect(try pending.json()["interval"]?.intValue == 7)
            app.clock.advance(by: 3)
            #expect(try await poll().json()["interval"]?.intValue == 12)
        }
    }

    @Test(
        "password checks run on their own pool: when those ahead would keep one waiting too long it is a 429 at once (start-up work still waits), and the shared pool keeps working"
    )
    func passwordPool() async throws {
        // Checks take 1 s (as far as the pool knows); one may wait behind the running one, not two.
        let hashing = PasswordHashing(threads: 1, maxQueueWait: .milliseconds(1500), initialEstimate: .seconds(1))
        let gate = Gate()
        let running = Gate()
        async let first: Void = hashing.run {
            running.open()
            gate.wait()
        }
        running.wait()
        async let second: Void = hashing.run {}
        await #expect(throws: SwitchyardError.self) {
            // The second is queued (or about to be); the third cannot be.
            try await waitUntilRefused(hashing)
        }
        #expect(try await NIOThreadPool.singleton.runIfActive { 42 } == 42)
        async let startUp: Void = hashing.run(refusable: false) {}
        gate.open()
        _ = try await (first, second, startUp)
        try await hashing.shutdown()
    }

    /// Submits checks until one is refused (the queue holds one, so at most two tries) and rethrows the refusal.
    private func waitUntilRefused(_ hashing: PasswordHashing) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await hashing.run {} }
            group.addTask { try await hashing.run {} }
            try await group.waitForAll()
        }
    }
}

/// A blocking one-shot latch for work on a thread pool.
final class Gate: Sendable {
    private let condition = NSCondition()
    private let opened = Mutex(false)

    func open() {
        condition.lock()
        opened.withLock { $0 = true }
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !opened.withLock({ $0 }) { condition.wait() }
        condition.unlock()
    }
}
