import Crypto
import Foundation
import SwitchyardCore

/// Hashes stored secrets: SHA-256 (hex) for high-entropy API keys, bcrypt for passwords.
public enum SecretHasher {
    /// SHA-256 of an API key, lowercase hex. Keys carry ≥256 random bits, so a fast hash is safe.
    public static func keyHash(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Array(secret.utf8)))
    }

    /// bcrypt, on its own bounded pool (it is deliberately slow; `PasswordHashing`).
    static func hashPassword(_ password: String, cost: Int, refusable: Bool = true) async throws -> String {
        try await PasswordHashing.hash(password, cost: cost, refusable: refusable)
    }

    static func verifyPassword(_ password: String, hash: String) async throws -> Bool {
        try await PasswordHashing.verify(password, hash: hash)
    }
}
