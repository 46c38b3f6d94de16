import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("Credentials API")
struct CredentialsTests {
    func create(_ client: any TestClientProtocol, _ session: String, team: UUID, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: "/api/v1/credentials", method: .post, headers: authHeaders(session, team: team), body: ByteBuffer(string: body))
    }

    @Test("create returns the secret once; only its hash and prefix are stored", arguments: TestBackend.available)
    func createStoresHashOnly(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let response = try await create(
                client, session, team: app.bootstrap.teamId, #"{"kind":"integration","display_name":"  CI bot  ","expires_in_days":30}"#)
            #expect(response.status == .created)
            let body = try response.json()
            let raw = try #require(body["raw_key"]?.stringValue)
            #expect(raw.hasPrefix("sk-"))
            #expect(body["key_prefix"]?.stringValue == String(raw.prefix(12)))
            #expect(body["display_name"]?.stringValue == "CI bot")
            let id = try #require((body["id"]?.stringValue).flatMap(UUID.init(uuidString:)))

            let stored = try #require(try await app.storage.credential(id: id, teamId: app.bootstrap.teamId))
            #expect(stored.keyHash == SecretHasher.keyHash(raw))
            #expect(stored.keyHash != raw && !stored.keyHash.contains(raw.dropFirst(3)))
            #expect(stored.expiresAt == app.clock.now().addingTimeInterval(30 * 86_400))

            let list = try await client.execute(uri: "/api/v1/credentials", method: .get, headers: authHeaders(session, team: app.bootstrap.teamId))
            let text = String(buffer: list.body)
            #expect(!text.contains(raw) && !text.contains("raw_key") && !text.contains(stored.keyHash))

            if backend == .sqlite {
                // Nothing in the data directory holds the secret, only its hash.
                let files = try FileManager.default.contentsOfDirectory(atPath: app.environment.dataDirectory)
                    .filter { $0.hasPrefix("switchyard.sqlite") }
                var contents = Data()
                for file in files {
                    contents += try Data(contentsOf: URL(fileURLWithPath: app.environment.dataDirectory).appendingPathComponent(file))
                }
                #expect(contents.range(of: Data(raw.utf8)) == nil)
                #expect(contents.range(of: Data(stored.keyHash.utf8)) != nil)
            }
        }
    }

    @Test(
        "create validates every field",
        arguments: [
            (#"{"display_name":"x"}"#, "field \"kind\" is required (integration or agent)"),
            (#"{"kind":"device","display_name":"x"}"#, "field \"kind\": device keys (dk-) are issued only by device pairing, not by this endpoint"),
            (#"{"kind":"root","display_name":"x"}"#, "field \"kind\": \"root\" is not one of integration, agent"),
            (#"{"kind":"agent"}"#, "field \"display_name\" is required"),
            (#"{"kind":"agent","display_name":"   "}"#, "field \"display_name\" must not be empty"),
            (
                #"{"kind":"agent","display_name":"\#(String(repeating: "x", count: 101))"}"#,
                "field \"display_name\" is 101 characters long; the maximum is 100"
            ),
            (
                #"{"kind":"agent","display_name":"x","expires_in_days":0}"#,
                "field \"expires_in_days\": 0 is outside 1–365 (omit it for a key that never expires)"
            ),
            (
                #"{"kind":"agent","display_name":"x","expires_in_days":366}"#,
                "field \"expires_in_days\": 366 is outside 1–365 (omit it for a key that never expires)"
            ),
            (#"{"kind":"agent","display_name":"x","expires_in_days":1.5}"#, "field \"expires_in_days\" must be an integer, not 1.5"),
            (#"{"kind":"agent","display_name":"x","expires_in_days":"7"}"#, "field \"expires_in_days\" must be an integer"),
            (
                #"{"kind":"agent","display_name":"x","expires_in_days":null}"#,
                "field \"expires_in_days\" must be an integer 1–365; omit it for a key that never expires (null is not taken for that)"
            ),
            (#"{"kind":7,"display_name":"x"}"#, "field \"kind\" must be a string"),
            (#"[1,2]"#, "request body must be a JSON object"),
            (#"{"kind":"#, "request body is not valid JSON"),
        ]
    )
    func validation(body: String, message: String) async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let response = try await create(client, session, team: app.bootstrap.teamId, body)
            #expect(response.status == .badRequest)
            #expect(response.errorMessage == message)
        }
    }

    @Test("boundaries accepted: display_name of 100 characters, expiry of 1 and 365 days")
    func boundaries() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            for body in [
                #"{"kind":"agent","display_name":"\#(String(repeating: "é", count: 100))"}"#,
                #"{"kind":"agent","display_name":"a","expires_in_days":1}"#, #"{"kind":"integration","display_name":"b","expires_in_days":365}"#,
            ] {
                let response = try await create(client, session, team: app.bootstrap.teamId, body)
                #expect(response.status == .created, "\(body)")
            }
        }
    }

    @Test("revocation takes effect on the very next request", arguments: TestBackend.available)
    func revocation(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let owner = try #require(try await app.storage.user(emailAddress: "admin@localhost"))
            let device = try await app.insertKey(.device, userId: owner.id)
            #expect(try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(device.secret)).status == .ok)

            let headers = authHeaders(session, team: app.bootstrap.teamId)
            let revoke = try await client.execute(uri: "/api/v1/credentials/\(device.id.lowercased)", method: .delete, headers: headers)
            #expect(revoke.status == .noContent)
            #expect(try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(device.secret)).status == .unauthorized)

            // Revoking twice is harmless; the list shows the key as revoked.
            #expect(
                try await client.execute(uri: "/api/v1/credentials/\(device.id.lowercased)", method: .delete, headers: headers).status == .noContent)
            let list = try await client.execute(uri: "/api/v1/credentials?kind=device", method: .get, headers: headers)
            let items = try #require(try list.json()["credentials"]?.arrayValue)
            #expect(items.map { $0["key_status"]?.stringValue } == ["revoked"])

            // sk- revocation, checked through the runtime surface's authenticator.
            let created = try await create(client, session, team: app.bootstrap.teamId, #"{"kind":"integration","display_name":"doomed"}"#)
            let raw = try #require(try created.json()["raw_key"]?.stringValue)
            let id = try #require(try created.json()["id"]?.stringValue)
            _ = try await app.built.authenticator.authenticate(authorization: "Bearer \(raw)", teamHeader: nil, surface: .runtime)
            #expect(try await client.execute(uri: "/api/v1/credentials/\(id)", method: .delete, headers: headers).status == .noContent)
            await #expect(throws: SwitchyardError.unauthenticated("invalid, expired or revoked credential")) {
                try await app.built.authenticator.authenticate(authorization: "Bearer \(raw)", teamHeader: nil, surface: .runtime)
            }
        }
    }

    @Test("DELETE refuses a secret or prefix (400), and another team's id looks missing (404)", arguments: TestBackend.available)
    func deleteRules(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let headers = authHeaders(session, team: app.bootstrap.teamId)
            for raw in [app.bootstrap.integrationKey, String(app.bootstrap.integrationKey.prefix(12))] {
                let response = try await client.execute(uri: "/api/v1/credentials/\(raw)", method: .delete, headers: headers)
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("not its secret or key_prefix") == true)
            }
            #expect(try await client.execute(uri: "/api/v1/credentials/12", method: .delete, headers: headers).status == .badRequest)

            let owner = try #require(try await app.storage.user(emailAddress: "admin@localhost"))
            let other = Team(id: UUIDv7.make(at: app.clock.now()), displayName: "Other", createdAt: app.clock.now(), updatedAt: app.clock.now())
            try await app.storage.insertTeam(other, owner: Membership(teamId: other.id, userId: owner.id, role: .owner, createdAt: app.clock.now()))
            let foreign = try await app.insertKey(.integration, teamId: other.id)
            let missing = try await client.execute(uri: "/api/v1/credentials/\(UUID().uuidString)", method: .delete, headers: headers)
            let foreignResponse = try await client.execute(uri: "/api/v1/credentials/\(foreign.id.lowercased)", method: .delete, headers: headers)
            #expect(missing.status == .notFound && foreignResponse.status == .notFound)
            #expect(missing.errorMessage == foreignResponse.errorMessage)
            #expect(try await app.storage.credential(id: foreign.id, teamId: other.id)?.revokedAt == nil)
        }
    }

    @Test("members and viewers may list but not create or revoke", arguments: [TeamRole.member, .viewer])
    func roles(role: TeamRole) async throws {
        try await TestApp.with(.sqlite) { app, client in
            let now = app.clock.now()
            let hash = try await SecretHasher.hashPassword("pw-\(role.rawValue)", cost: 4)
            let user = User(
                id: UUIDv7.make(at: now), emailAddress: "\(role.rawValue)@example.com", displayName: "M", passwordHash: hash, createdAt: now,
                updatedAt: now)
            try await app.storage.insertUser(user)
            let team = Team(id: UUIDv7.make(at: now), displayName: "Shared", createdAt: now, updatedAt: now)
            let owner = try #require(try await app.storage.user(emailAddress: "admin@localhost"))
            try await app.storage.insertTeam(team, owner: Membership(teamId: team.id, userId: owner.id, role: .owner, createdAt: now))
            try await app.storage.insertMembership(Membership(teamId: team.id, userId: user.id, role: role, createdAt: now))
            let login = try await client.execute(
                uri: "/api/v1/auth/login", method: .post,
                body: ByteBuffer(string: #"{"email_address":"\#(user.emailAddress)","password":"pw-\#(role.rawValue)"}"#))
            let session = try #require(try login.json()["access_token"]?.stringValue)
            let headers = authHeaders(session, team: team.id)
            #expect(try await client.execute(uri: "/api/v1/credentials", method: .get, headers: headers).status == .ok)
            let denied = try await create(client, session, team: team.id, #"{"kind":"integration","display_name":"x"}"#)
            #expect(denied.status == .forbidden)
            #expect(denied.errorMessage == "role \(role.rawValue) cannot manage credentials; an owner or admin can")
            #expect(try await client.execute(uri: "/api/v1/credentials/\(UUID().uuidString)", method: .delete, headers: headers).status == .forbidden)
        }
    }
}
