import Foundation
import HummingbirdTesting
import JWTKit
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

/// Session tokens name their signing key (`kid`), and `switchyard secrets rotate` replaces it with an overlap
/// (docs/security.md, "Rotating the session-signing key").
@Suite("Session signing keys")
struct SessionKeyTests {
    static func me(_ app: TestApp, _ client: any TestClientProtocol, _ token: String) async throws -> Int {
        Int(try await app.call(client, .get, "/api/v1/users/me", token: token).status.code)
    }

    @Test(
        "rotation: a new key signs within 30 s, the old one verifies until its overlap ends; the next rotation drops it",
        arguments: TestBackend.available)
    func rotation(_ backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let before = try await app.ownerSession(client)
            let firstKid = try #require(SessionTokens.kid(of: before))
            #expect(firstKid.hasPrefix("k") && firstKid.count == 13)

            let rotation = try await rotateSessionSigningKey(
                configuration: app.environment.configuration, storage: app.storage, overlap: 3600, clock: app.clock)
            #expect(rotation.signingKid != firstKid && rotation.dropped.isEmpty)
            #expect(rotation.retiring.map(\.kid) == [firstKid] && rotation.retiring.first?.retiresAt == app.clock.now().addingTimeInterval(3600))
            #expect(try await Self.me(app, client, before) == 200)

            // The running server re-reads the ring within 30 s and signs with the new key; both verify.
            app.clock.advance(by: 31)
            let after = try await app.ownerSession(client)
            #expect(SessionTokens.kid(of: after) == rotation.signingKid)
            #expect(try await Self.me(app, client, before) == 200)
            #expect(try await Self.me(app, client, after) == 200)

            // The overlap ends: the old key's sessions end with it.
            app.clock.advance(by: 3600)
            #expect(try await Self.me(app, client, before) == 401)
            #expect(try await Self.me(app, client, after) == 200)

            // --overlap 0 (a leaked key): the replaced key stops verifying once the server re-reads the ring.
            let second = try await rotateSessionSigningKey(
                configuration: app.environment.configuration, storage: app.storage, overlap: 0, clock: app.clock)
            #expect(second.dropped == [firstKid] && second.retiring.map(\.kid) == [rotation.signingKid])
            app.clock.advance(by: 31)
            #expect(try await Self.me(app, client, after) == 401)
            #expect(try await Self.me(app, client, try await app.ownerSession(client)) == 200)
        }
    }

    @Test("a deployment's older single secret becomes key s0: its tokens (no kid) stay valid; forged and unknown kids are refused")
    func upgradeAndForgery() async throws {
        try await TestEnvironment.with(.sqlite) { environment in
            try await environment.withStorage { storage in
                let clock = ManualWallClock(Date(timeIntervalSince1970: 1_764_550_000))
                let secrets = try SecretBox.load(configuration: environment.configuration)
                let older = Data(repeating: 7, count: 64)
                // As the previous version stored it: sealed, bound to the setting's name.
                _ = try await storage.settingInsertingIfAbsent(
                    SettingKey.sessionSigningSecret,
                    value: try secrets.seal(older.base64EncodedString(), boundTo: SecretBox.binding(forSetting: SettingKey.sessionSigningSecret)))
                let ring = try await SigningKeyring.load(storage: storage, secrets: secrets, clock: clock)
                #expect(ring.keys.map(\.kid) == [SigningKeyring.unnamedKid] && ring.keys.first?.secretBytes == older)
                #expect(try await SigningKeyring.load(storage: storage, secrets: secrets, clock: clock) == ring)

                let tokens = SessionTokens(lifetime: 3600, clock: clock) {
                    try await SigningKeyring.load(storage: storage, secrets: secrets, clock: clock)
                }
                try await tokens.load()
                let userId = UUID()
                let claims = SessionTokens.Claims(
                    sub: .init(value: userId.lowercased), iat: .init(value: clock.now()), exp: .init(value: clock.now().addingTimeInterval(600)),
                    typ: "session", ver: 0)
                func signed(with secret: Data, kid: String?) async throws -> String {
                    let keys = JWTKeyCollection()
                    await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
                    return try await keys.sign(claims, kid: kid.map { JWKIdentifier(string: $0) })
                }
                // Issued by the previous version: no kid, the older secret.
                #expect(await tokens.verify(try await signed(with: older, kid: nil))?.userId == userId)
                #expect(await tokens.verify(try await signed(with: older, kid: "s0"))?.userId == userId)
                let forged = Data(repeating: 9, count: 64)
                #expect(await tokens.verify(try await signed(with: forged, kid: nil)) == nil)
                #expect(await tokens.verify(try await signed(with: forged, kid: "s0")) == nil)
                // A kid the ring does not have is refused — never checked against some default key.
                #expect(await tokens.verify(try await signed(with: older, kid: "kffffffffffff")) == nil)
                let issued = try await tokens.issue(userId: userId)
                #expect(SessionTokens.kid(of: issued.token) == "s0")
            }
        }
    }
}
