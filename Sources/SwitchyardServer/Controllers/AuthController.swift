import Foundation
import Hummingbird
import SwitchyardCore

/// `POST /auth/login`: email and password for a session token.
struct AuthController {
    let storage: any SwitchyardStorage
    let sessions: SessionTokens
    /// A bcrypt hash of a random password at the configured cost, checked when the email is unknown so that
    /// both failure paths take the same time.
    let decoyPasswordHash: StartupValue<String>
    let limiter: RateLimiter

    struct LoginRequest: Decodable {
        let emailAddress: String?
        let password: String?

        enum CodingKeys: String, CodingKey {
            case emailAddress = "email_address"
            case password
        }
    }

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("login", use: login)
    }

    @Sendable func login(_ request: Request, context: SwitchyardRequestContext) async throws -> IssuedSession {
        let body = try await request.decode(as: LoginRequest.self, context: context)
        guard let email = body.emailAddress?.trimmingCharacters(in: .whitespaces), !email.isEmpty else {
            throw SwitchyardError.invalid("field \"email_address\" is required")
        }
        guard let password = body.password, !password.isEmpty else {
            throw SwitchyardError.invalid("field \"password\" is required")
        }
        let rules = limiter.rules
        try limiter.take(
            [
                ("login address \(limiter.clientAddress(request, context))", rules.loginPerAddress),
                ("login account \(email.lowercased())", rules.loginPerAccount),
            ], what: "sign-in")
        let user = try await storage.user(emailAddress: email)
        let matches = try await SecretHasher.verifyPassword(password, hash: user?.passwordHash ?? decoyPasswordHash.current)
        guard let user, matches else {
            throw SwitchyardError.unauthenticated("email address or password is wrong")
        }
        let session = try await sessions.issue(userId: user.id, version: user.tokenVersion)
        return IssuedSession(accessToken: session.token, expiresAt: session.expiresAt)
    }
}
