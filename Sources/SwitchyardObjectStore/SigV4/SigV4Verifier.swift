import Crypto
import Foundation
import SwitchyardCore

/// An incoming request as the verifier needs it: the path and query exactly as received (still
/// percent-encoded), and every header.
public struct SigV4Request: Sendable {
    public var method: String
    public var rawPath: String
    public var rawQuery: String?
    public var headers: [(name: String, value: String)]

    public init(method: String, rawPath: String, rawQuery: String?, headers: [(name: String, value: String)]) {
        self.method = method
        self.rawPath = rawPath
        self.rawQuery = rawQuery
        self.headers = headers
    }

    /// The first value of a header (names compare case-insensitively).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// What a valid signature vouches for.
public struct SigV4Verified: Sendable, Equatable {
    public var accessKeyId: String
    /// True for query authentication (a presigned URL).
    public var presigned: Bool
    /// Lowercase names of the headers covered by the signature.
    public var signedHeaders: [String]
    /// The payload hash that was signed: `UNSIGNED-PAYLOAD` or a hex SHA-256 the body must then match.
    public var payloadHash: String
    /// The query parameters, decoded, without the signature's own `X-Amz-*` parameters.
    public var query: [(name: String, value: String)]

    public static func == (lhs: SigV4Verified, rhs: SigV4Verified) -> Bool {
        lhs.accessKeyId == rhs.accessKeyId && lhs.presigned == rhs.presigned && lhs.signedHeaders == rhs.signedHeaders
            && lhs.payloadHash == rhs.payloadHash && lhs.query.map(\.name) == rhs.query.map(\.name)
            && lhs.query.map(\.value) == rhs.query.map(\.value)
    }
}

/// Why a request was refused, in S3's terms: the error code and HTTP status S3 would answer with.
public struct SigV4Failure: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var status: Int

    public init(_ code: String, _ message: String, status: Int = 403) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "\(code): \(message)" }
}

/// Verifies SigV4 on incoming S3 requests (query or `Authorization` header): algorithm, credential scope
/// (date, region, service), expiry and clock skew, that every signed header is present and `host` among them,
/// then the signature itself, compared in constant time.
public struct SigV4Verifier: Sendable {
    public typealias SecretLookup = @Sendable (_ accessKeyId: String) -> String?

    public let region: String
    public let service: String
    /// How far a header-signed request's time may be from ours, and how early a presigned URL may be used.
    public let allowedSkew: TimeInterval
    private let secret: SecretLookup
    private let keys = SigV4.SigningKeyCache()

    public init(region: String, service: String = "s3", allowedSkew: TimeInterval = 900, secret: @escaping SecretLookup) {
        self.region = region
        self.service = service
        self.allowedSkew = allowedSkew
        self.secret = secret
    }

    public func verify(_ request: SigV4Request, now: Date) throws(SigV4Failure) -> SigV4Verified {
        let query = try Self.parseQuery(request.rawQuery)
        if query.contains(where: { $0.name == "X-Amz-Signature" || $0.name == "X-Amz-Algorithm" || $0.name == "X-Amz-Credential" }) {
            return try verifyPresigned(request, query: query, now: now)
        }
        guard let authorization = request.header("Authorization") else {
            throw SigV4Failure("AccessDenied", "Anonymous access is not allowed: sign the request (SigV4) or use a presigned URL")
        }
        return try verifyHeader(request, authorization: authorization, query: query, now: now)
    }

    // MARK: Query authentication

