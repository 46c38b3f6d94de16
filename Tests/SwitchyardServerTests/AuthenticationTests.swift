import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

/// The credential kinds a request can present.
enum Presented: String, CaseIterable, CustomTestStringConvertible {
    case none, garbage, sessionWithTeam, sessionWithoutTeam, integration, device, agent, revokedIntegration, expiredDevice
    var testDescription: String { rawValue }
}

@Suite("Authentication")
struct AuthenticationTests {
    /// Expected outcome of each credential on each surface (api.md §1.2).
    static func expected(_ presented: Presented, _ surface: AccessSurface) -> Int {
        switch presented {
        case .none, .garbage, .agent, .revokedIntegration, .expiredDevice: return 401
        case .sessionWithTeam: return surface == .mcp ? 401 : 200
        case .sessionWithoutTeam: return surface == .perUser ? 200 : surface == .mcp ? 401 : 400
        case .integration: return surface == .runtime || surface == .mcp ? 200 : 401
        case .device: return surface == .sessionOnly || surface == .mcp ? 401 : 200
        }
    }

    struct Fixture {
        let app: TestApp
        let tokens: [Presented: String]
    }

    static func fixture(_ app: TestApp, _ client: any TestClientProtocol) async throws -> Fixture {
        let session = try await app.ownerSession(client)
        let ownerId = try #require(try await app.storage.user(emailAddress: app.bootstrap.emailAddress)).id
        let revoked = try await app.insertKey(.integration)
        _ = try await app.storage.revokeCredential(id: revoked.id, teamId: app.bootstrap.teamId, at: app.clock.now())
        let device = try await app.insertKey(.device, userId: ownerId)
        let expired = try await app.insertKey(.device, userId: ownerId, expiresAt: app.clock.now().addingTimeInterval(-1))
        return Fixture(
            app: app,
            tokens: [
                .garbage: "not-a-token", .sessionWithTeam: session, .sessionWithoutTeam: session, .integration: app.bootstrap.integrationKey,
                .device: device.secret, .agent: app.bootstrap.agentKey, .revokedIntegration: revoked.secret, .expiredDevice: expired.secret,
            ]
        )
    }

