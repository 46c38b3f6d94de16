import Foundation
import Hummingbird
import SwitchyardCore

/// `POST /invitations/accept` (docs/teams.md): the invitation token is the authority. A new address gets an
/// account (a password is required); an existing account proves itself with its password or a session of that
/// user. The answer signs the user in.
struct InvitationAcceptController {
    let storage: any SwitchyardStorage
    let sessions: SessionTokens
    let clock: any WallClock
    let bcryptCost: Int
    let limiter: RateLimiter

    static let minimumPasswordLength = 8

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("invitations/accept", use: accept)
    }

    /// The answer: the membership, and a session of the user.
    struct Accepted: ResponseEncodable {
        let teamId: UUID
        let userId: UUID
        let memberRole: String
        let accountCreated: Bool
        let accessToken: String
        let tokenType = "Bearer"
        let expiresAt: Date
    }

    @Sendable func accept(_ request: Request, context: SwitchyardRequestContext) async throws -> Accepted {
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let token = try fields.required("invitation_token") { key throws(SwitchyardError) in try fields.string(key, length: 1...200) }
        let now = clock.now()
        let tokenHash = SecretHasher.keyHash(token)
        try limiter.take(
            [
                ("accept address \(limiter.clientAddress(request, context))", limiter.rules.acceptPerAddress),
                ("accept invitation \(tokenHash)", limiter.rules.acceptPerInvitation),
            ], what: "invitation")
        guard let invitation = try await storage.invitation(tokenHash: tokenHash, at: now) else {
            throw SwitchyardError.notFound("invitation not found: it was used, cancelled or has expired")
        }
        let password = try fields.string("password", length: 1...1024)
        var newUser: User?
        let userId: UUID
        var tokenVersion = 0
        if let existing = try await storage.user(emailAddress: invitation.emailAddress) {
            userId = existing.id
            tokenVersion = existing.tokenVersion
            let sessionUser = await bearerSessionUser(request)
            var proven = sessionUser == existing.id
            if !proven, let password { proven = try await SecretHasher.verifyPassword(password, hash: existing.passwordHash) }
            guard proven else {
                throw SwitchyardError.unauthenticated(
                    "\(invitation.emailAddress) already has an account: send its \"password\" or a session token of that user to accept")
            }
        } else {
            guard let password else {
                throw SwitchyardError.invalid("field \"password\" is required: it creates the account for \(invitation.emailAddress)")
            }
            guard password.count >= Self.minimumPasswordLength else {
                throw SwitchyardError.invalid("field \"password\" must be at least \(Self.minimumPasswordLength) characters long")
            }
            let firstName = try fields.string("first_name", length: 0...100, trim: true) ?? ""
            let lastName = try fields.string("last_name", length: 0...100, trim: true) ?? ""
            let fullName = [firstName, lastName].filter { !$0.isEmpty }.joined(separator: " ")
            let displayName =
                try fields.string("display_name", length: 1...100, trim: true) ?? (fullName.isEmpty ? invitation.emailAddress : fullName)
            userId = UUIDv7.make(at: now)
            newUser = User(
                id: userId, emailAddress: invitation.emailAddress, firstName: firstName, lastName: lastName, displayName: displayName,
                passwordHash: try await SecretHasher.hashPassword(password, cost: bcryptCost), createdAt: now, updatedAt: now)
        }
        guard try await storage.acceptInvitation(id: invitation.id, userId: userId, newUser: newUser, at: now) else {
            throw SwitchyardError.notFound("invitation not found: it was used, cancelled or has expired")
        }
        context.logger.info("invitation accepted", metadata: ["invitation_id": "\(invitation.id.lowercased)", "user_id": "\(userId.lowercased)"])
        let session = try await sessions.issue(userId: userId, version: tokenVersion)
        return Accepted(
            teamId: invitation.teamId, userId: userId, memberRole: invitation.role.rawValue, accountCreated: newUser != nil,
            accessToken: session.token, expiresAt: session.expiresAt)
    }

    private func bearerSessionUser(_ request: Request) async -> UUID? {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        return try? await sessions.user(of: token, in: storage)?.id
    }
}
