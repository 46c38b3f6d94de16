import Crypto
import Foundation
import SwitchyardCore

/// Encrypts secrets the server must read back (webhook signing secrets, the session-signing secret, the embedded
/// store's secret key) with AES-256-GCM before they are stored.
/// The key comes from `secrets.key` (base64, 32 bytes; the same on every replica) or, when that is not set,
/// from `<data.dir>/secrets.key`, created on first use with mode 0600 — so a copy of the database alone does
/// not reveal the secrets. Each sealed value is bound to the id of its row (associated data): a sealed secret
/// moved to another row does not open.
struct SecretBox: Sendable {
    private let key: SymmetricKey
    static let version = "v1."

    init(key: SymmetricKey) {
        self.key = key
    }

    /// The key `configuration` names, or the data directory's key file (created when missing).
    static func load(configuration: ServerConfiguration) throws -> SecretBox {
        if let encoded = configuration.secretsKey {
            guard let data = Data(base64Encoded: encoded), data.count == 32 else {
                throw ServerConfiguration.Invalid(description: "secrets.key must be 32 bytes, base64-encoded (openssl rand -base64 32)")
            }
            return SecretBox(key: SymmetricKey(data: data))
        }
        let path = (configuration.dataDirectory as NSString).appendingPathComponent("secrets.key")
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw ServerConfiguration.Invalid(description: "\(path) does not hold a base64-encoded 32-byte key")
            }
            return SecretBox(key: SymmetricKey(data: data))
        }
        let fresh = SymmetricKey(size: .bits256)
        let encoded = fresh.withUnsafeBytes { Data($0).base64EncodedString() }
        guard FileManager.default.createFile(atPath: path, contents: Data((encoded + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ServerConfiguration.Invalid(description: "could not write \(path)")
        }
        // Another process may have won the race to create it; whatever is on disk now is the key.
        return try load(configuration: configuration)
    }

    func seal(_ plaintext: String, boundTo id: UUID) throws -> String {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: key, authenticating: Data(id.lowercased.utf8))
        guard let combined = box.combined else { throw SealError() }
        return Self.version + combined.base64EncodedString()
    }

    func open(_ sealed: String, boundTo id: UUID) throws -> String {
        guard sealed.hasPrefix(Self.version), let combined = Data(base64Encoded: String(sealed.dropFirst(Self.version.count))) else {
            throw SealError()
        }
        let plaintext = try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key, authenticating: Data(id.lowercased.utf8))
        return String(decoding: plaintext, as: UTF8.self)
    }

    /// A deployment-wide secret kept in the settings table sealed with this box (bound to its key's name): the
    /// stored value, or `fresh()` stored sealed when there is none. A value stored in clear by an older version is
    /// sealed in place (compare-and-set, so replicas upgrading together agree).
    func sealedSetting(_ key: String, in storage: any SwitchyardStorage, fresh: () -> String) async throws -> String {
        let binding = Self.binding(forSetting: key)
        var stored = try await storage.settingInsertingIfAbsent(key, value: try seal(fresh(), boundTo: binding))
        while !stored.hasPrefix(Self.version) {
            if try await storage.replaceSetting(key, from: stored, to: try seal(stored, boundTo: binding)) { return stored }
            stored = try await storage.setting(key) ?? stored
        }
        return try open(stored, boundTo: binding)
    }

    /// An HMAC-SHA256 of `message` under a key derived from this box's key for `purpose` (hex): the same on every
    /// replica, and a tag for one purpose says nothing about another's.
    func tag(_ message: String, purpose: String) -> String {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: key, info: Data("switchyard.\(purpose)".utf8), outputByteCount: 32)
        return HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: derived).map { String(format: "%02x", $0) }.joined()
    }

    /// A stable id for a setting's name, so a sealed value moved to another setting does not open.
    static func binding(forSetting key: String) -> UUID {
        let digest = Array(SHA256.hash(data: Data("switchyard.setting.\(key)".utf8)))
        return UUID(
            uuid: (
                digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7], digest[8], digest[9], digest[10], digest[11],
                digest[12], digest[13], digest[14], digest[15]
            ))
    }

    struct SealError: Error, CustomStringConvertible {
        var description: String { "a sealed secret could not be opened (wrong secrets.key?)" }
    }
}