    @Test("every credential kind on every surface", arguments: TestBackend.available)
    func matrix(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let fixture = try await Self.fixture(app, client)
            let authenticator = app.built.authenticator
            for presented in Presented.allCases {
                for surface in AccessSurface.allCases {
                    let team = presented == .sessionWithoutTeam ? nil : app.bootstrap.teamId.lowercased
                    let got: Int
                    do {
                        _ = try await authenticator.authenticate(
                            authorization: fixture.tokens[presented].map { "Bearer \($0)" }, teamHeader: team, surface: surface)
                        got = 200
                    } catch let error as SwitchyardError {
                        got = Int(error.status.code)
                    }
                    #expect(got == Self.expected(presented, surface), "\(presented) on \(surface)")
                }
            }
        }
    }

    @Test("the matrix holds over HTTP on the routes that exist", arguments: TestBackend.available)
    func httpMatrix(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let fixture = try await Self.fixture(app, client)
            let routes: [(String, AccessSurface)] = [
                ("/api/v1/users/me", .perUser), ("/api/v1/credentials", .sessionOnly), ("/api/v1/workflows", .management),
                ("/api/v1/r/workflows", .runtime), ("/api/v1/r/tasks", .runtime),
            ]
            for presented in Presented.allCases {
                for (uri, surface) in routes {
                    let team = presented == .sessionWithoutTeam ? nil : app.bootstrap.teamId
                    let response = try await client.execute(uri: uri, method: .get, headers: authHeaders(fixture.tokens[presented], team: team))
                    #expect(Int(response.status.code) == Self.expected(presented, surface), "\(presented) on \(uri)")
                    if response.status != .ok {
                        #expect(response.errorMessage?.isEmpty == false)
                    }
                    if response.status == .unauthorized {
                        #expect(response.headers[.wwwAuthenticate] == "Bearer")
                    }
                }
            }
        }
    }

    @Test("X-Team-ID: required for sessions, must be a UUID, must be a team of the caller; ignored for keys", arguments: TestBackend.available)
    func teamHeader(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            var headers = authHeaders(session)
            let missing = try await client.execute(uri: "/api/v1/credentials", method: .get, headers: headers)
            #expect(missing.status == .badRequest)
            #expect(missing.errorMessage?.contains("X-Team-ID") == true)

            headers[HTTPField.Name("X-Team-ID")!] = "team_01HX"
            let malformed = try await client.execute(uri: "/api/v1/credentials", method: .get, headers: headers)
            #expect(malformed.status == .badRequest)

            let foreign = try await client.execute(uri: "/api/v1/credentials", method: .get, headers: authHeaders(session, team: UUID()))
            #expect(foreign.status == .forbidden)

            // sk-/dk- carry their own team: a sent X-Team-ID (even another team's) is ignored.
            let authenticator = app.built.authenticator
            let caller = try await authenticator.authenticate(
                authorization: "Bearer \(app.bootstrap.integrationKey)", teamHeader: UUID().uuidString, surface: .runtime)
            #expect(caller.teamId == app.bootstrap.teamId)
            #expect(caller.kind == .integration)
            // …but a malformed one (or an empty one) is a 400 for keys too: the client means something by it.
            for sent in ["team_01HX", "", "{}"] {
                var keyHeaders = authHeaders(app.bootstrap.integrationKey)
                keyHeaders[HTTPField.Name("X-Team-ID")!] = sent
                let refused = try await client.execute(uri: "/api/v1/r/tasks", method: .get, headers: keyHeaders)
                #expect(refused.status == .badRequest, "\(sent)")
                #expect(refused.errorMessage?.contains("X-Team-ID") == true)
            }
        }
    }

    @Test("session tokens expire with the injected clock", arguments: TestBackend.available)
    func sessionExpiry(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let fresh = try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(session))
            #expect(fresh.status == .ok)
            app.clock.advance(by: app.environment.configuration.sessionLifetime + 1)
            let stale = try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(session))
            #expect(stale.status == .unauthorized)
        }
    }

    @Test("login: wrong password and unknown email fail alike; missing fields are 400", arguments: TestBackend.available)
    func login(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let wrong = try await client.execute(
                uri: "/api/v1/auth/login", method: .post,
                body: ByteBuffer(string: #"{"email_address":"\#(app.bootstrap.emailAddress)","password":"nope"}"#))
            let unknown = try await client.execute(
                uri: "/api/v1/auth/login", method: .post, body: ByteBuffer(string: #"{"email_address":"who@example.com","password":"nope"}"#))
            #expect(wrong.status == .unauthorized && unknown.status == .unauthorized)
            #expect(wrong.errorMessage == unknown.errorMessage)
            let missing = try await client.execute(uri: "/api/v1/auth/login", method: .post, body: ByteBuffer(string: #"{"email_address":"a@b"}"#))
            #expect(missing.status == .badRequest)
            #expect(missing.errorMessage == "field \"password\" is required")
            let ok = try await client.execute(
                uri: "/api/v1/auth/login", method: .post,
                body: ByteBuffer(string: #"{"email_address":"ADMIN@localhost","password":"\#(app.bootstrap.password)"}"#))
            #expect(ok.status == .ok)
            let body = try ok.json()
            #expect(body["token_type"]?.stringValue == "Bearer")
            #expect((body["access_token"]?.stringValue)?.hasPrefix("eyJ") == true)
            #expect(body["expires_at"]?.stringValue != nil)
        }
    }

    @Test("GET /users/me: profile, teams and feature flags; a dk- sees only its own team", arguments: TestBackend.available)
    func me(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let response = try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(session))
            let body = try response.json()
            #expect(body["email_address"]?.stringValue == "admin@localhost")
            let teams = try #require(body["team_list"]?.arrayValue)
            #expect(teams.first?["id"]?.stringValue == app.bootstrap.teamId.lowercased)
            #expect((body["feature_flags"]?.objectValue)?["global"] != nil)

            let owner = try #require(try await app.storage.user(emailAddress: "admin@localhost"))
            let other = Team(id: UUIDv7.make(at: app.clock.now()), displayName: "Other", createdAt: app.clock.now(), updatedAt: app.clock.now())
            try await app.storage.insertTeam(other, owner: Membership(teamId: other.id, userId: owner.id, role: .owner, createdAt: app.clock.now()))
            let device = try await app.insertKey(.device, userId: owner.id)
            let viaDevice = try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(device.secret))
            #expect((try viaDevice.json()["team_list"]?.arrayValue)?.count == 1)
            let viaSession = try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(session))
            #expect((try viaSession.json()["team_list"]?.arrayValue)?.count == 2)
        }
    }
}