    private func verifyPresigned(_ request: SigV4Request, query: [(name: String, value: String)], now: Date) throws(SigV4Failure) -> SigV4Verified {
        func parameter(_ name: String) throws(SigV4Failure) -> String {
            let values = query.filter { $0.name == name }
            guard values.count == 1 else {
                throw SigV4Failure(
                    "AuthorizationQueryParametersError", "Query-string authentication requires exactly one \(name) parameter", status: 400)
            }
            return values[0].value
        }
        guard try parameter("X-Amz-Algorithm") == SigV4.algorithm else {
            throw SigV4Failure("AuthorizationQueryParametersError", "X-Amz-Algorithm only supports \"\(SigV4.algorithm)\"", status: 400)
        }
        let timestamp = try parameter("X-Amz-Date")
        guard let signedAt = SigV4Timestamp.parse(timestamp) else {
            throw SigV4Failure(
                "AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z'", status: 400)
        }
        let expiresText = try parameter("X-Amz-Expires")
        guard let expires = Int(expiresText), expires >= 1 else {
            throw SigV4Failure("AuthorizationQueryParametersError", "X-Amz-Expires must be a positive number of seconds", status: 400)
        }
        guard expires <= SigV4.maximumExpiry else {
            throw SigV4Failure(
                "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800", status: 400)
        }
        let credential = try parseCredential(try parameter("X-Amz-Credential"), timestamp: timestamp, header: false)
        let signedHeaders = try parseSignedHeaders(try parameter("X-Amz-SignedHeaders"))
        let signature = try parameter("X-Amz-Signature")
        guard now.timeIntervalSince(signedAt) <= TimeInterval(expires) else {
            throw SigV4Failure("AccessDenied", "Request has expired")
        }
        guard signedAt.timeIntervalSince(now) <= allowedSkew else {
            throw SigV4Failure("AccessDenied", "Request is not valid yet: X-Amz-Date is in the future")
        }
        let canonicalQuery = SigV4.canonicalQuery(query.filter { $0.name != "X-Amz-Signature" })
        try check(
            signature, request: request, credential: credential, timestamp: timestamp, canonicalQuery: canonicalQuery,
            signedHeaders: signedHeaders, payloadHash: SigV4.unsignedPayload)
        return SigV4Verified(
            accessKeyId: credential.accessKeyId, presigned: true, signedHeaders: signedHeaders, payloadHash: SigV4.unsignedPayload,
            query: query.filter { !$0.name.hasPrefix("X-Amz-") })
    }

    // MARK: Header authentication

