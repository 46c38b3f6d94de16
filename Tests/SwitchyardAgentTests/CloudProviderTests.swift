import Foundation
import HTTPTypes
import HummingbirdTesting
import SwitchyardCore
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

/// `/cloud-providers/comfy-cloud` (api.md §2.7) against the Comfy Cloud stand-in.
@Suite("Cloud provider credentials")
struct CloudProviderTests {
    static let path = "/api/v1/cloud-providers/comfy-cloud"

    @Test(
        "set (checked with the service), read, replace, delete; the key sealed at rest and shown only as a preview", arguments: TestBackend.available)
    func lifecycle(backend: TestBackend) async throws {
        try await FakeComfyCloud.with { cloud in
            let key = "cfy_" + String(repeating: "k", count: 24) + "WXYZ"
            await cloud.accept(key)
            try await TestApp.with(backend, configure: { $0.cloud.comfyBaseURL = cloud.baseURL }) { app, client in
                let session = try await app.ownerSession(client)
                let team = app.bootstrap.teamId
                let missing = try await app.call(client, .get, Self.path, token: session, team: team)
                #expect(missing.status == .notFound)

                let put = try await app.call(
                    client, .put, Self.path, token: session, team: team, body: #"{"api_key":"\#(key)","cloud_fallback":true}"#)
                #expect(put.status == .ok)
                let stored = try put.json()
                #expect(stored["provider_name"] == "comfy_cloud")
                #expect(stored["credential_status"] == "active")
                #expect(stored["cloud_fallback"] == .bool(true))
                #expect(stored["key_preview"] == "cfy_kkkk...WXYZ")
                #expect(stored["verified"] == .bool(true))
                #expect(stored["verified_at"]?.stringValue != nil)
                #expect(stored["status_message"] == .null)
                #expect(stored["api_key"] == nil)
                #expect(!String(buffer: put.body).contains(key))
                #expect(await cloud.requests().contains("GET /api/user"))

                // At rest: sealed, not the key; bound to the team (moved to another team's row it does not open).
                let row = try #require(try await app.storage.cloudCredential(teamId: team, provider: .comfyCloud))
                #expect(!row.sealedKey.contains(key) && row.sealedKey.hasPrefix("v1."))

                let read = try await app.call(client, .get, Self.path, token: session, team: team)
                #expect(read.status == .ok)
                #expect(try read.json() == stored)

                // Replaced: a new key and preview, the same created_at; cloud_fallback defaults to false.
                let second = "cfy_second_key_0123456789"
                await cloud.accept(second)
                app.clock.advance(by: 5)
                let replaced = try await app.call(client, .put, Self.path, token: session, team: team, body: #"{"api_key":"\#(second)"}"#)
                #expect(replaced.status == .ok)
                let after = try replaced.json()
                #expect(after["key_preview"] == "cfy_seco...6789")
                #expect(after["cloud_fallback"] == .bool(false))
                #expect(after["created_at"] == stored["created_at"])
                #expect(after["updated_at"] != stored["updated_at"])

                let deleted = try await app.call(client, .delete, Self.path, token: session, team: team)
                #expect(deleted.status == .noContent)
                #expect(try await app.call(client, .get, Self.path, token: session, team: team).status == .notFound)
                #expect(try await app.call(client, .delete, Self.path, token: session, team: team).status == .notFound)
            }
        }
    }

    @Test("bad input is a 400 naming the field; a key the service refuses or a waitlisted account is not stored")
    func refusals() async throws {
        try await FakeComfyCloud.with { cloud in
            await cloud.accept("cfy_waitlisted_account_key", waitlisted: true)
            try await TestApp.with(.sqlite, configure: { $0.cloud.comfyBaseURL = cloud.baseURL }) { app, client in
                let session = try await app.ownerSession(client)
                let team = app.bootstrap.teamId
                let cases: [(String, String)] = [
                    (#"{}"#, "api_key"),
                    (#"{"api_key":""}"#, "api_key"),
                    (#"{"api_key":"\#(String(repeating: "a", count: 513))"}"#, "api_key"),
                    (#"{"api_key":"cfy_with space"}"#, "spaces or control characters"),
                    (#"{"api_key":42}"#, "api_key"),
                    (#"{"api_key":"cfy_ok_but_flag","cloud_fallback":"yes"}"#, "cloud_fallback"),
                    (#"{"api_key":"cfy_unknown_to_the_service"}"#, "Comfy Cloud refused this key (401"),
                    (#"{"api_key":"cfy_waitlisted_account_key"}"#, "waitlisted"),
                ]
                for (body, needle) in cases {
                    let response = try await app.call(client, .put, Self.path, token: session, team: team, body: body)
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(response.errorMessage?.contains(needle) == true, "\(body): \(response.errorMessage ?? "")")
                }
                #expect(try await app.call(client, .get, Self.path, token: session, team: team).status == .notFound)
            }
        }
    }

    @Test("a service that cannot answer now (503): the key is stored, not verified, and the answer says why")
    func unverified() async throws {
        try await FakeComfyCloud.with { cloud in
            await cloud.inject(.unavailable(count: 1))
            try await TestApp.with(.sqlite, configure: { $0.cloud.comfyBaseURL = cloud.baseURL }) { app, client in
                let session = try await app.ownerSession(client)
                let response = try await app.call(
                    client, .put, Self.path, token: session, team: app.bootstrap.teamId, body: #"{"api_key":"cfy_cannot_check_this_key"}"#)
                #expect(response.status == .ok)
                let stored = try response.json()
                #expect(stored["verified"] == .bool(false))
                #expect(stored["verified_at"] == .null)
                #expect(stored["status_message"]?.stringValue?.contains("answered 503") == true)
                #expect(stored["credential_status"] == "active")
            }
        }
    }

    @Test("owners and admins only: members and viewers 403, sk- keys 401 (the management surface); another team's credential looks missing")
    func access() async throws {
        try await FakeComfyCloud.with { cloud in
            await cloud.accept("cfy_team_key_for_access")
            try await TestApp.with(.sqlite, configure: { $0.cloud.comfyBaseURL = cloud.baseURL }) { app, client in
                let session = try await app.ownerSession(client)
                let team = app.bootstrap.teamId
                let body = #"{"api_key":"cfy_team_key_for_access"}"#
                #expect(try await app.call(client, .put, Self.path, token: session, team: team, body: body).status == .ok)
                let admin = try await app.member(role: .admin)
                #expect(try await app.call(client, .get, Self.path, token: admin).status == .ok)
                for role in [TeamRole.member, .viewer] {
                    let device = try await app.member(role: role)
                    for method in [HTTPRequest.Method.get, .put, .delete] {
                        let response = try await app.call(client, method, Self.path, token: device, body: method == .put ? body : nil)
                        #expect(response.status == .forbidden, "\(role) \(method)")
                    }
                }
                let integration = try await app.insertKey(.integration)
                let byKey = try await app.call(client, .get, Self.path, token: integration.secret)
                #expect(byKey.status == .unauthorized, "\(byKey.status) \(byKey.errorMessage ?? "")")
                // The other team's owner (a dk- key of that team) sees nothing of this team's key.
                let other = try await app.otherTeam()
                let owner = try #require(
                    try await app.storage.members(teamId: other.teamId, page: PageRequest(currentPage: nil, perPage: nil)).items.first)
                let otherDevice = try await app.insertKey(.device, teamId: other.teamId, userId: owner.user.id)
                #expect(try await app.call(client, .get, Self.path, token: otherDevice.secret).status == .notFound)
                #expect(try await app.call(client, .delete, Self.path, token: otherDevice.secret).status == .notFound)
                #expect(try await app.call(client, .get, Self.path, token: session, team: team).status == .ok)
            }
        }
    }
}
