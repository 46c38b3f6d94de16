import Foundation
import JWTKit
import SwitchyardCore

/// Issues and checks user-session JWTs (HS256 with a ≥32-byte secret persisted in the database, so every
/// replica accepts every other's tokens).
struct SessionTokens: Sendable {
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        var typ: String
        /// The user's token version when it was issued (absent in tokens of older versions: 0).
        var ver: Int?

        // Expiry is checked against the injected clock in `verify(_:)`, not the system clock here.
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    private let keys: JWTKeyCollection
    private let clock: any WallClock
    let lifetime: TimeInterval

    init(secret: Data, lifetime: TimeInterval, clock: any WallClock) async {
        precondition(secret.count >= 32, "session signing secret must be at least 32 bytes")
        self.keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.lifetime = lifetime
        self.clock = clock
    }

    /// A token for `userId` under the user's current token `version`, and the instant it expires.
    func issue(userId: UUID, version: Int = 0) async throws -> (token: String, expiresAt: Date) {
        // JWT NumericDate: whole seconds.
        let now = Date(timeIntervalSince1970: clock.now().timeIntervalSince1970.rounded(.down))
        let expiresAt = now.addingTimeInterval(lifetime.rounded(.down))
        let claims = Claims(
            sub: SubjectClaim(value: userId.lowercased), iat: IssuedAtClaim(value: now), exp: ExpirationClaim(value: expiresAt),
            typ: "session", ver: version
        )
        return (try await keys.sign(claims), expiresAt)
    }

    /// The user id and token version of a valid, unexpired session token, or nil. Whether the version is still
    /// the user's is for the caller to check (`user(of:in:)`).
    func verify(_ token: String) async -> (userId: UUID, version: Int)? {
        guard let claims = try? await keys.verify(token, as: Claims.self), claims.typ == "session",
            claims.exp.value > clock.now(), let userId = UUID(uuidString: claims.sub.value)
        else { return nil }
        return (userId, claims.ver ?? 0)
    }

    /// The user a session token stands for: valid, unexpired, and issued under the user's current token version
    /// (signing out everywhere and a password change end older tokens).
    func user(of token: String, in storage: any SwitchyardStorage) async throws -> User? {
        guard let (userId, version) = await verify(token), let user = try await storage.user(id: userId), user.tokenVersion == version else {
            return nil
        }
        return user
    }
}