    private func verifyHeader(
        _ request: SigV4Request, authorization: String, query: [(name: String, value: String)], now: Date
    ) throws(SigV4Failure) -> SigV4Verified {
        guard authorization.hasPrefix(SigV4.algorithm + " ") else {
            throw SigV4Failure("AuthorizationHeaderMalformed", "The authorization header must use \(SigV4.algorithm)", status: 400)
        }
        var fields: [String: String] = [:]
        for part in authorization.dropFirst(SigV4.algorithm.count + 1).split(separator: ",") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            fields[String(pair[0])] = String(pair[1])
        }
        guard let credentialText = fields["Credential"], let signedHeadersText = fields["SignedHeaders"], let signature = fields["Signature"] else {
            throw SigV4Failure(
                "AuthorizationHeaderMalformed", "The authorization header needs Credential, SignedHeaders and Signature", status: 400)
        }
        guard let timestamp = request.header("x-amz-date") else {
            throw SigV4Failure("AccessDenied", "A header-signed request needs an x-amz-date header")
        }
        guard let signedAt = SigV4Timestamp.parse(timestamp) else {
            throw SigV4Failure("AccessDenied", "x-amz-date must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z'")
        }
        guard abs(now.timeIntervalSince(signedAt)) <= allowedSkew else {
            throw SigV4Failure("RequestTimeTooSkewed", "The difference between the request time and the server's time is too large")
        }
        guard let payloadHash = request.header("x-amz-content-sha256") else {
            throw SigV4Failure("InvalidRequest", "Missing required header for this request: x-amz-content-sha256", status: 400)
        }
        guard payloadHash == SigV4.unsignedPayload || Self.isHexSHA256(payloadHash) else {
            throw SigV4Failure(
                "NotImplemented", "x-amz-content-sha256 must be a hex SHA-256 or UNSIGNED-PAYLOAD (aws-chunked uploads are not supported)",
                status: 501)
        }
        let credential = try parseCredential(credentialText, timestamp: timestamp, header: true)
        let signedHeaders = try parseSignedHeaders(signedHeadersText)
        guard signedHeaders.contains("x-amz-content-sha256"), signedHeaders.contains("x-amz-date") else {
            throw SigV4Failure("AccessDenied", "x-amz-date and x-amz-content-sha256 must be signed")
        }
        try check(
            signature, request: request, credential: credential, timestamp: timestamp, canonicalQuery: SigV4.canonicalQuery(query),
            signedHeaders: signedHeaders, payloadHash: payloadHash)
        return SigV4Verified(
            accessKeyId: credential.accessKeyId, presigned: false, signedHeaders: signedHeaders, payloadHash: payloadHash, query: query)
    }

    // MARK: Shared steps

    private struct Credential {
        var accessKeyId: String
        var date: String
    }

    /// `AKID/yyyymmdd/region/service/aws4_request`, checked against our region and service and the timestamp's day.
    private func parseCredential(_ text: String, timestamp: String, header: Bool) throws(SigV4Failure) -> Credential {
        let malformed = header ? "AuthorizationHeaderMalformed" : "AuthorizationQueryParametersError"
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, !parts[0].isEmpty, parts[4] == "aws4_request" else {
            throw SigV4Failure(malformed, "The credential must be <access key>/<yyyymmdd>/<region>/\(service)/aws4_request", status: 400)
        }
        // S3 answers a foreign region with 400; a signature for another region is a refused credential here
        // (403), with S3's code and message so clients still learn which region to use.
        guard parts[2] == region else {
            throw SigV4Failure(malformed, "the region '\(parts[2])' is wrong; expecting '\(region)'", status: 403)
        }
        guard parts[3] == service else {
            throw SigV4Failure(malformed, "the service '\(parts[3])' is wrong; expecting '\(service)'", status: 400)
        }
        guard parts[1] == timestamp.prefix(8) else {
            throw SigV4Failure(malformed, "the credential date '\(parts[1])' does not match the request date '\(timestamp.prefix(8))'", status: 400)
        }
        return Credential(accessKeyId: parts[0], date: parts[1])
    }

    private func parseSignedHeaders(_ text: String) throws(SigV4Failure) -> [String] {
        let names = text.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && $0 == $0.lowercased() }), names == names.sorted(), Set(names).count == names.count
        else {
            throw SigV4Failure("AccessDenied", "SignedHeaders must be lowercase header names, sorted, separated by ';'")
        }
        guard names.contains("host") else {
            throw SigV4Failure("AccessDenied", "The host header must be signed")
        }
        return names
    }

    private func check(
        _ signature: String, request: SigV4Request, credential: Credential, timestamp: String, canonicalQuery: String, signedHeaders: [String],
        payloadHash: String
    ) throws(SigV4Failure) {
        guard let secretAccessKey = secret(credential.accessKeyId) else {
            throw SigV4Failure("InvalidAccessKeyId", "The AWS access key Id you provided does not exist in our records.")
        }
        guard let decodedPath = SigV4.percentDecode(request.rawPath) else {
            throw SigV4Failure("InvalidURI", "Couldn't parse the specified URI.", status: 400)
        }
        guard let canonicalHeaders = SigV4.canonicalHeaders(request.headers, signedHeaders: signedHeaders) else {
            throw SigV4Failure("AccessDenied", "A header named in SignedHeaders is missing from the request")
        }
        let canonicalRequest = SigV4.canonicalRequest(
            method: request.method, canonicalURI: SigV4.percentEncode(decodedPath, keepSlash: true), canonicalQuery: canonicalQuery,
            canonicalHeaders: canonicalHeaders, signedHeaders: signedHeaders, payloadHash: payloadHash)
        let stringToSign = SigV4.stringToSign(
            timestamp: timestamp, scope: SigV4.scope(date: credential.date, region: region, service: service), canonicalRequest: canonicalRequest)
        let key = keys.key(secretAccessKey: secretAccessKey, date: credential.date, region: region, service: service)
        let expected = SigV4.signature(stringToSign: stringToSign, signingKey: key)
        guard ConstantTime.equals(expected, signature.lowercased()) else {
            throw SigV4Failure(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
        }
    }

    /// Splits and decodes a raw query; `name` without `=` has the empty value.
    static func parseQuery(_ raw: String?) throws(SigV4Failure) -> [(name: String, value: String)] {
        guard let raw, !raw.isEmpty else { return [] }
        var items: [(name: String, value: String)] = []
        for part in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = SigV4.percentDecode(pair[0]), let value = pair.count == 2 ? SigV4.percentDecode(pair[1]) : "" else {
                throw SigV4Failure("InvalidURI", "Couldn't parse the specified URI.", status: 400)
            }
            items.append((name, value))
        }
        return items
    }

    private static func isHexSHA256(_ text: String) -> Bool {
        text.utf8.count == 64
            && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }
}
