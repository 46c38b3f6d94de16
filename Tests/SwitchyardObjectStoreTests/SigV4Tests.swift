import Crypto
import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardObjectStore

/// AWS's published examples ("Examples: Signature Calculations in AWS Signature Version 4", S3 API reference):
/// the example credentials, bucket `examplebucket`, 2013-05-24T00:00:00Z, us-east-1.
@Suite("SigV4: AWS's published examples")
struct SigV4PublishedExamplesTests {
    let signer = SigV4Signer(
        credentials: S3Credentials(accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    let origin = S3Origin(scheme: "https", host: "examplebucket.s3.amazonaws.com", port: nil)
    let signedAt = SigV4Timestamp.parse("20130524T000000Z")!

    func signature(of headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name == "Authorization" }?.value.components(separatedBy: "Signature=").last
    }

    @Test("GET object with a Range header")
    func getObject() {
        let headers = signer.signedHeaders(
            method: "GET", origin: origin, path: "/test.txt", headers: [("Range", "bytes=0-9")], payloadHash: SigV4.emptyPayloadHash, now: signedAt)
        #expect(signature(of: headers) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(
            headers.first { $0.name == "Authorization" }?.value
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
    }

    @Test("PUT object with a body, Date and a storage class")
    func putObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let headers = signer.signedHeaders(
            method: "PUT", origin: origin, path: "/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: Hex.encode(SHA256.hash(data: body)), now: signedAt)
        #expect(signature(of: headers) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test("GET bucket lifecycle (a query parameter without a value)")
    func getLifecycle() {
        let headers = signer.signedHeaders(
            method: "GET", origin: origin, path: "/", query: [("lifecycle", "")], payloadHash: SigV4.emptyPayloadHash, now: signedAt)
        #expect(signature(of: headers) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test("GET bucket listing (query parameters sorted)")
    func listObjects() {
        let headers = signer.signedHeaders(
            method: "GET", origin: origin, path: "/", query: [("prefix", "J"), ("max-keys", "2")], payloadHash: SigV4.emptyPayloadHash,
            now: signedAt)
        #expect(signature(of: headers) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test("presigned GET, valid for a day")
    func presignedGet() {
        let url = signer.presignedURL(method: "GET", origin: origin, path: "/test.txt", expires: 86_400, now: signedAt)
        #expect(
            url
                == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        )
    }
}

/// One presigned URL of botocore's (scripts/generate-sigv4-fixtures.sh).
struct BotocoreCase: Decodable, Sendable, CustomTestStringConvertible {
    let method: String
    let url: String
    let headersToSend: [String: String]
    let signedAt: String
    let canonicalRequest: String
    let stringToSign: String
    let arguments: [String]

    enum CodingKeys: String, CodingKey {
        case method, url, arguments
        case headersToSend = "headers_to_send"
        case signedAt = "signed_at"
        case canonicalRequest = "canonical_request"
        case stringToSign = "string_to_sign"
    }

    var testDescription: String { arguments.joined(separator: " ") }

    func argument(_ flag: String, default value: String) -> String {
        guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return value }
        return arguments[index + 1]
    }

    var credentials: S3Credentials {
        S3Credentials(
            accessKeyId: argument("--access-key", default: "AKIAIOSFODNN7EXAMPLE"),
            secretAccessKey: argument("--secret-key", default: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
    }
    var region: String { argument("--region", default: "us-east-1") }
    var origin: S3Origin { S3Origin(argument("--endpoint", default: "http://127.0.0.1:9000"))! }
    var path: String { "/" + argument("--bucket", default: "artifacts") + "/" + argument("--key", default: "teams/t1/files/report 2024.bin") }
    var expires: Int { Int(argument("--expires", default: "900"))! }
    var date: Date { SigV4Timestamp.parse(signedAt)! }
    /// The headers as botocore signs them, in its order (Content-Type, Content-Length, If-None-Match).
    var headers: [(name: String, value: String)] {
        ["Content-Type", "Content-Length", "If-None-Match"].compactMap { name in headersToSend[name].map { (name, $0) } }
    }

    /// The request a client makes with this URL: path and query as sent, the headers plus Host.
    var request: SigV4Request {
        let components = URLComponents(string: url)!
        return SigV4Request(
            method: method, rawPath: components.percentEncodedPath, rawQuery: components.percentEncodedQuery,
            headers: headers + [("Host", origin.hostHeader)])
    }

    static let all: [BotocoreCase] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/sigv4/botocore-presign.json")
        return try! JSONDecoder().decode([BotocoreCase].self, from: Data(contentsOf: url))
    }()
}

@Suite("SigV4: botocore's presigned URLs, byte for byte")
struct SigV4BotocoreTests {
    @Test("the signer produces botocore's URL", arguments: BotocoreCase.all)
    func signerMatches(reference: BotocoreCase) {
        let signer = SigV4Signer(credentials: reference.credentials, region: reference.region)
        let url = signer.presignedURL(
            method: reference.method, origin: reference.origin, path: reference.path, headers: reference.headers, expires: reference.expires,
            now: reference.date)
        #expect(url == reference.url)
    }

    @Test("the verifier accepts botocore's URL while valid and refuses it after", arguments: BotocoreCase.all)
    func verifierAccepts(reference: BotocoreCase) throws {
        let credentials = reference.credentials
        let verifier = SigV4Verifier(region: reference.region) { $0 == credentials.accessKeyId ? credentials.secretAccessKey : nil }
        let verified = try verifier.verify(reference.request, now: reference.date.addingTimeInterval(TimeInterval(reference.expires)))
        #expect(verified.presigned && verified.accessKeyId == credentials.accessKeyId && verified.payloadHash == SigV4.unsignedPayload)
        #expect(verified.signedHeaders.contains("host"))
        #expect(throws: SigV4Failure("AccessDenied", "Request has expired")) {
            try verifier.verify(reference.request, now: reference.date.addingTimeInterval(TimeInterval(reference.expires + 1)))
        }
    }

    @Test("the canonical request rebuilt from the received URL, and its string to sign, match botocore's", arguments: BotocoreCase.all)
    func canonicalForms(reference: BotocoreCase) throws {
        let request = reference.request
        let query = try SigV4Verifier.parseQuery(request.rawQuery)
        let signedHeaders = try #require(query.first { $0.name == "X-Amz-SignedHeaders" }?.value).split(separator: ";").map(String.init)
        let canonical = SigV4.canonicalRequest(
            method: reference.method, canonicalURI: SigV4.percentEncode(try #require(SigV4.percentDecode(request.rawPath)), keepSlash: true),
            canonicalQuery: SigV4.canonicalQuery(query.filter { $0.name != "X-Amz-Signature" }),
            canonicalHeaders: try #require(SigV4.canonicalHeaders(request.headers, signedHeaders: signedHeaders)), signedHeaders: signedHeaders,
            payloadHash: SigV4.unsignedPayload)
        #expect(canonical == reference.canonicalRequest)
        let scope = SigV4.scope(date: String(reference.signedAt.prefix(8)), region: reference.region, service: "s3")
        #expect(SigV4.stringToSign(timestamp: reference.signedAt, scope: scope, canonicalRequest: canonical) == reference.stringToSign)
    }
}

@Suite("SigV4: the verifier refuses what it must")
struct SigV4RefusalTests {
    static let keys = S3Credentials(accessKeyId: "SYTESTKEY", secretAccessKey: "secret-one")
    let origin = S3Origin("http://127.0.0.1:9000")!
    let now = SigV4Timestamp.parse("20261122T120000Z")!
    let verifier = SigV4Verifier(region: "us-east-1") { $0 == keys.accessKeyId ? keys.secretAccessKey : nil }
    let put: [(name: String, value: String)] = [("Content-Length", "11"), ("If-None-Match", "*")]

    func presigned(
        signer: SigV4Signer = SigV4Signer(credentials: keys, region: "us-east-1"), path: String = "/b/inputs/a b.png", expires: Int = 900
    ) -> SigV4Request {
        let url = signer.presignedURL(method: "PUT", origin: origin, path: path, headers: put, expires: expires, now: now)
        let components = URLComponents(string: url)!
        return SigV4Request(
            method: "PUT", rawPath: components.percentEncodedPath, rawQuery: components.percentEncodedQuery,
            headers: put + [("Host", "127.0.0.1:9000")])
    }

    func failure(_ request: SigV4Request, at date: Date? = nil) -> SigV4Failure? {
        do {
            _ = try verifier.verify(request, now: date ?? now)
            return nil
        } catch {
            return error
        }
    }

    @Test("a valid presigned PUT passes")
    func valid() {
        #expect(failure(presigned()) == nil)
    }

    @Test("a tampered signature, path, query, header or method is SignatureDoesNotMatch")
    func tampering() {
        var request = presigned()
        request.rawQuery = request.rawQuery!.replacingOccurrences(of: "X-Amz-Signature=", with: "X-Amz-Signature=0")
        request.rawQuery!.removeLast()
        #expect(failure(request)?.code == "SignatureDoesNotMatch")

        request = presigned()
        request.rawPath = "/b/inputs/other.png"
        #expect(failure(request)?.code == "SignatureDoesNotMatch")

        request = presigned()
        request.headers[0] = ("Content-Length", "12")
        #expect(failure(request)?.code == "SignatureDoesNotMatch")

        request = presigned()
        request.method = "GET"
        #expect(failure(request)?.code == "SignatureDoesNotMatch")

        request = presigned()
        request.rawQuery! += "&extra=1"
        #expect(failure(request)?.code == "SignatureDoesNotMatch")
    }

    @Test("a missing signed header is refused")
    func missingHeader() {
        var request = presigned()
        request.headers.removeAll { $0.name == "If-None-Match" }
        #expect(failure(request)?.code == "AccessDenied")
    }

    @Test("a wrong secret, an unknown key, a wrong region and a wrong service are refused")
    func wrongKeys() {
        let wrongSecret = SigV4Signer(credentials: S3Credentials(accessKeyId: "SYTESTKEY", secretAccessKey: "secret-two"), region: "us-east-1")
        #expect(failure(presigned(signer: wrongSecret))?.code == "SignatureDoesNotMatch")
        let unknown = SigV4Signer(credentials: S3Credentials(accessKeyId: "NOSUCHKEY", secretAccessKey: "secret-one"), region: "us-east-1")
        #expect(failure(presigned(signer: unknown))?.code == "InvalidAccessKeyId")
        let region = SigV4Signer(credentials: Self.keys, region: "eu-west-1")
        #expect(
            failure(presigned(signer: region))
                == SigV4Failure("AuthorizationQueryParametersError", "the region 'eu-west-1' is wrong; expecting 'us-east-1'", status: 403))
        let service = SigV4Signer(credentials: Self.keys, region: "us-east-1", service: "s3-object-lambda")
        #expect(failure(presigned(signer: service))?.status == 400)
    }

    @Test("expiry: valid to the second, refused after; not before its time; at most a week")
    func expiry() {
        #expect(failure(presigned(expires: 60), at: now.addingTimeInterval(60)) == nil)
        #expect(failure(presigned(expires: 60), at: now.addingTimeInterval(61))?.message == "Request has expired")
        #expect(failure(presigned(), at: now.addingTimeInterval(-901))?.code == "AccessDenied")
        #expect(failure(presigned(expires: 604_801))?.code == "AuthorizationQueryParametersError")
    }

    @Test("header-signed requests: valid, tampered body hash, skewed clock, unsigned request")
    func headerSigned() {
        let signer = SigV4Signer(credentials: Self.keys, region: "us-east-1")
        let hash = Hex.encode(SHA256.hash(data: Array("hello world".utf8)))
        let headers = signer.signedHeaders(
            method: "PUT", origin: origin, path: "/b/k", query: [("partNumber", "1"), ("uploadId", "u 1")], headers: [("Content-Length", "11")],
            payloadHash: hash, now: now)
        var request = SigV4Request(
            method: "PUT", rawPath: "/b/k", rawQuery: "partNumber=1&uploadId=u%201", headers: headers + [("Host", "127.0.0.1:9000")])
        let verified = try? verifier.verify(request, now: now.addingTimeInterval(30))
        #expect(verified?.payloadHash == hash && verified?.presigned == false)
        #expect(verified?.query.map(\.value) == ["1", "u 1"])
        #expect(failure(request, at: now.addingTimeInterval(901))?.code == "RequestTimeTooSkewed")

        let index = request.headers.firstIndex { $0.name == "x-amz-content-sha256" }!
        request.headers[index].value = SigV4.emptyPayloadHash
        #expect(failure(request)?.code == "SignatureDoesNotMatch")

        request.headers.removeAll { $0.name == "Authorization" }
        #expect(failure(request)?.code == "AccessDenied")
    }
}

@Suite("SigV4: encoding and timestamps")
struct SigV4EncodingTests {
    @Test(
        "percent-encoding keeps only unreserved characters (and / in paths)",
        arguments: [
            ("a b/ü.txt", true, "a%20b/%C3%BC.txt"), ("a b/ü.txt", false, "a%20b%2F%C3%BC.txt"), ("~-_.AZaz09", false, "~-_.AZaz09"),
            ("+=&?#%", false, "%2B%3D%26%3F%23%25"), ("😀", true, "%F0%9F%98%80"),
        ] as [(String, Bool, String)])
    func encoding(text: String, keepSlash: Bool, expected: String) {
        #expect(SigV4.percentEncode(text, keepSlash: keepSlash) == expected)
        #expect(SigV4.percentDecode(expected) == text)
    }

    @Test("malformed escapes do not decode")
    func malformed() {
        #expect(SigV4.percentDecode("%") == nil)
        #expect(SigV4.percentDecode("%G0") == nil)
        #expect(SigV4.percentDecode("%FF") == nil)
        #expect(SigV4.percentDecode("a+b") == "a+b")
    }

    @Test("timestamps round-trip and match Foundation across centuries, leap days and negative times")
    func timestamps() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        for seconds in [0, 951_782_400, 1_709_164_800, 4_107_542_399, -86_400, 1_705_320_000, 253_402_300_799] as [TimeInterval] {
            let date = Date(timeIntervalSince1970: seconds)
            let text = SigV4Timestamp.format(date)
            #expect(text == formatter.string(from: date).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: ""))
            #expect(SigV4Timestamp.parse(text) == date)
        }
        #expect(SigV4Timestamp.parse("20230229T000000Z") == nil)
        #expect(SigV4Timestamp.parse("2024-01-15T12:00:00Z") == nil)
        #expect(SigV4Timestamp.format(Date(timeIntervalSince1970: 1.9)) == "19700101T000001Z")
    }
}
