import Crypto
import Foundation
import HummingbirdBcrypt
import NIOPosix
import SwitchyardCore

/// Hashes stored secrets: SHA-256 (hex) for high-entropy API keys, bcrypt for passwords.
public enum SecretHasher {
    /// SHA-256 of an API key, lowercase hex. Keys carry ≥256 random bits, so a fast hash is safe.
    public static func keyHash(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Array(secret.utf8)))
    }

    /// bcrypt, off the cooperative pool (it is deliberately slow).
    static func hashPassword(_ password: String, cost: Int) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: UInt8(cost)) }
    }

    static func verifyPassword(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
