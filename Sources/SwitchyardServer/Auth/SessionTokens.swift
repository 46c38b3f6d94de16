import Foundation
import JWTKit
import SwitchyardCore
import Synchronization

/// Issues and checks user-session JWTs: HS256 with the key ring's signing key, named in the header (`kid`), so a
/// token is checked with exactly the key it names — and only while that key has not retired (`SigningKeyring`).
/// The ring lives in the database, so every replica accepts every other's tokens; each re-reads it when its copy
/// is `refreshInterval` old, and sooner (once its copy is `unknownKidReloadInterval` old) when a token names a key
/// it has not seen, so a rotation reaches every replica within 30 s, without a restart.
final class SessionTokens: Sendable {
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

    /// One key, ready to sign or verify.
    private struct Signer: Sendable {
        let kid: String
        let keys: JWTKeyCollection
        let retiresAt: Date?
    }

    private struct Ring: Sendable {
        var signer: Signer
        var verifiers: [String: Signer]
        /// The encoded JWS header this server writes for each key (and, for `s0`, the header without a `kid` that
        /// versions before named keys wrote) → its kid: the common case finds the key without decoding the header.
        var headers: [Substring: String]
        var loadedAt: Date
        var lastReload: Date
    }

    static let refreshInterval: TimeInterval = 30
    static let unknownKidReloadInterval: TimeInterval = 5

    /// Nil until `load()` (the server's start) reads the ring.
    private let ring: Mutex<Ring?>
    private let reload: @Sendable () async throws -> SigningKeyring
    private let clock: any WallClock
    let lifetime: TimeInterval

    /// `reload` reads the stored ring (the server's: `SigningKeyring.load`); `load()` reads it the first time.
    init(lifetime: TimeInterval, clock: any WallClock, reload: @escaping @Sendable () async throws -> SigningKeyring) {
        self.ring = Mutex(nil)
        self.reload = reload
        self.lifetime = lifetime
        self.clock = clock
    }

    /// Reads the ring (at the server's start, before it listens); a failure fails the start.
    func load() async throws {
        let now = clock.now()
        let fresh = await Self.prepare(try await reload(), at: now)
        ring.withLock { $0 = fresh }
    }

    private static func prepare(_ keyring: SigningKeyring, at now: Date) async -> Ring {
        var verifiers: [String: Signer] = [:]
        var headers: [Substring: String] = [:]
        let sample = Claims(sub: SubjectClaim(value: "-"), iat: IssuedAtClaim(value: now), exp: ExpirationClaim(value: now), typ: "-", ver: 0)
        for key in keyring.keys {
            guard let secret = key.secretBytes else { continue }
            let keys = JWTKeyCollection()
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            verifiers[key.kid] = Signer(kid: key.kid, keys: keys, retiresAt: key.retiresAt)
            var kids: [String?] = [key.kid]
            if key.kid == SigningKeyring.unnamedKid { kids.append(nil) }
            for kid in kids {
                if let token = try? await keys.sign(sample, kid: kid.map { JWKIdentifier(string: $0) }) {
                    headers[Self.header(of: token)] = key.kid
                }
            }
        }
        return Ring(signer: verifiers[keyring.keys[0].kid]!, verifiers: verifiers, headers: headers, loadedAt: now, lastReload: now)
    }

    private static func header(of token: String) -> Substring {
        token[..<(token.firstIndex(of: ".") ?? token.endIndex)]
    }

    /// Re-reads the ring when the copy here is older than `maximumAge` and no other read started in the last
    /// second; a failed read keeps the copy (and is tried again a second later).
    private func refresh(ifOlderThan maximumAge: TimeInterval) async {
        let now = clock.now()
        let due = ring.withLock { ring in
            guard var current = ring else { return false }
            guard now.timeIntervalSince(current.loadedAt) >= maximumAge, now.timeIntervalSince(current.lastReload) >= 1 else { return false }
            current.lastReload = now
            ring = current
            return true
        }
        guard due, let keyring = try? await reload() else { return }
        let fresh = await Self.prepare(keyring, at: now)
        ring.withLock { $0 = fresh }
    }

    /// A token for `userId` under the user's current token `version`, and the instant it expires.
    func issue(userId: UUID, version: Int = 0) async throws -> (token: String, expiresAt: Date) {
        await refresh(ifOlderThan: Self.refreshInterval)
        guard let signer = ring.withLock({ $0?.signer }) else { throw SwitchyardError.unavailable("the server is starting") }
        // JWT NumericDate: whole seconds.
        let now = Date(timeIntervalSince1970: clock.now().timeIntervalSince1970.rounded(.down))
        let expiresAt = now.addingTimeInterval(lifetime.rounded(.down))
        let claims = Claims(
            sub: SubjectClaim(value: userId.lowercased), iat: IssuedAtClaim(value: now), exp: ExpirationClaim(value: expiresAt),
            typ: "session", ver: version
        )
        return (try await signer.keys.sign(claims, kid: JWKIdentifier(string: signer.kid)), expiresAt)
    }

    /// The user id and token version of a valid, unexpired session token, or nil. Whether the version is still
    /// the user's is for the caller to check (`user(of:in:)`).
    func verify(_ token: String) async -> (userId: UUID, version: Int)? {
        await refresh(ifOlderThan: Self.refreshInterval)
        let header = Self.header(of: token)
        let kid = ring.withLock { $0?.headers[header] } ?? Self.kid(of: token) ?? SigningKeyring.unnamedKid
        var signer = ring.withLock { $0?.verifiers[kid] }
        if signer == nil {
            await refresh(ifOlderThan: Self.unknownKidReloadInterval)
            signer = ring.withLock { $0?.verifiers[kid] }
        }
        let now = clock.now()
        guard let signer, signer.retiresAt.map({ $0 > now }) ?? true,
            let claims = try? await signer.keys.verify(token, as: Claims.self), claims.typ == "session",
            claims.exp.value > now, let userId = UUID(uuidString: claims.sub.value)
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

    /// The `kid` of a compact JWS's header, or nil when it has none (or the header does not parse).
    static func kid(of token: String) -> String? {
        guard let header = token.split(separator: ".", maxSplits: 1).first, header.utf8.count <= 1024 else { return nil }
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let header = try? JSONValue.parse(data) else { return nil }
        return header["kid"]?.stringValue
    }
}
