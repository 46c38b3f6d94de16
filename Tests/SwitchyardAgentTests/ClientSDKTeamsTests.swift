import Foundation
import HummingbirdTesting
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The SDK's users, teams, members and invitations against a live `serve`.
@Suite("Client SDK: teams")
struct ClientSDKTeamsTests {
    /// The live server's address and the bootstrap owner's session client in the bootstrap team.
    static func owner(_ app: TestApp, _ client: any TestClientProtocol) async throws -> (String, SwitchyardClient) {
        let server = "http://127.0.0.1:\(client.port!)"
        let owner = try await SwitchyardClient.signIn(
            server: server, emailAddress: app.bootstrap.emailAddress, password: app.bootstrap.password, teamId: app.bootstrap.teamId.lowercased)
        return (server, owner)
    }

    @Test("a user creates a team, invites an address, the invitee accepts and is a member; roles change; ownership moves; the team goes")
    func teamLifecycle() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let (server, owner) = try await Self.owner(app, client)
            let profile = try await owner.me()
            #expect(profile.emailAddress == app.bootstrap.emailAddress)
            #expect(profile.teams.map(\.id) == [app.bootstrap.teamId] && profile.teams.first?.role == .owner)

            let teamId = try await owner.createTeam(displayName: "Render farm")
            let team = owner.inTeam(teamId)
            #expect(try await team.currentTeam().displayName == "Render farm")
            #expect(Set(try await owner.teams().items.map(\.id)) == [app.bootstrap.teamId, teamId])
            try await team.renameTeam(displayName: "Render farm 2")
            #expect(try await team.currentTeam().displayName == "Render farm 2")

            // An invitation shows its token once; the list does not.
            let invitation = try await team.invite(emailAddress: "grace@example.com", role: .member)
            let token = try #require(invitation.token)
            let pending = try await team.invitations().items
            #expect(pending.map(\.id) == [invitation.id] && pending.first?.token == nil && pending.first?.role == .member)
            let spare = try await team.invite(emailAddress: "spare@example.com", role: .viewer)
            try await team.cancelInvitation(spare.id)
            #expect(try await team.invitations().items.map(\.id) == [invitation.id])

            let accepted = try await SwitchyardClient.acceptInvitation(server: server, token: token, password: "correct horse battery")
            #expect(accepted.teamId == teamId && accepted.role == .member && accepted.accountCreated)
            let grace = SwitchyardClient(server: server, token: accepted.accessToken, teamId: teamId.lowercased)
            #expect(try await grace.me().teams.map(\.id) == [teamId])
            let members = try await team.members().items
            #expect(Set(members.map(\.emailAddress)) == [app.bootstrap.emailAddress, "grace@example.com"])
            #expect(try await team.invitations().items.isEmpty)

            // A member cannot manage members; the owner promotes, then hands the team over.
            let refused = await #expect(throws: SwitchyardAPIError.self) { try await grace.setRole(of: accepted.userId, to: .admin) }
            #expect(refused?.status == 403)
            try await team.setRole(of: accepted.userId, to: .admin)
            #expect(try await team.members().items.first { $0.userId == accepted.userId }?.role == .admin)
            try await team.transferTeam(to: accepted.userId)
            #expect(try await team.currentTeam().role == .admin)

            // The old owner leaves; the new owner deletes the team, and it is gone for both.
            try await team.leaveTeam()
            #expect(try await owner.teams().items.map(\.id) == [app.bootstrap.teamId])
            #expect(try await grace.deleteTeam() == 0)
            let gone = await #expect(throws: SwitchyardAPIError.self) { try await grace.currentTeam() }
            #expect(gone?.status == 404 || gone?.status == 403)
        }
    }

    @Test("device login (switchyard login): a code the owner confirms gives a dk- key and its agent key; logout revokes both")
    func deviceLogin() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let server = "http://127.0.0.1:\(client.port!)"
            let login = DeviceLogin(server: server + "/")
            let started = try await login.start()
            #expect(started.userCode.count == 9 && started.verificationURI.hasSuffix("user_code=\(started.userCode)"))
            let session = try await app.ownerSession(client)
            let confirmed = try await app.call(
                client, .post, "/api/v1/desktop/pair/confirm", token: session, team: app.bootstrap.teamId,
                body: #"{"user_code":"\#(started.userCode)"}"#)
            #expect(confirmed.status == .ok)
            // The first poll comes after the advised interval (the server's clock is the test's).
            app.clock.advance(by: TimeInterval(started.interval))
            let stored = try await login.waitForApproval(started)
            #expect(stored.server == server && stored.teamId == app.bootstrap.teamId.lowercased)
            #expect(stored.deviceKey.hasPrefix("dk-") && stored.agentKey?.hasPrefix("ak-") == true)
            let device = SwitchyardClient(server: server, token: stored.deviceKey)
            #expect(try await device.me().emailAddress == app.bootstrap.emailAddress)

            try await login.revoke(deviceKey: stored.deviceKey)
            let refused = await #expect(throws: SwitchyardAPIError.self) { try await device.me() }
            #expect(refused?.status == 401)
        }
    }

    @Test("removing a member takes the team away from them")
    func removeMember() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let (server, owner) = try await Self.owner(app, client)
            let invitation = try await owner.invite(emailAddress: "ada@example.org", role: .viewer)
            let accepted = try await SwitchyardClient.acceptInvitation(server: server, token: try #require(invitation.token), password: "pw-for-ada")
            let ada = SwitchyardClient(server: server, token: accepted.accessToken, teamId: app.bootstrap.teamId.lowercased)
            #expect(try await ada.currentTeam().role == .viewer)
            try await owner.removeMember(accepted.userId)
            #expect(try await owner.members().items.map(\.userId) == [try await owner.me().id])
            let refused = await #expect(throws: SwitchyardAPIError.self) { try await ada.currentTeam() }
            #expect(refused?.status == 403 || refused?.status == 404)
        }
    }
}
