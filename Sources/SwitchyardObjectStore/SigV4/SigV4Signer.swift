import Crypto
import Foundation
import SwitchyardCore

/// Where requests go: `scheme://host[:port]`, and the host value that is signed (the port only when it is not
/// the scheme's default, as HTTP clients send it).
public struct S3Origin: Sendable, Hashable {
    public var scheme: String
    public var host: String
    public var port: Int?

    /// Parses `http(s)://host[:port]` (a trailing `/` is allowed; a path is not).
    public init?(_ url: String) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty, components.path.isEmpty || components.path == "/", components.query == nil
        else { return nil }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = components.port
    }

    public init(scheme: String, host: String, port: Int?) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// The `Host` header a client sends, which is what gets signed.
    public var hostHeader: String {
        guard let port, port != (scheme == "https" ? 443 : 80) else { return hostForURL }
        return "\(hostForURL):\(port)"
    }

    /// `scheme://host[:port]`.
    public var base: String { "\(scheme)://\(hostHeader)" }

    private var hostForURL: String { host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host }
}

/// Signs S3 requests with SigV4: presigned URLs (query authentication) and `Authorization` headers. Paths are
/// given decoded (`/bucket/a b/ü.txt`) and encoded here the way S3 expects (once, `/` kept).
///
/// ```swift
/// let signer = SigV4Signer(credentials: keys, region: "us-east-1")
/// let url = signer.presignedURL(method: "PUT", origin: origin, path: "/artifacts/\(key)",
///                               headers: [("Content-Length", "11"), ("If-None-Match", "*")], expires: 900, now: Date())
/// ```
public struct SigV4Signer: Sendable {
    public let credentials: S3Credentials
    public let region: String
    public let service: String
    private let keys = SigV4.SigningKeyCache()

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// A presigned URL valid for `expires` seconds from `now`. `headers` (besides `Host`, always signed) must
    /// then be sent with exactly these values.
    public func presignedURL(
        method: String, origin: S3Origin, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], expires: Int, now: Date
    ) -> String {
        let timestamp = SigV4Timestamp.format(now)
        let date = String(timestamp.prefix(8))
        let allHeaders = headers + [("host", origin.hostHeader)]
        let signedHeaders = Set(allHeaders.map { $0.name.lowercased() }).sorted()
        let authQuery: [(name: String, value: String)] = [
            ("X-Amz-Algorithm", SigV4.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyId)/\(SigV4.scope(date: date, region: region, service: service))"),
            ("X-Amz-Date", timestamp),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", signedHeaders.joined(separator: ";")),
        ]
        let canonicalQuery = SigV4.canonicalQuery(query + authQuery)
        let canonicalURI = SigV4.percentEncode(path, keepSlash: true)
        let signature = sign(
            method: method, canonicalURI: canonicalURI, canonicalQuery: canonicalQuery,
            canonicalHeaders: SigV4.canonicalHeaders(allHeaders, signedHeaders: signedHeaders) ?? "", signedHeaders: signedHeaders,
            payloadHash: SigV4.unsignedPayload, timestamp: timestamp)
        return "\(origin.base)\(canonicalURI)?\(canonicalQuery)&X-Amz-Signature=\(signature)"
    }

    /// The headers to send for a header-signed request: `headers` plus `x-amz-date`, `x-amz-content-sha256`
    /// and `Authorization`, all of them (and `host`) signed. `payloadHash` is the body's hex SHA-256 or
    /// `SigV4.unsignedPayload`.
    public func signedHeaders(
        method: String, origin: S3Origin, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], payloadHash: String, now: Date
    ) -> [(name: String, value: String)] {
        let timestamp = SigV4Timestamp.format(now)
        let date = String(timestamp.prefix(8))
        let sent = headers + [("x-amz-date", timestamp), ("x-amz-content-sha256", payloadHash)]
        let all = sent + [("host", origin.hostHeader)]
        let signedHeaders = Set(all.map { $0.name.lowercased() }).sorted()
        let signature = sign(
            method: method, canonicalURI: SigV4.percentEncode(path, keepSlash: true), canonicalQuery: SigV4.canonicalQuery(query),
            canonicalHeaders: SigV4.canonicalHeaders(all, signedHeaders: signedHeaders) ?? "", signedHeaders: signedHeaders,
            payloadHash: payloadHash, timestamp: timestamp)
        let credential = "\(credentials.accessKeyId)/\(SigV4.scope(date: date, region: region, service: service))"
        let authorization =
            "\(SigV4.algorithm) Credential=\(credential), SignedHeaders=\(signedHeaders.joined(separator: ";")), Signature=\(signature)"
        return sent + [("Authorization", authorization)]
    }

    private func sign(
        method: String, canonicalURI: String, canonicalQuery: String, canonicalHeaders: String, signedHeaders: [String], payloadHash: String,
        timestamp: String
    ) -> String {
        let date = String(timestamp.prefix(8))
        let canonicalRequest = SigV4.canonicalRequest(
            method: method, canonicalURI: canonicalURI, canonicalQuery: canonicalQuery, canonicalHeaders: canonicalHeaders,
            signedHeaders: signedHeaders, payloadHash: payloadHash)
        let stringToSign = SigV4.stringToSign(
            timestamp: timestamp, scope: SigV4.scope(date: date, region: region, service: service), canonicalRequest: canonicalRequest)
        let key = keys.key(secretAccessKey: credentials.secretAccessKey, date: date, region: region, service: service)
        return SigV4.signature(stringToSign: stringToSign, signingKey: key)
    }
}
