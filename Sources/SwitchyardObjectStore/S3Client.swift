import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Where objects live: an S3-compatible endpoint, a bucket, a region and a key pair. The same type describes
/// the embedded store and an external one.
public struct S3Configuration: Sendable, Equatable {
    public var origin: S3Origin
    public var bucket: String
    public var region: String
    public var credentials: S3Credentials
    /// Path-style (`/bucket/key`) instead of virtual-hosted (`bucket.host/key`) addressing.
    public var pathStyle: Bool

    public init(origin: S3Origin, bucket: String, region: String, credentials: S3Credentials, pathStyle: Bool = true) {
        self.origin = origin
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self.pathStyle = pathStyle
    }

    /// The origin objects are served from (the bucket's host for virtual-hosted style): what a browser page that
    /// shows or uploads objects must allow.
    public var objectOrigin: S3Origin { location(of: "").origin }

    /// The origin requests for objects go to, and the decoded path of `key` there.
    func location(of key: String) -> (origin: S3Origin, path: String) {
        if pathStyle { return (origin, "/\(bucket)/\(key)") }
        return (S3Origin(scheme: origin.scheme, host: "\(bucket).\(origin.host)", port: origin.port), "/\(key)")
    }
}

/// An S3 error answer: the HTTP status and S3's error code and message.
public struct S3ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "S3 \(status) \(code): \(message)" }
}

/// What `HeadObject` tells.
public struct S3ObjectHead: Sendable, Equatable {
    public var size: Int
    public var etag: String
    public var contentType: String?
}

/// A small S3 client over AsyncHTTPClient: header-signed requests for the server's own use, presigned URLs for
/// callers and agents. One code path for the embedded store and external ones.
///
/// ```swift
/// let s3 = S3Client(configuration: configuration)
/// try await s3.putObject(key: "outputs/t/1/image.png", body: bytes, contentType: "image/png")
/// let url = s3.presignedGet(key: "outputs/t/1/image.png", expires: 3600, now: Date())
/// ```
public struct S3Client: Sendable {
    public let configuration: S3Configuration
    let http: HTTPClient
    let signer: SigV4Signer
    /// The time requests are signed at (the server's clock, so tests can move it).
    let now: @Sendable () -> Date

    public init(configuration: S3Configuration, http: HTTPClient = .shared, now: @escaping @Sendable () -> Date = { Date() }) {
        self.configuration = configuration
        self.http = http
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        self.now = now
    }

    // MARK: Presigned URLs

