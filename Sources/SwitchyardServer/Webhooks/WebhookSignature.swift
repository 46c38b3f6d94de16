import Crypto
import Foundation
import SwitchyardCore

/// The two signature schemes every delivery carries (docs/webhooks.md):
/// - `X-Webhook-Signature-256: sha256=<hex>`: HMAC-SHA256 of the raw body keyed by the whole `whsec_…` secret,
///   as Cyberun documents it;
/// - Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>`, an HMAC-SHA256 of
///   `id.timestamp.body` keyed by the base64-decoded part of the secret after `whsec_`, so receivers can reject
///   replays and use the standard's libraries.
public enum WebhookSignature {
    public static let secretPrefix = "whsec_"

    /// A fresh secret: `whsec_` and 32 random bytes in base64.
    public static func makeSecret() -> String {
        secretPrefix + SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// `sha256=<hex>` of `body`.
    public static func cyberun(secret: String, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + Hex.encode(mac)
    }

    /// `v1,<base64>` over `id.timestamp.body`. The key is the base64 after `whsec_`; a secret that is not base64
    /// (never one Switchyard made) is used as its UTF-8 bytes.
    public static func standard(secret: String, id: String, timestamp: Int, body: [UInt8]) -> String {
        let encoded = secret.hasPrefix(secretPrefix) ? String(secret.dropFirst(secretPrefix.count)) : secret
        let key = Data(base64Encoded: encoded) ?? Data(secret.utf8)
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }

    /// The headers of one attempt, in the order they are sent.
    public static func headers(secret: String, id: String, timestamp: Int, body: [UInt8]) -> [(String, String)] {
        [
            ("X-Webhook-Signature-256", cyberun(secret: secret, body: body)),
            ("webhook-id", id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", standard(secret: secret, id: id, timestamp: timestamp, body: body)),
        ]
    }
}
