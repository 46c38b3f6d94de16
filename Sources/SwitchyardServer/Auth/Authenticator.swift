import Foundation
import Hummingbird
import Logging
import SwitchyardCore

/// Turns a bearer token into a `Caller` for one access surface, applying api.md §1.2: the credential kind
/// must be accepted there; sessions name their team with `X-Team-ID` (400 without it, 403 outside it);
/// `sk-`/`dk-` carry their team and any `X-Team-ID` is ignored; `ak-` is refused on every REST route.
struct Authenticator: Sendable {
    let storage: any SwitchyardStorage
    let sessions: SessionTokens
    let clock: any WallClock
    let logger: Logger
    /// `sk-` keys seen recently (device keys are re-read: they also need their user's membership).
    let keyCache: CredentialCache
    /// `last_used_at` is written at most this often per key, to keep the hot path read-only.
    var lastUsedGranularity: TimeInterval = 60
    /// Signed-in browsers (the dashboard's cookies); nil accepts only `Authorization`.
    var browser: BrowserSessions?

    /// A request's caller: its `Authorization` header, or — without one — a dashboard browser's session cookie
    /// (every surface but `/mcp`), which must bring its CSRF token on anything but GET/HEAD/OPTIONS and names its
    /// team with `X-Team-ID` or the team cookie.
    func authenticate(_ request: Request, surface: AccessSurface) async throws -> Caller {
        if let browser, surface != .mcp, let token = BrowserSessions.sessionToken(request) {
            if !BrowserSessions.isSafe(request.method) {
                guard browser.csrfMatches(request.headers[BrowserSessions.csrfHeader], sessionToken: token) else {
                    throw SwitchyardError.forbidden(
                        "missing or wrong CSRF token: a signed-in browser sends the page's X-CSRF-Token with every change")
                }
            }
            let team = request.headers[.teamID] ?? BrowserSessions.cookies(request)[BrowserSessions.teamCookie]
            return try await authenticate(authorization: "Bearer " + token, teamHeader: team, surface: surface)
        }
        return try await authenticate(authorization: request.headers[.authorization], teamHeader: request.headers[.teamID], surface: surface)
    }

    func authenticate(authorization: String?, teamHeader: String?, surface: AccessSurface) async throws -> Caller {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else {
            throw SwitchyardError.unauthenticated("missing credentials: send Authorization: Bearer <token>")
        }
        let token = authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { throw SwitchyardError.unauthenticated("missing credentials: the bearer token is empty") }
        // Keys ignore the header's value, but a malformed one is refused for every caller: a client that sends it
        // means something by it.
        if let teamHeader, UUID(text: teamHeader) == nil {
            throw SwitchyardError.invalid("X-Team-ID header \"\(teamHeader.prefix(64))\" is not a team id (a UUID)")
        }

        if let kind = CredentialKind(secret: token) {
            return try await authenticateKey(token, kind: kind, surface: surface)
        }
        return try await authenticateSession(token, teamHeader: teamHeader, surface: surface)
    }

    private func authenticateKey(_ secret: String, kind: CredentialKind, surface: AccessSurface) async throws -> Caller {
        guard kind != .agent else {
            throw SwitchyardError.unauthenticated("agent keys (ak-) are accepted only by the agent gateway, not by the REST API")
        }
        let now = clock.now()
        let keyHash = SecretHasher.keyHash(secret)
        var found = kind == .integration ? keyCache.credential(keyHash: keyHash, now: now) : nil
        if found == nil {
            found = try await storage.credential(keyHash: keyHash)
            if let found, kind == .integration, found.status(at: now) == .active { keyCache.store(found, now: now) }
        }
        guard let credential = found, credential.kind == kind, credential.status(at: now) == .active else {
            throw SwitchyardError.unauthenticated("invalid, expired or revoked credential")
        }
        let callerKind: Caller.Kind = kind == .device ? .device : .integration
        guard surface.accepts(callerKind) else {
            throw SwitchyardError.unauthenticated("this endpoint accepts \(surface.acceptedDescription); \(kind.secretPrefix) keys are not accepted")
        }
        var caller = Caller(kind: callerKind, userId: credential.userId, credentialId: credential.id, teamId: credential.teamId, role: nil)
        if kind == .device {
            // A device key acts as its user: removal from the team ends it at once (api.md §3.9).
            guard let userId = credential.userId, let role = try await storage.role(userId: userId, teamId: credential.teamId) else {
                throw SwitchyardError.unauthenticated("invalid, expired or revoked credential")
            }
            caller.role = role
        }
        if credential.lastUsedAt.map({ now.timeIntervalSince($0) >= lastUsedGranularity }) ?? true {
            do {
                try await storage.markCredentialUsed(id: credential.id, at: now)
                keyCache.markUsed(keyHash: keyHash, at: now)
            } catch {
                logger.warning("could not record credential use", metadata: ["credential_id": "\(credential.id.lowercased)", "error": "\(error)"])
            }
        }
        return caller
    }

    private func authenticateSession(_ token: String, teamHeader: String?, surface: AccessSurface) async throws -> Caller {
        guard surface.accepts(.session) else {
            throw SwitchyardError.unauthenticated("this endpoint accepts \(surface.acceptedDescription); session tokens are not accepted")
        }
        guard let userId = try await sessions.user(of: token, in: storage)?.id else {
            throw SwitchyardError.unauthenticated("invalid or expired session token; sign in again with POST /api/v1/auth/login")
        }
        var caller = Caller(kind: .session, userId: userId, credentialId: nil, teamId: nil, role: nil)
        guard surface.sessionNeedsTeam else { return caller }
        guard let teamHeader, !teamHeader.isEmpty else {
            throw SwitchyardError.invalid("X-Team-ID header is required with a session token on this endpoint")
        }
        guard let teamId = UUID(text: teamHeader) else {
            throw SwitchyardError.invalid("X-Team-ID header: \"\(teamHeader)\" is not a UUID")
        }
        guard let role = try await storage.role(userId: userId, teamId: teamId) else {
            throw SwitchyardError.forbidden("you are not a member of team \(teamId.lowercased)")
        }
        caller.teamId = teamId
        caller.role = role
        return caller
    }
}