    /// A PUT URL with `Content-Length` (and `If-None-Match: *` unless `allowOverwrite`) signed in: the uploader
    /// must send exactly `headers`.
    public func presignedPut(key: String, contentLength: Int, contentType: String? = nil, allowOverwrite: Bool = false, expires: Int, now: Date)
        -> (url: String, headers: [(name: String, value: String)])
    {
        var headers: [(name: String, value: String)] = [("Content-Length", String(contentLength))]
        if !allowOverwrite { headers.append(("If-None-Match", "*")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let (origin, path) = configuration.location(of: key)
        return (signer.presignedURL(method: "PUT", origin: origin, path: path, headers: headers, expires: expires, now: now), headers)
    }

    public func presignedGet(key: String, expires: Int, now: Date) -> String {
        let (origin, path) = configuration.location(of: key)
        return signer.presignedURL(method: "GET", origin: origin, path: path, expires: expires, now: now)
    }

    public func presignedHead(key: String, expires: Int, now: Date) -> String {
        let (origin, path) = configuration.location(of: key)
        return signer.presignedURL(method: "HEAD", origin: origin, path: path, expires: expires, now: now)
    }

    /// A part's upload URL; with `contentLength`, the length is signed: a PUT of any other size is refused (403).
    public func presignedUploadPart(key: String, uploadId: String, partNumber: Int, contentLength: Int? = nil, expires: Int, now: Date)
        -> String
    {
        let (origin, path) = configuration.location(of: key)
        return signer.presignedURL(
            method: "PUT", origin: origin, path: path, query: [("partNumber", String(partNumber)), ("uploadId", uploadId)],
            headers: contentLength.map { [("Content-Length", String($0))] } ?? [], expires: expires, now: now)
    }

    // MARK: Objects

    /// Stores an object; with `ifNoneMatch`, only if the key is free (else a 412 `PreconditionFailed`).
    @discardableResult
    public func putObject(key: String, body: [UInt8], contentType: String? = nil, ifNoneMatch: Bool = false) async throws -> String {
        var headers: [(name: String, value: String)] = [("Content-Length", String(body.count))]
        if let contentType { headers.append(("Content-Type", contentType)) }
        if ifNoneMatch { headers.append(("If-None-Match", "*")) }
        let response = try await send("PUT", key: key, headers: headers, body: body)
        return Self.unquote(response.headers.first(name: "ETag") ?? "")
    }

    /// The object's size, ETag and type; nil when it does not exist.
    public func headObject(key: String) async throws -> S3ObjectHead? {
        do {
            let response = try await send("HEAD", key: key)
            return S3ObjectHead(
                size: Int(response.headers.first(name: "Content-Length") ?? "") ?? 0, etag: Self.unquote(response.headers.first(name: "ETag") ?? ""),
                contentType: response.headers.first(name: "Content-Type"))
        } catch let error as S3ClientError where error.status == 404 {
            return nil
        }
    }

    /// The whole object (for small objects; large ones go through presigned URLs).
    public func getObject(key: String, maximumSize: Int = 64 * 1024 * 1024) async throws -> [UInt8] {
        let response = try await send("GET", key: key, collect: maximumSize)
        return Array(buffer: response.body)
    }

    /// Bytes `range` of the object (`Range: bytes=a-b`; fewer when it is shorter).
    public func getObject(key: String, range: ClosedRange<Int>) async throws -> [UInt8] {
        let response = try await send(
            "GET", key: key, headers: [(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound)")], collect: range.count)
        return Array(buffer: response.body)
    }

    /// Streams the object through SHA-256 without holding it: its lowercase hex digest and size.
    public func sha256(key: String) async throws -> (hex: String, size: Int) {
        let request = try signedRequest("GET", key: key)
        let response = try await http.execute(request, timeout: .hours(6))
        guard response.status == .ok else {
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            throw S3ClientError(
                status: Int(response.status.code), code: Self.element("Code", in: text) ?? response.status.reasonPhrase,
                message: Self.element("Message", in: text) ?? "")
        }
        var hasher = SHA256()
        var size = 0
        for try await buffer in response.body {
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            size += buffer.readableBytes
        }
        return (Hex.encode(hasher.finalize()), size)
    }

    public func deleteObject(key: String) async throws {
        _ = try await send("DELETE", key: key)
    }

    /// Every object under `prefix` (ListObjectsV2, all pages of up to `pageSize`): key, size and last modification.
    public func listObjects(prefix: String, pageSize: Int = 1000) async throws -> [(key: String, size: Int, lastModified: Date)] {
        var found: [(key: String, size: Int, lastModified: Date)] = []
        var token: String?
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(pageSize))]
            if let token { query.append(("continuation-token", token)) }
            let text = String(buffer: try await sendToBucket("GET", query: query).body)
            for entry in text.components(separatedBy: "<Contents>").dropFirst() {
                guard let key = Self.element("Key", in: entry).map(Self.unescape), let size = Self.element("Size", in: entry).flatMap(Int.init),
                    let modified = Self.element("LastModified", in: entry).flatMap(RFC3339.parse)
                else { continue }
                found.append((key, size, modified))
            }
            token = Self.element("IsTruncated", in: text) == "true" ? Self.element("NextContinuationToken", in: text).map(Self.unescape) : nil
        } while token != nil
        return found
    }

    /// The multipart uploads left open under `prefix` (ListMultipartUploads, all pages).
    public func listMultipartUploads(prefix: String) async throws -> [(key: String, uploadId: String, initiated: Date)] {
        var found: [(key: String, uploadId: String, initiated: Date)] = []
        var markers: (key: String, uploadId: String)?
        repeat {
            var query: [(name: String, value: String)] = [("uploads", ""), ("prefix", prefix)]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.uploadId)] }
            let text = String(buffer: try await sendToBucket("GET", query: query).body)
            for entry in text.components(separatedBy: "<Upload>").dropFirst() {
                guard let key = Self.element("Key", in: entry).map(Self.unescape), let uploadId = Self.element("UploadId", in: entry),
                    let initiated = Self.element("Initiated", in: entry).flatMap(RFC3339.parse)
                else { continue }
                found.append((key, uploadId, initiated))
            }
            if Self.element("IsTruncated", in: text) == "true", let key = Self.element("NextKeyMarker", in: text).map(Self.unescape),
                let uploadId = Self.element("NextUploadIdMarker", in: text)
            {
                markers = (key, uploadId)
            } else {
                markers = nil
            }
        } while markers != nil
        return found
    }

    // MARK: Multipart

    public func createMultipartUpload(key: String, contentType: String? = nil) async throws -> String {
        let response = try await send(
            "POST", key: key, query: [("uploads", "")], headers: contentType.map { [("Content-Type", $0)] } ?? [])
        guard let uploadId = Self.element("UploadId", in: String(buffer: response.body)) else {
            throw S3ClientError(status: 500, code: "MalformedResponse", message: "CreateMultipartUpload answered without an UploadId")
        }
        return uploadId
    }

    @discardableResult
    public func uploadPart(key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        let response = try await send(
            "PUT", key: key, query: [("partNumber", String(partNumber)), ("uploadId", uploadId)], headers: [("Content-Length", String(body.count))],
            body: body)
        return Self.unquote(response.headers.first(name: "ETag") ?? "")
    }

    /// The parts uploaded so far: number, ETag, size.
    public func listParts(key: String, uploadId: String) async throws -> [(partNumber: Int, etag: String, size: Int)] {
        let response = try await send("GET", key: key, query: [("uploadId", uploadId)])
        return String(buffer: response.body).components(separatedBy: "<Part>").dropFirst().compactMap { part in
            guard let number = Self.element("PartNumber", in: part).flatMap(Int.init), let etag = Self.element("ETag", in: part),
                let size = Self.element("Size", in: part).flatMap(Int.init)
            else { return nil }
            return (number, Self.unquote(etag.replacingOccurrences(of: "&quot;", with: "\"")), size)
        }
    }

    /// Joins the parts; returns the object's ETag.
    @discardableResult
    /// Completes an upload; with `ifNoneMatch`, only if the key is free (else a 412 `PreconditionFailed`).
    public func completeMultipartUpload(key: String, uploadId: String, parts: [(partNumber: Int, etag: String)], ifNoneMatch: Bool = false)
        async throws -> String
    {
        let xml =
            "<CompleteMultipartUpload>"
            + parts.map { "<Part><PartNumber>\($0.partNumber)</PartNumber><ETag>\"\(Self.unquote($0.etag))\"</ETag></Part>" }.joined()
            + "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        var headers: [(name: String, value: String)] = [("Content-Length", String(body.count))]
        if ifNoneMatch { headers.append(("If-None-Match", "*")) }
        let response = try await send("POST", key: key, query: [("uploadId", uploadId)], headers: headers, body: body)
        let text = String(buffer: response.body)
        // S3 may answer 200 with an error document when the completion fails late.
        if let code = Self.element("Code", in: text), text.contains("<Error>") {
            throw S3ClientError(status: 200, code: code, message: Self.element("Message", in: text) ?? "")
        }
        return Self.unquote((Self.element("ETag", in: text) ?? "").replacingOccurrences(of: "&quot;", with: "\""))
    }

    public func abortMultipartUpload(key: String, uploadId: String) async throws {
        _ = try await send("DELETE", key: key, query: [("uploadId", uploadId)])
    }

    // MARK: Transport

    struct Answer {
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// A request to the bucket itself (listings): path-style `/{bucket}`, virtual-hosted `/`.
    private func sendToBucket(_ method: String, query: [(name: String, value: String)]) async throws -> Answer {
        try await send(method, key: nil, query: query, collect: 16 * 1024 * 1024)
    }

    private func send(
        _ method: String, key: String?, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil, collect: Int = 1024 * 1024
    ) async throws -> Answer {
        var request = try signedRequest(method, key: key, query: query, headers: headers, body: body)
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
        } else if method == "PUT" || method == "POST" {
            request.body = .bytes(ByteBuffer())
        }
        let response = try await http.execute(request, timeout: .seconds(300))
        let bytes = method == "HEAD" ? ByteBuffer() : try await response.body.collect(upTo: max(collect, 1024 * 1024))
        guard (200..<300).contains(Int(response.status.code)) else {
            let text = String(buffer: bytes)
            throw S3ClientError(
                status: Int(response.status.code), code: Self.element("Code", in: text) ?? response.status.reasonPhrase,
                message: Self.element("Message", in: text) ?? "")
        }
        return Answer(headers: response.headers, body: bytes)
    }

    /// A request with its SigV4 headers (the body's hash signed when there is one; `Content-Length` is left
    /// to the HTTP client, which sets it from the body).
    private func signedRequest(
        _ method: String, key: String?, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil
    ) throws -> HTTPClientRequest {
        var (origin, path) = configuration.location(of: key ?? "")
        if key == nil, configuration.pathStyle { path.removeLast() }
        let payloadHash = body.map { Hex.encode(SHA256.hash(data: $0)) } ?? SigV4.emptyPayloadHash
        let signed = signer.signedHeaders(
            method: method, origin: origin, path: path, query: query, headers: headers, payloadHash: payloadHash, now: now())
        var url = origin.base + SigV4.percentEncode(path, keepSlash: true)
        if !query.isEmpty {
            url +=
                "?"
                + query.map { "\(SigV4.percentEncode($0.name, keepSlash: false))=\(SigV4.percentEncode($0.value, keepSlash: false))" }
                .joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for header in signed where header.name.lowercased() != "content-length" {
            request.headers.add(name: header.name, value: header.value)
        }
        return request
    }

    static func element(_ name: String, in text: String) -> String? {
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    /// XML's five entities back to characters (keys in listings are escaped).
    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(
            of: "&quot;", with: "\""
        )
        .replacingOccurrences(of: "&apos;", with: "'").replacingOccurrences(of: "&#13;", with: "\r").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func unquote(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
}
