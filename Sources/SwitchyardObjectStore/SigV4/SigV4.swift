import Crypto
import Foundation
import SwitchyardCore
import Synchronization

/// An S3 access key pair.
public struct S3Credentials: Sendable, Hashable {
    public var accessKeyId: String
    public var secretAccessKey: String

    public init(accessKeyId: String, secretAccessKey: String) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
    }
}

/// The pieces of AWS Signature Version 4 as S3 uses them, shared by the signer (client side) and the verifier
/// (the embedded store). References: AWS "Signature Version 4 for S3" (header and query authentication);
/// every function here is checked against AWS's published examples and botocore's output
/// (Tests/Fixtures/sigv4).
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash of a presigned request, and of header-signed requests that do not hash their body.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty string.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// The longest validity of a presigned URL S3 allows: seven days.
    public static let maximumExpiry = 604_800

    // MARK: Encoding

    /// S3's URI encoding: every byte of the UTF-8 except `A-Z a-z 0-9 - _ . ~` becomes `%XX` (uppercase), and
    /// `/` too unless `keepSlash` (object key paths keep theirs).
    public static func percentEncode(_ text: some StringProtocol, keepSlash: Bool) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count + 8)
        for byte in text.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                output.append(byte)
            } else {
                output.append(UInt8(ascii: "%"))
                output.append(upperHex[Int(byte >> 4)])
                output.append(upperHex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (a `+` stays a `+`: S3 clients encode spaces as `%20`). Nil for a malformed escape
    /// or bytes that are not UTF-8.
    public static func percentDecode(_ text: some StringProtocol) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return String(text) }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else { return nil }
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return String(validating: output, as: UTF8.self)
    }

    // MARK: Canonical request

    /// `key=value` pairs (decoded) encoded and sorted by key, then value, joined with `&`.
    public static func canonicalQuery(_ items: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = items.map { item in
            (percentEncode(item.name, keepSlash: false), percentEncode(item.value, keepSlash: false))
        }
        let sorted = encoded.sorted { left, right in left.name == right.name ? left.value < right.value : left.name < right.name }
        return sorted.map { item in item.name + "=" + item.value }.joined(separator: "&")
    }

    /// The canonical header block for `signedHeaders` (lowercase, sorted): `name:value\n` per header, values
    /// of repeated headers joined with `,`, trimmed, inner runs of spaces collapsed. Nil when a signed header
    /// is missing from `headers`.
    public static func canonicalHeaders(_ headers: [(name: String, value: String)], signedHeaders: [String]) -> String? {
        var values: [String: [String]] = [:]
        for header in headers {
            let name = header.name.lowercased()
            values[name, default: []].append(normalizedHeaderValue(header.value))
        }
        var block = ""
        for name in signedHeaders {
            guard let found = values[name] else { return nil }
            block += "\(name):\(found.joined(separator: ","))\n"
        }
        return block
    }

    public static func canonicalRequest(
        method: String, canonicalURI: String, canonicalQuery: String, canonicalHeaders: String, signedHeaders: [String], payloadHash: String
    ) -> String {
        "\(method)\n\(canonicalURI)\n\(canonicalQuery)\n\(canonicalHeaders)\n\(signedHeaders.joined(separator: ";"))\n\(payloadHash)"
    }

    // MARK: Signature

    /// `yyyymmdd/region/service/aws4_request`.
    public static func scope(date: String, region: String, service: String) -> String {
        "\(date)/\(region)/\(service)/aws4_request"
    }

    public static func stringToSign(timestamp: String, scope: String, canonicalRequest: String) -> String {
        "\(algorithm)\n\(timestamp)\n\(scope)\n\(Hex.encode(SHA256.hash(data: Array(canonicalRequest.utf8))))"
    }

    /// The day's signing key: HMAC chain over date, region, service and `aws4_request`.
    public static func signingKey(secretAccessKey: String, date: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array("AWS4\(secretAccessKey)".utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    /// Signing keys change once a day per secret, region and service: this remembers the last few, saving four
    /// of the six hash computations a signature costs.
    final class SigningKeyCache: Sendable {
        private let entries = Mutex<[String: SymmetricKey]>([:])

        func key(secretAccessKey: String, date: String, region: String, service: String) -> SymmetricKey {
            let name = "\(date)/\(region)/\(service)/\(secretAccessKey)"
            if let key = entries.withLock({ $0[name] }) { return key }
            let key = signingKey(secretAccessKey: secretAccessKey, date: date, region: region, service: service)
            entries.withLock { entries in
                if entries.count >= 64 { entries.removeAll() }
                entries[name] = key
            }
            return key
        }
    }

    /// Lowercase hex HMAC-SHA256 of the string to sign.
    public static func signature(stringToSign: String, signingKey: SymmetricKey) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey))
    }

    // MARK: Helpers

    private static let upperHex = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func normalizedHeaderValue(_ value: String) -> String {
        // The common case (no surrounding or doubled spaces) without Foundation's string scanning.
        var previousWasSpace = true
        var clean = true
        for byte in value.utf8 {
            let isSpace = byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
            if isSpace && previousWasSpace { clean = false }
            previousWasSpace = isSpace
        }
        if clean && !previousWasSpace { return value }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard trimmed.contains("  ") else { return trimmed }
        return trimmed.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }
}

/// SigV4's timestamps: `yyyyMMdd'T'HHmmss'Z'` in UTC.
public enum SigV4Timestamp {
    private static let style = Date.ISO8601FormatStyle(dateSeparator: .omitted, timeSeparator: .omitted)

    /// `20240115T120000Z` for `date` (fractions of a second dropped).
    public static func format(_ date: Date) -> String {
        date.formatted(style)
    }

    /// The instant of a `yyyyMMdd'T'HHmmss'Z'` text, or nil when it is not one.
    public static func parse(_ text: some StringProtocol) -> Date? {
        // Foundation's parser is lenient (February 29th of a common year is March 1st): only what formats back
        // to the same text is a timestamp.
        guard text.utf8.count == 16, let date = try? style.parse(String(text)), format(date) == text else { return nil }
        return date
    }
}
