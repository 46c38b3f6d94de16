import Crypto
import Foundation
import HummingbirdBcrypt
import NIOPosix

/// Hashes stored secrets: SHA-256 (hex) for high-entropy API keys, bcrypt for passwords.
public enum SecretHasher {
    /// SHA-256 of an API key, lowercase hex. Keys carry ≥256 random bits, so a fast hash is safe.
    public static func keyHash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// bcrypt, off the cooperative pool (it is deliberately slow).
    static func hashPassword(_ password: String, cost: Int) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: UInt8(cost)) }
    }

    static func verifyPassword(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
