import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("Teams, members, invitations, device pairing")
struct TeamsTests {
    /// One management endpoint of the role matrix: the request, the permission it needs, and whether the owner
    /// may be sent it here (team deletion is covered by its own test).
    struct Endpoint: Sendable, CustomStringConvertible {
        let method: HTTPRequest.Method
        let path: String
        let body: String?
        let permission: TeamPermission
        var description: String { "\(method) \(path)" }
        /// Who belongs to the team, with which role, who owns it: a user session's business only.
        var changesMembership: Bool { permission == .own || (permission == .manageMembers && method != .get) }
    }

    static func endpoints() throws -> [Endpoint] {
        [
            Endpoint(method: .get, path: "/api/v1/teams/current", body: nil, permission: .view),
            Endpoint(method: .put, path: "/api/v1/teams/current", body: #"{"display_name":"Renamed"}"#, permission: .manage),
            Endpoint(method: .post, path: "/api/v1/teams/current/transfer", body: #"{"new_owner_id":"\#(UUID().lowercased)"}"#, permission: .own),
            Endpoint(method: .delete, path: "/api/v1/teams/current", body: nil, permission: .own),
            Endpoint(method: .get, path: "/api/v1/members", body: nil, permission: .view),
            Endpoint(method: .put, path: "/api/v1/members/\(UUID().lowercased)", body: #"{"member_role":"viewer"}"#, permission: .manageMembers),
            Endpoint(method: .delete, path: "/api/v1/members/\(UUID().lowercased)", body: nil, permission: .manageMembers),
            Endpoint(
                method: .post, path: "/api/v1/invitations", body: #"{"email_address":"new@example.com","invitation_role":"member"}"#,
                permission: .manageMembers),
            Endpoint(method: .get, path: "/api/v1/invitations", body: nil, permission: .manageMembers),
            Endpoint(method: .delete, path: "/api/v1/invitations/\(UUID().lowercased)", body: nil, permission: .manageMembers),
            Endpoint(
                method: .post, path: "/api/v1/webhooks",
                body: #"{"display_name":"x","webhook_url":"https://hooks.example.com/x","webhook_events":["task.failed"]}"#, permission: .manage),
            Endpoint(method: .get, path: "/api/v1/webhooks", body: nil, permission: .manage),
            Endpoint(method: .get, path: "/api/v1/webhooks/\(UUID().lowercased)/deliveries", body: nil, permission: .manage),
            Endpoint(method: .post, path: "/api/v1/workflows/import", body: try TestApp.invertImport(), permission: .manage),
            Endpoint(method: .get, path: "/api/v1/workflows", body: nil, permission: .view),
            Endpoint(method: .post, path: "/api/v1/r/workflows/slug/missing/run", body: "{}", permission: .run),
            Endpoint(method: .get, path: "/api/v1/r/tasks", body: nil, permission: .view),
        ]
    }

    @Test(
        "role matrix: every role × every management endpoint, with a session and with a dk- key, is allowed exactly when the role holds the permission — and, for membership changes, the caller is a session",
        arguments: TeamRole.allCases)
    func roleMatrix(role: TeamRole) async throws {
        try await TestApp.with(.sqlite) { app, client in
            let (session, device) = try await app.memberCredentials(role: role)
            for (key, team) in [(session, Optional(app.bootstrap.teamId)), (device, nil)] {
                for endpoint in try Self.endpoints() {
                    // The owner really deleting the team is the cascade test's business.
                    if endpoint.permission == .own, endpoint.method == .delete, role == .owner { continue }
                    let response = try await app.call(client, endpoint.method, endpoint.path, token: key, team: team, body: endpoint.body)
                    if endpoint.permission.allows(role), key == device, endpoint.changesMembership {
                        #expect(response.status == .forbidden, "\(role) dk- \(endpoint): \(response.status)")
                        #expect(response.errorMessage?.contains("need a user session") == true, "\(response.errorMessage ?? "")")
                    } else if endpoint.permission.allows(role) {
                        #expect(
                            response.status != .forbidden && response.status != .unauthorized,
                            "\(role) \(endpoint): \(response.status) \(response.errorMessage ?? "")")
                    } else {
                        #expect(response.status == .forbidden, "\(role) \(endpoint): \(response.status)")
                        #expect(response.errorMessage?.contains("role \(role.rawValue)") == true, "\(response.errorMessage ?? "")")
                    }
                }
            }
        }
    }

    @Test("teams.selfService = false: signed-in users cannot create teams (403 naming the setting)")
    func selfServiceTeamsOff() async throws {
        try await TestApp.with(.sqlite, configure: { $0.selfServiceTeams = false }) { app, client in
            let session = try await app.ownerSession(client)
            let refused = try await app.call(client, .post, "/api/v1/teams", token: session, body: #"{"display_name":"Side project"}"#)
            #expect(refused.status == .forbidden && refused.errorMessage?.contains("teams.selfService") == true, "\(refused.status)")
            let teams = try await app.call(client, .get, "/api/v1/teams", token: session).decode(Page<TeamInfo>.self)
            #expect(teams.items.count == 1)
        }
    }

    @Test(
        "a dk- key cannot change who belongs to the team: the owner's device key can neither invite (and so sign up an account of its own), change roles, remove members, transfer nor delete the team — the owner's session can",
        arguments: TestBackend.available)
    func deviceKeyCannotEscalate(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let team = app.bootstrap.teamId
            let owner = try #require(try await app.storage.user(emailAddress: app.bootstrap.emailAddress))
            let device = try await app.insertKey(.device, userId: owner.id).secret
            let session = try await app.ownerSession(client)
            let (_, memberDevice) = try await app.memberCredentials(role: .member)
            let memberId = try #require(try await app.storage.credential(keyHash: SecretHasher.keyHash(memberDevice))?.userId)
            let invite = #"{"email_address":"mallory@example.com","invitation_role":"admin"}"#
            let refused: [(HTTPRequest.Method, String, String?)] = [
                (.post, "/api/v1/invitations", invite),
                (.put, "/api/v1/members/\(memberId.lowercased)", #"{"member_role":"admin"}"#),
                (.delete, "/api/v1/members/\(memberId.lowercased)", nil),
                (.post, "/api/v1/teams/current/transfer", #"{"new_owner_id":"\#(memberId.lowercased)"}"#),
                (.delete, "/api/v1/teams/current", nil),
                (.post, "/api/v1/teams/current/leave", nil),
            ]
            for (method, path, body) in refused {
                let response = try await app.call(client, method, path, token: device, body: body)
                #expect(response.status == .forbidden, "\(method) \(path): \(response.status)")
                #expect(response.errorMessage?.contains("a dk- device key cannot") == true, "\(response.errorMessage ?? "")")
            }
            // Nothing happened: no invitation, the member's role and the team's owner as they were.
            let pending = try await app.call(client, .get, "/api/v1/invitations", token: session, team: team).decode(Page<InvitationInfo>.self)
            #expect(pending.items.isEmpty, "\(pending.items)")
            #expect(try await app.storage.role(userId: memberId, teamId: team) == .member)
            #expect(try await app.storage.role(userId: owner.id, teamId: team) == .owner)
            // Reading is still the device's to do; and the owner's session does what the key could not.
            #expect(try await app.call(client, .get, "/api/v1/invitations", token: device).status == .ok)
            #expect(try await app.call(client, .post, "/api/v1/invitations", token: session, team: team, body: invite).status == .created)
        }
    }

    @Test(
        "invitations: 409 for a member or a pending invitee; accept creates the account, signs in, and the token works once",
        arguments: TestBackend.available)
    func invitations(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let invite = try await app.call(
                client, .post, "/api/v1/invitations", token: session, team: team,
                body: #"{"email_address":"Ada@Example.com","invitation_role":"admin"}"#)
            #expect(invite.status == .created)
            let token = try #require(try invite.decode(InvitationInfo.self).token)
            let again = try await app.call(
                client, .post, "/api/v1/invitations", token: session, team: team,
                body: #"{"email_address":"ada@example.com","invitation_role":"member"}"#)
            #expect(again.status == .conflict)
            let member = try await app.call(
                client, .post, "/api/v1/invitations", token: session, team: team,
                body: #"{"email_address":"\#(app.bootstrap.emailAddress)","invitation_role":"member"}"#)
            #expect(member.status == .conflict)
            let owner = try await app.call(
                client, .post, "/api/v1/invitations", token: session, team: team,
                body: #"{"email_address":"b@example.com","invitation_role":"owner"}"#)
            #expect(owner.status == .badRequest)
            let list = try await app.call(client, .get, "/api/v1/invitations", token: session, team: team)
            #expect(try list.decode(Page<InvitationInfo>.self).items.map(\.emailAddress) == ["ada@example.com"])
            #expect(!String(buffer: list.body).contains(token))

            let short = try await app.call(
                client, .post, "/api/v1/invitations/accept", token: nil, body: #"{"invitation_token":"\#(token)","password":"short"}"#)
            #expect(short.status == .badRequest)
            let accepted = try await app.call(
                client, .post, "/api/v1/invitations/accept", token: nil,
                body: #"{"invitation_token":"\#(token)","password":"correct horse","first_name":"Ada","last_name":"L"}"#)
            #expect(accepted.status == .ok)
            let answer = try accepted.decode(AcceptedInvitation.self)
            #expect(answer.accountCreated && answer.role == .admin)
            let adaSession = answer.accessToken
            let members = try await app.call(client, .get, "/api/v1/members", token: adaSession, team: team)
            #expect(members.status == .ok)
            #expect(try members.decode(Page<MemberInfo>.self).items.map(\.role) == [.owner, .admin])
            let reused = try await app.call(
                client, .post, "/api/v1/invitations/accept", token: nil, body: #"{"invitation_token":"\#(token)","password":"correct horse"}"#)
            #expect(reused.status == .notFound)
            // A login with the new account works.
            let login = try await app.call(
                client, .post, "/api/v1/auth/login", token: nil, body: #"{"email_address":"ada@example.com","password":"correct horse"}"#)
            #expect(login.status == .ok)

            // A cancelled invitation cannot be accepted.
            let second = try await app.call(
                client, .post, "/api/v1/invitations", token: session, team: team,
                body: #"{"email_address":"bob@example.com","invitation_role":"viewer"}"#)
            let secondInvitation = try second.decode(InvitationInfo.self)
            let secondId = secondInvitation.id.lowercased
            let secondToken = try #require(secondInvitation.token)
            #expect(try await app.call(client, .delete, "/api/v1/invitations/\(secondId)", token: session, team: team).status == .noContent)
            let late = try await app.call(
                client, .post, "/api/v1/invitations/accept", token: nil, body: #"{"invitation_token":"\#(secondToken)","password":"long enough"}"#)
            #expect(late.status == .notFound)
        }
    }

    @Test(
        "member rules: no self role change, no owner role, owner cannot be removed; transfer makes the old owner admin; leave",
        arguments: TestBackend.available)
    func memberRules(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let (adminKey, _) = try await app.memberCredentials(role: .admin)
            let members = try await app.call(client, .get, "/api/v1/members", token: session, team: team).decode(Page<MemberInfo>.self).items
            let ownerId = try #require(members.first { $0.role == .owner }?.userId.lowercased)
            let adminId = try #require(members.first { $0.role == .admin }?.userId.lowercased)

            #expect(
                try await app.call(client, .put, "/api/v1/members/\(adminId)", token: adminKey, team: team, body: #"{"member_role":"viewer"}"#).status
                    == .forbidden)
            #expect(
                try await app.call(client, .put, "/api/v1/members/\(adminId)", token: session, team: team, body: #"{"member_role":"owner"}"#).status
                    == .badRequest)
            #expect(try await app.call(client, .delete, "/api/v1/members/\(ownerId)", token: adminKey, team: team).status == .forbidden)
            #expect(
                try await app.call(client, .put, "/api/v1/members/\(ownerId)", token: adminKey, team: team, body: #"{"member_role":"viewer"}"#).status
                    == .forbidden)
            #expect(try await app.call(client, .post, "/api/v1/teams/current/leave", token: session, team: team).status == .conflict)

            let transfer = try await app.call(
                client, .post, "/api/v1/teams/current/transfer", token: session, team: team, body: #"{"new_owner_id":"\#(adminId)"}"#)
            #expect(transfer.status == .ok)
            #expect(try await app.storage.role(userId: UUID(uuidString: ownerId)!, teamId: team) == .admin)
            #expect(try await app.storage.role(userId: UUID(uuidString: adminId)!, teamId: team) == .owner)

            // The new owner removes the old one; the old owner's session loses the team at once.
            #expect(try await app.call(client, .delete, "/api/v1/members/\(ownerId)", token: adminKey, team: team).status == .ok)
            #expect(try await app.call(client, .get, "/api/v1/members", token: session, team: team).status == .forbidden)
        }
    }

    @Test("deleting the team cancels its unfinished tasks, revokes every key and removes members and webhooks", arguments: TestBackend.available)
    func deleteTeamCascades(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let task = try await app.run(client)
            let webhook = try await app.call(
                client, .post, "/api/v1/webhooks", token: session, team: team,
                body: #"{"display_name":"x","webhook_url":"https://hooks.example.com/x","webhook_events":["task.failed"]}"#)
            #expect(webhook.status == .created)
            let memberKey = try await app.member(role: .member)

            let deleted = try await app.call(client, .delete, "/api/v1/teams/current", token: session, team: team)
            #expect(deleted.status == .ok)
            #expect(try deleted.json()["cancelled_task_count"]?.intValue == 1)

            let stored = try #require(try await app.storage.task(id: task, teamId: team))
            #expect(stored.status == .cancelled)
            #expect(try await app.call(client, .get, "/api/v1/r/tasks", token: app.bootstrap.integrationKey).status == .unauthorized)
            #expect(try await app.call(client, .get, "/api/v1/members", token: memberKey).status == .unauthorized)
            #expect(try await app.call(client, .get, "/api/v1/members", token: session, team: team).status == .forbidden)
            let keys = try await app.storage.credentials(teamId: team, kind: nil, page: PageRequest())
            #expect(!keys.items.isEmpty && keys.items.allSatisfy { $0.revokedAt != nil })
            #expect(try await app.storage.webhooks(teamId: team, page: PageRequest()).totalCount == 0)
            #expect(try await app.storage.team(id: team) == nil)
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: session).decode(UserProfile.self).teams.isEmpty)
            // A second delete finds nothing to delete.
            #expect(try await app.call(client, .delete, "/api/v1/teams/current", token: session, team: team).status == .forbidden)
        }
    }

    @Test("teams: create one, list mine, rename (owner/admin)", arguments: TestBackend.available)
    func createAndList(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let created = try await app.call(client, .post, "/api/v1/teams", token: session, body: #"{"display_name":"Research"}"#)
            #expect(created.status == .created)
            let id = try created.decode(Created.self).id.lowercased
            let mine = try await app.call(client, .get, "/api/v1/teams", token: session).decode(Page<TeamInfo>.self).items
            #expect(mine.count == 2)
            #expect(mine.first { $0.id.lowercased == id }?.role == .owner)
            let renamed = try await app.call(
                client, .put, "/api/v1/teams/current", token: session, team: UUID(uuidString: id), body: #"{"display_name":"Lab"}"#)
            #expect(renamed.status == .ok)
            #expect(try await app.storage.team(id: UUID(uuidString: id)!)?.displayName == "Lab")
            let empty = try await app.call(client, .post, "/api/v1/teams", token: session, body: #"{"display_name":"  "}"#)
            #expect(empty.status == .badRequest)
        }
    }

    @Test(
        "device pairing: pending, confirmed with a loosely typed code, delivered once (dk- and ak-), then 404; revoke ends both",
        arguments: TestBackend.available)
    func pairing(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let start = try await app.call(client, .post, "/api/v1/desktop/pair/start", token: nil).json()
            let deviceCode = try #require(start["device_code"]?.stringValue)
            let userCode = try #require(start["user_code"]?.stringValue)
            #expect(userCode.count == 9 && userCode.dropFirst(4).first == "-")
            #expect(start["expires_in"]?.intValue == 300 && start["interval"]?.intValue == 2)
            #expect((start["verification_uri"]?.stringValue)?.hasSuffix("user_code=\(userCode)") == true)

            let pending = try await app.call(client, .post, "/api/v1/desktop/pair/poll", token: nil, body: #"{"device_code":"\#(deviceCode)"}"#)
            #expect(try pending.json()["status"]?.stringValue == "pending")
            // dk- keys cannot confirm (session only).
            let typed = " " + userCode.lowercased().replacingOccurrences(of: "-", with: " - ") + " "
            let bad = try await app.call(
                client, .post, "/api/v1/desktop/pair/confirm", token: session, team: app.bootstrap.teamId, body: #"{"user_code":"0000-0000"}"#)
            #expect(bad.status == .badRequest)
            let confirm = try await app.call(
                client, .post, "/api/v1/desktop/pair/confirm", token: session, team: app.bootstrap.teamId,
                body: #"{"user_code":"\#(typed)","device_name":"laptop"}"#)
            #expect(confirm.status == .ok)
            app.clock.advance(by: 2)  // the poll interval (a sooner poll is told to slow down)
            let approved = try await app.call(client, .post, "/api/v1/desktop/pair/poll", token: nil, body: #"{"device_code":"\#(deviceCode)"}"#)
                .json()
            #expect(approved["status"]?.stringValue == "approved")
            let deviceKey = try #require(approved["raw_key"]?.stringValue)
            let agentKey = try #require(approved["agent_key"]?.stringValue)
            #expect(deviceKey.hasPrefix("dk-") && agentKey.hasPrefix("ak-"))
            let gone = try await app.call(client, .post, "/api/v1/desktop/pair/poll", token: nil, body: #"{"device_code":"\#(deviceCode)"}"#)
            #expect(gone.status == .notFound)

            #expect(try await app.call(client, .get, "/api/v1/users/me", token: deviceKey).status == .ok)
            let agent = try #require(try await app.storage.credential(keyHash: SecretHasher.keyHash(agentKey)))
            #expect(agent.revokedAt == nil && agent.kind == .agent)
            #expect(try await app.call(client, .post, "/api/v1/auth/device/revoke", token: deviceKey).status == .ok)
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: deviceKey).status == .unauthorized)
            #expect(try await app.storage.credential(keyHash: SecretHasher.keyHash(agentKey))?.revokedAt != nil)
            #expect(try await app.call(client, .post, "/api/v1/auth/device/revoke", token: session).status == .unauthorized)
        }
    }

    @Test(
        "the approval page shows who asks: the device's name and address and when, to a user session only; confirming without a name keeps the device's own",
        arguments: TestBackend.available)
    func pairingRequester(backend: TestBackend) async throws {
        try await TestApp.with(backend, live: true) { app, client in
            let session = try await app.ownerSession(client)
            let refused = try await app.call(client, .post, "/api/v1/desktop/pair/start", token: nil, body: #"{"device_name":"evil\u0007bell"}"#)
            #expect(refused.status == .badRequest && refused.errorMessage?.contains("device_name") == true)
            let start = try await app.call(
                client, .post, "/api/v1/desktop/pair/start", token: nil, body: #"{"device_name":"  Ada's laptop "}"#,
                headers: [HTTPField.Name("X-Forwarded-For")!: "203.0.113.7"]
            ).json()
            let userCode = try #require(start["user_code"]?.stringValue)
            let deviceCode = try #require(start["device_code"]?.stringValue)

            let shown = try await app.call(client, .get, "/api/v1/desktop/pair/pending?user_code=\(userCode)", token: session)
            #expect(shown.status == .ok)
            let request = try shown.json()
            #expect(request["requested_name"]?.stringValue == "Ada's laptop")
            #expect(request["requested_from"]?.stringValue == "127.0.0.1 (forwarded for 203.0.113.7)", "\(request)")
            #expect(apiInstant(request["requested_at"]) == app.clock.now())
            #expect(request["user_code"]?.stringValue == userCode)
            // Typed with a space, as a form encoder (requests, curl -G --data-urlencode) sends it: `+` is that space.
            let spaced = userCode.replacingOccurrences(of: "-", with: "+")
            #expect(try await app.call(client, .get, "/api/v1/desktop/pair/pending?user_code=\(spaced)", token: session).status == .ok)
            // A device key may not look (nor approve); an unknown code is 404; a malformed one 400.
            let device = try await app.insertKey(
                .device, userId: try #require(try await app.storage.user(emailAddress: app.bootstrap.emailAddress)).id)
            #expect(try await app.call(client, .get, "/api/v1/desktop/pair/pending?user_code=\(userCode)", token: device.secret).status == .forbidden)
            #expect(try await app.call(client, .get, "/api/v1/desktop/pair/pending?user_code=AAAA-AAAA", token: session).status == .notFound)
            #expect(try await app.call(client, .get, "/api/v1/desktop/pair/pending?user_code=x", token: session).status == .badRequest)

            let confirm = try await app.call(
                client, .post, "/api/v1/desktop/pair/confirm", token: session, team: app.bootstrap.teamId, body: #"{"user_code":"\#(userCode)"}"#)
            #expect(confirm.status == .ok)
            #expect(try await app.call(client, .get, "/api/v1/desktop/pair/pending?user_code=\(userCode)", token: session).status == .notFound)
            let approved = try await app.call(client, .post, "/api/v1/desktop/pair/poll", token: nil, body: #"{"device_code":"\#(deviceCode)"}"#)
                .json()
            let key = try #require(approved["raw_key"]?.stringValue)
            #expect(try await app.storage.credential(keyHash: SecretHasher.keyHash(key))?.displayName == "Ada's laptop")
        }
    }

    @Test("device pairing codes expire after 300 s: confirm and poll answer 404", arguments: TestBackend.available)
    func pairingExpiry(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let start = try await app.call(client, .post, "/api/v1/desktop/pair/start", token: nil).json()
            let deviceCode = try #require(start["device_code"]?.stringValue)
            let userCode = try #require(start["user_code"]?.stringValue)
            app.clock.advance(by: 301)
            let confirm = try await app.call(
                client, .post, "/api/v1/desktop/pair/confirm", token: session, team: app.bootstrap.teamId, body: #"{"user_code":"\#(userCode)"}"#)
            #expect(confirm.status == .notFound)
            let poll = try await app.call(client, .post, "/api/v1/desktop/pair/poll", token: nil, body: #"{"device_code":"\#(deviceCode)"}"#)
            #expect(poll.status == .notFound)
            // The old verification page sends the browser to the dashboard's approval page.
            let old = try await app.call(client, .get, "/api/v1/desktop/pair?user_code=\(userCode)", token: nil)
            #expect(old.status == .seeOther && old.headers[.location] == "/pair?user_code=\(userCode)")
        }
    }
}

extension TestApp {
    /// A user of the bootstrap team with `role`: a session of theirs and a `dk-` key of theirs.
    func memberCredentials(role: TeamRole) async throws -> (session: String, device: String) {
        let device = try await member(role: role)
        let userId = try #require(try await storage.credential(keyHash: SecretHasher.keyHash(device))?.userId)
        return (try await built.authenticator.sessions.issue(userId: userId).token, device)
    }
}
