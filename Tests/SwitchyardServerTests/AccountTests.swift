import Foundation
import HummingbirdTesting
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("The signed-in user's account: sign out everywhere, change the password")
struct AccountTests {
    @Test(
        "sign out everywhere ends every session of the user (this one too); device keys stay; a new sign-in works", arguments: TestBackend.available)
    func signOutEverywhere(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let first = try await app.ownerSession(client)
            app.clock.advance(by: 1)
            let second = try await app.ownerSession(client)
            #expect(first != second)
            let owner = try #require(try await app.storage.user(emailAddress: app.bootstrap.emailAddress))
            let device = try await app.insertKey(.device, userId: owner.id)
            #expect(
                try await app.call(client, .post, "/api/v1/users/me/sign-out-everywhere", token: device.secret).status == .forbidden,
                "a device key cannot")
            let out = try await app.call(client, .post, "/api/v1/users/me/sign-out-everywhere", token: first)
            #expect(out.status == .ok)
            for token in [first, second] {
                #expect(try await app.call(client, .get, "/api/v1/users/me", token: token).status == .unauthorized)
            }
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: device.secret).status == .ok)
            let fresh = try await app.ownerSession(client)
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: fresh).status == .ok)
        }
    }

    @Test(
        "a password change needs the current password and a session, ends every other session, answers a new one; the old password stops working",
        arguments: TestBackend.available)
    func changePassword(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            app.clock.advance(by: 1)
            let other = try await app.ownerSession(client)
            let owner = try #require(try await app.storage.user(emailAddress: app.bootstrap.emailAddress))
            let device = try await app.insertKey(.device, userId: owner.id)
            func change(_ token: String, _ body: String) async throws -> TestResponse {
                try await app.call(client, .put, "/api/v1/users/me/password", token: token, body: body)
            }
            let wrong = try await change(session, #"{"current_password":"nope","new_password":"a new password"}"#)
            #expect(wrong.status == .forbidden && wrong.errorMessage?.contains("current_password") == true)
            let short = try await change(session, #"{"current_password":"\#(app.bootstrap.password)","new_password":"short"}"#)
            #expect(short.status == .badRequest && short.errorMessage?.contains("new_password") == true)
            let missing = try await change(session, #"{"new_password":"a new password"}"#)
            #expect(missing.status == .badRequest)
            #expect(
                try await change(device.secret, #"{"current_password":"\#(app.bootstrap.password)","new_password":"a new password"}"#).status
                    == .forbidden)
            // Nothing changed so far.
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: other).status == .ok)

            let changed = try await change(session, #"{"current_password":"\#(app.bootstrap.password)","new_password":"a new password"}"#)
            #expect(changed.status == .ok)
            let token = try #require(try changed.json()["access_token"]?.stringValue)
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: token).status == .ok)
            for ended in [session, other] {
                #expect(try await app.call(client, .get, "/api/v1/users/me", token: ended).status == .unauthorized)
            }
            func login(_ password: String) async throws -> TestResponse {
                try await app.call(
                    client, .post, "/api/v1/auth/login", token: nil,
                    body: #"{"email_address":"\#(app.bootstrap.emailAddress)","password":"\#(password)"}"#)
            }
            #expect(try await login(app.bootstrap.password).status == .unauthorized)
            #expect(try await login("a new password").status == .ok)
            #expect(try await app.storage.user(id: owner.id)?.tokenVersion == 1)
        }
    }
}
