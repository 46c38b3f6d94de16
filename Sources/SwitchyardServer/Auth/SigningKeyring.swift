import Foundation
import SwitchyardCore

/// The keys that sign user sessions (docs/security.md, "Rotating the session-signing key"). The first signs new
/// tokens; each token names its key in the JWT header (`kid`). A key replaced by `switchyard secrets rotate` keeps
/// verifying until `retiresAt` (the rotation's overlap), so sessions signed with it end no earlier than that, and
/// is dropped by the next rotation after it retired. The ring is stored sealed with the secrets key in one
/// settings row, so every replica reads the same ring.
struct SigningKeyring: Codable, Sendable, Equatable {
    struct Key: Codable, Sendable, Equatable {
        var kid: String
        /// Base64 of 64 random bytes.
        var secret: String
        var createdAt: Date
        /// When it stops verifying; nil while it is the signing key.
        var retiresAt: Date?

        var secretBytes: Data? { Data(base64Encoded: secret).flatMap { $0.count >= 32 ? $0 : nil } }
    }

    /// Newest first: `keys[0]` signs.
    var keys: [Key]

    /// The key a deployment had before keys were named (the `session_signing_secret` setting): tokens without a
    /// `kid` are its.
    static let unnamedKid = "s0"

    static func newKey(at now: Date) -> Key {
        var random = SystemRandomNumberGenerator()
        let secret = Data((0..<64).map { _ in UInt8.random(in: 0...255, using: &random) }).base64EncodedString()
        let kid = "k" + (0..<12).map { _ in String(UInt8.random(in: 0...15, using: &random), radix: 16) }.joined()
        return Key(kid: kid, secret: secret, createdAt: now, retiresAt: nil)
    }

    /// A new signing key first; the one it replaces verifies until `now + overlap`; keys already retired are dropped.
    func rotated(at now: Date, overlap: TimeInterval) -> SigningKeyring {
        var kept = keys.filter { $0.retiresAt.map { $0 > now } ?? true }
        if !kept.isEmpty, kept[0].retiresAt == nil { kept[0].retiresAt = now.addingTimeInterval(max(0, overlap)) }
        return SigningKeyring(keys: [Self.newKey(at: now)] + kept)
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    static func decode(_ text: String) throws -> SigningKeyring {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        let ring = try decoder.decode(SigningKeyring.self, from: Data(text.utf8))
        guard let first = ring.keys.first, first.secretBytes != nil, ring.keys.allSatisfy({ $0.secretBytes != nil }) else {
            throw ServerConfiguration.Invalid(description: "the stored session signing keys are malformed (a key shorter than 32 bytes, or none)")
        }
        return ring
    }

    /// The stored ring, made on first use: from the deployment's older single secret when there is one (so its
    /// sessions stay valid, as key `s0`), else with a new key.
    static func load(storage: any SwitchyardStorage, secrets: SecretBox, clock: any WallClock) async throws -> SigningKeyring {
        let now = clock.now()
        var first = SigningKeyring(keys: [Self.newKey(at: now)])
        if try await storage.setting(SettingKey.sessionSigningKeys) == nil, try await storage.setting(SettingKey.sessionSigningSecret) != nil {
            let older = try await secrets.sealedSetting(SettingKey.sessionSigningSecret, in: storage) { "" }
            first = SigningKeyring(keys: [Key(kid: Self.unnamedKid, secret: older, createdAt: now, retiresAt: nil)])
        }
        let encoded = try first.encoded()
        return try decode(try await secrets.sealedSetting(SettingKey.sessionSigningKeys, in: storage) { encoded })
    }

    /// Rotates the stored ring (compare-and-set, so two rotations at once both land); the ring before and after.
    static func rotate(
        storage: any SwitchyardStorage, secrets: SecretBox, clock: any WallClock, overlap: TimeInterval
    ) async throws -> (before: SigningKeyring, after: SigningKeyring) {
        _ = try await load(storage: storage, secrets: secrets, clock: clock)
        let binding = SecretBox.binding(forSetting: SettingKey.sessionSigningKeys)
        while true {
            guard let stored = try await storage.setting(SettingKey.sessionSigningKeys) else {
                throw ServerConfiguration.Invalid(description: "the session signing keys vanished from the settings table")
            }
            let before = try decode(try secrets.open(stored, boundTo: binding))
            let after = before.rotated(at: clock.now(), overlap: overlap)
            if try await storage.replaceSetting(
                SettingKey.sessionSigningKeys, from: stored, to: try secrets.seal(try after.encoded(), boundTo: binding))
            {
                return (before, after)
            }
        }
    }
}

/// What `switchyard secrets rotate` did.
public struct SessionKeyRotation: Sendable {
    /// The key that signs from now on.
    public var signingKid: String
    /// The keys that still verify, with when each retires.
    public var retiring: [(kid: String, retiresAt: Date)]
    /// Keys that had retired and were removed.
    public var dropped: [String]
}

/// Replaces the session-signing key (docs/security.md): a new key signs from now on; the one it replaces still
/// verifies for `overlap` seconds, so sessions it signed end no earlier than that. Running servers pick the new
/// key up within `SessionTokens.refreshInterval` (and at once for a token that names it).
public func rotateSessionSigningKey(
    configuration: ServerConfiguration, storage: any SwitchyardStorage, overlap: TimeInterval, clock: any WallClock = SystemWallClock()
) async throws -> SessionKeyRotation {
    let secrets = try SecretBox.load(configuration: configuration)
    let (before, after) = try await SigningKeyring.rotate(storage: storage, secrets: secrets, clock: clock, overlap: overlap)
    let kept = Set(after.keys.map(\.kid))
    return SessionKeyRotation(
        signingKid: after.keys[0].kid,
        retiring: after.keys.dropFirst().compactMap { key in key.retiresAt.map { (key.kid, $0) } },
        dropped: before.keys.map(\.kid).filter { !kept.contains($0) })
}
