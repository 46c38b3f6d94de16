import Foundation
import Hummingbird
import SwitchyardCore

/// The signed-in user's own account (docs/security.md): `POST /users/me/sign-out-everywhere` ends every session of
/// the user, and `PUT /users/me/password` changes the password and ends every other session. Both need a user
/// session — a `dk-` device key is revoked on its own (`/auth/device/revoke`, `DELETE /credentials/{id}`).
struct AccountController {
    let storage: any SwitchyardStorage
    let sessions: SessionTokens
    let clock: any WallClock
    let limiter: RateLimiter
    let bcryptCost: Int

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("users/me/sign-out-everywhere", use: signOutEverywhere)
        group.put("users/me/password", use: changePassword)
    }

    private func sessionUser(_ context: SwitchyardRequestContext, to action: String) throws -> UUID {
        let caller = try context.requireCaller()
        guard caller.kind == .session, let userId = caller.userId else {
            throw SwitchyardError.forbidden("\(action) needs a user session (POST /api/v1/auth/login), not a device key")
        }
        return userId
    }

    @Sendable func signOutEverywhere(_ request: Request, context: SwitchyardRequestContext) async throws -> Success {
        let userId = try sessionUser(context, to: "signing out everywhere")
        guard try await storage.endSessions(userId: userId, newPasswordHash: nil, at: clock.now()) != nil else {
            throw SwitchyardError.unauthenticated("invalid or expired session token; sign in again with POST /api/v1/auth/login")
        }
        context.logger.info("signed out everywhere", metadata: ["user_id": "\(userId.lowercased)"])
        return Success(message: "Every session of this account has ended, this one too.")
    }

    @Sendable func changePassword(_ request: Request, context: SwitchyardRequestContext) async throws -> IssuedSession {
        let userId = try sessionUser(context, to: "changing the password")
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let current = try fields.required("current_password") { key throws(SwitchyardError) in try fields.string(key, length: 1...1024) }
        let new = try fields.required("new_password") { key throws(SwitchyardError) in try fields.string(key, length: 1...1024) }
        guard new.count >= InvitationAcceptController.minimumPasswordLength else {
            throw SwitchyardError.invalid(
                "field \"new_password\" must be at least \(InvitationAcceptController.minimumPasswordLength) characters long")
        }
        try limiter.take([("password user \(userId.lowercased)", limiter.rules.loginPerAccount)], what: "password change")
        guard let user = try await storage.user(id: userId) else { throw SwitchyardError.unauthenticated("the account no longer exists") }
        guard try await SecretHasher.verifyPassword(current, hash: user.passwordHash) else {
            throw SwitchyardError.forbidden("field \"current_password\" does not match the account's password")
        }
        let hash = try await SecretHasher.hashPassword(new, cost: bcryptCost)
        guard let version = try await storage.endSessions(userId: userId, newPasswordHash: hash, at: clock.now()) else {
            throw SwitchyardError.unauthenticated("the account no longer exists")
        }
        context.logger.info("password changed; other sessions ended", metadata: ["user_id": "\(userId.lowercased)"])
        let session = try await sessions.issue(userId: userId, version: version)
        return IssuedSession(accessToken: session.token, expiresAt: session.expiresAt)
    }
}
