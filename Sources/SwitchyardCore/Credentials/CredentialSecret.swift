/// Makes and inspects raw key secrets: a kind prefix plus 44 base62 characters (≈262 bits of randomness).
public enum CredentialSecret {
    /// Length of the stored, displayable `key_prefix` (api.md §2.9).
    public static let displayPrefixLength = 12
    static let randomLength = 44
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A fresh secret of `kind`.
    public static func generate(kind: CredentialKind) -> String {
        var generator = SystemRandomNumberGenerator()
        return generate(kind: kind, using: &generator)
    }

    /// A fresh secret of `kind` from `generator`.
    public static func generate(kind: CredentialKind, using generator: inout some RandomNumberGenerator) -> String {
        kind.secretPrefix + randomString(length: randomLength, using: &generator)
    }

    /// A random base62 string (rejection sampling, so every character is uniform).
    public static func randomString(length: Int, using generator: inout some RandomNumberGenerator) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        while bytes.count < length {
            let byte = UInt8.random(in: 0...255, using: &generator)
            if byte < 248 { bytes.append(alphabet[Int(byte % 62)]) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first 12 characters, the only part of a secret that is ever shown again.
    public static func displayPrefix(of secret: String) -> String {
        String(secret.prefix(displayPrefixLength))
    }

    /// True when `value` has the shape of a full secret (a known prefix and the random part).
    public static func looksLikeSecret(_ value: String) -> Bool {
        guard let kind = CredentialKind(secret: value) else { return false }
        return value.count == kind.secretPrefix.count + randomLength
    }
}
