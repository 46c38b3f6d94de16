import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SwitchyardCore
import SwitchyardObjectStore

/// The embedded S3-compatible endpoint (path-style: `/{bucket}/{key}`), served on its own port by
/// `switchyard serve` when no external S3 is configured. Every request must carry a valid SigV4 signature
/// (query or header) for the store's one key pair. Operations: CreateBucket, HeadBucket, PutObject (with
/// `If-None-Match: *`), GetObject, HeadObject, DeleteObject, and the multipart set (Create, UploadPart,
/// ListParts, Complete, Abort). Errors are S3's XML.
public struct EmbeddedS3Responder: HTTPResponder {
    public typealias Context = BasicRequestContext

    let store: EmbeddedObjectStore
    let verifier: SigV4Verifier
    let clock: any WallClock
    /// Requests and bytes are counted here when the server's metrics are given.
    let metrics: ServerMetrics?
    /// S3's ceiling for one PUT.
    static let maximumObjectSize = 5 * 1024 * 1024 * 1024

    public func respond(to request: Request, context: Context) async throws -> Response {
        if let origin = request.headers[.origin], request.method == .options {
            return Self.preflight(request, origin: origin)
        }
        var response = try await answer(request, context: context)
        metrics?.objectStoreRequest(method: request.method, status: response.status)
        if request.headers[.origin] != nil {
            // Browsers (the dashboard's uploads and previews) may read answers to presigned requests: the signature is
            // the authority, no cookie is ever involved, so any origin may, as with an S3 bucket's `AllowedOrigins: *`.
            response.headers[.accessControlAllowOrigin] = "*"
            response.headers[.accessControlExposeHeaders] = "ETag"
        }
        return response
    }

    /// A CORS preflight: GET, HEAD and PUT with the headers the browser asks for (a presigned URL still has to verify).
    static func preflight(_ request: Request, origin: String) -> Response {
        var headers = HTTPFields()
        headers[.accessControlAllowOrigin] = "*"
        headers[.accessControlAllowMethods] = "GET, HEAD, PUT"
        if let asked = request.headers[.accessControlRequestHeaders] { headers[.accessControlAllowHeaders] = asked }
        headers[.accessControlMaxAge] = "3600"
        headers[.accessControlExposeHeaders] = "ETag"
        return Response(status: .noContent, headers: headers)
    }

    private func answer(_ request: Request, context: Context) async throws -> Response {
        let target = request.head.path ?? "/"
        let (rawPath, rawQuery) = Self.split(target)
        do {
            let verified = try verifier.verify(
                SigV4Request(
                    method: request.method.rawValue, rawPath: rawPath, rawQuery: rawQuery,
                    headers: Self.signableHeaders(request)),
                now: clock.now())
            guard let path = SigV4.percentDecode(rawPath) else {
                throw S3Error("InvalidURI", "Couldn't parse the specified URI.", status: .badRequest)
            }
            let parts = path.dropFirst().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let bucket = parts.first.map(String.init) ?? ""
            let key = parts.count > 1 ? String(parts[1]) : ""
            let query = Dictionary(verified.query.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
            guard !bucket.isEmpty else {
                throw S3Error("NotImplemented", "ListBuckets is not supported by the embedded store", status: .notImplemented)
            }
            if key.isEmpty {
                return try bucketOperation(request.method, bucket: bucket, query: query)
            }
            return try await objectOperation(request, bucket: bucket, key: key, query: query, payloadHash: verified.payloadHash)
        } catch let failure as SigV4Failure {
            return Self.errorResponse(
                code: failure.code, message: failure.message, status: HTTPResponse.Status(code: failure.status), resource: rawPath)
        } catch let error as S3Error {
            return Self.errorResponse(code: error.code, message: error.message, status: error.status, resource: rawPath)
        } catch let error as ObjectStoreError {
            let mapped = S3Error(error)
            if mapped.status == .internalServerError { context.logger.error("embedded S3 store failed", metadata: ["error": "\(error)"]) }
            return Self.errorResponse(code: mapped.code, message: mapped.message, status: mapped.status, resource: rawPath)
        }
    }

    // MARK: Buckets

    private func bucketOperation(_ method: HTTPRequest.Method, bucket: String, query: [String: String]) throws -> Response {
        switch method {
        case .get where query["list-type"] == "2":
            let prefix = query["prefix"] ?? ""
            let limit = min(max(Int(query["max-keys"] ?? "") ?? 1000, 1), 1000)
            let after =
                query["continuation-token"].flatMap { Data(base64Encoded: $0) }.flatMap { String(data: $0, encoding: .utf8) } ?? query["start-after"]
            let (objects, truncated) = try store.list(bucket: bucket, prefix: prefix, startAfter: after, limit: limit)
            var xml =
                "<ListBucketResult><Name>\(Self.escape(bucket))</Name><Prefix>\(Self.escape(prefix))</Prefix><KeyCount>\(objects.count)</KeyCount>"
            xml += "<MaxKeys>\(limit)</MaxKeys><IsTruncated>\(truncated)</IsTruncated>"
            if truncated, let last = objects.last {
                xml += "<NextContinuationToken>\(Data(last.key.utf8).base64EncodedString())</NextContinuationToken>"
            }
            for object in objects {
                xml += "<Contents><Key>\(Self.escape(object.key))</Key><LastModified>\(RFC3339.format(object.lastModified))</LastModified>"
                xml += "<ETag>&quot;\(object.etag)&quot;</ETag><Size>\(object.size)</Size><StorageClass>STANDARD</StorageClass></Contents>"
            }
            return Self.xml(xml + "</ListBucketResult>")
        case .get where query["uploads"] != nil:
            let prefix = query["prefix"] ?? ""
            var xml =
                "<ListMultipartUploadsResult><Bucket>\(Self.escape(bucket))</Bucket><Prefix>\(Self.escape(prefix))</Prefix><IsTruncated>false</IsTruncated>"
            for upload in try store.uploads(bucket: bucket, prefix: prefix) {
                xml += "<Upload><Key>\(Self.escape(upload.key))</Key><UploadId>\(upload.uploadId)</UploadId>"
                xml += "<Initiated>\(RFC3339.format(upload.initiated))</Initiated></Upload>"
            }
            return Self.xml(xml + "</ListMultipartUploadsResult>")
        case .put:
            try store.createBucket(bucket)
            return Response(status: .ok, headers: [.location: "/\(bucket)"])
        case .head:
            guard store.bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
            return Response(status: .ok)
        default:
            throw S3Error("NotImplemented", "\(method.rawValue) on a bucket is not supported by the embedded store", status: .notImplemented)
        }
    }

    // MARK: Objects

    private func objectOperation(_ request: Request, bucket: String, key: String, query: [String: String], payloadHash: String) async throws
        -> Response
    {
        guard key.utf8.count <= 1024 else { throw S3Error("KeyTooLongError", "Your key is too long", status: .badRequest) }
        switch (request.method, query["uploadId"], query["uploads"]) {
        case (.put, let uploadId?, _):
            guard let number = query["partNumber"].flatMap(Int.init) else {
                throw S3Error("InvalidArgument", "partNumber must be an integer between 1 and 10000", status: .badRequest)
            }
            let write = try store.beginPart(bucket: bucket, key: key, uploadId: uploadId, partNumber: number)
            try await receive(request, into: write, payloadHash: payloadHash)
            let now = clock.now()
            let info = try await blocking { [store] in try store.publishPart(write, uploadId: uploadId, now: now) }
            return Response(status: .ok, headers: [.eTag: "\"\(info.etag)\""])
        case (.put, nil, _):
            // An input uploaded without a Content-Type (curl -T, requests.put) keeps the type its presign declared.
            let declared = request.headers[.contentType] ?? InputFileKey(key)?.contentType
            let write = try store.beginPut(bucket: bucket, key: key, contentType: declared)
            try await receive(request, into: write, payloadHash: payloadHash)
            let ifNoneMatch = request.headers[.ifNoneMatch]
            guard ifNoneMatch == nil || ifNoneMatch == "*" else {
                throw S3Error("NotImplemented", "If-None-Match supports only *", status: .notImplemented)
            }
            let now = clock.now()
            let info = try await blocking { [store] in try store.publish(write, bucket: bucket, ifNoneMatch: ifNoneMatch == "*", now: now) }
            return Response(status: .ok, headers: [.eTag: "\"\(info.etag)\""])
        case (.get, let uploadId?, _):
            return Self.xml(
                Self.listParts(try store.listParts(bucket: bucket, key: key, uploadId: uploadId), bucket: bucket, key: key, uploadId: uploadId))
        case (.get, nil, _), (.head, nil, _):
            let reader = try store.open(bucket: bucket, key: key)
            let info = reader.info
            var headers = Self.objectHeaders(info)
            var range = 0..<info.size
            var status = HTTPResponse.Status.ok
            if let header = request.headers[.range], let requested = Self.byteRange(header, size: info.size) {
                guard let satisfiable = requested else {
                    reader.close()
                    var response = Self.errorResponse(
                        code: "InvalidRange", message: "The requested range is not satisfiable", status: .rangeNotSatisfiable,
                        resource: rawPathOf(request))
                    response.headers[.contentRange] = "bytes */\(info.size)"
                    return response
                }
                range = satisfiable
                status = .partialContent
                headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(info.size)"
            }
            guard request.method == .get else {
                reader.close()
                headers[.contentLength] = String(range.count)
                return Response(status: status, headers: headers)
            }
            let body = range
            return Response(
                status: status, headers: headers,
                body: ResponseBody(contentLength: body.count) { writer in
                    defer { reader.close() }
                    var buffer = [UInt8](repeating: 0, count: 256 * 1024)
                    var offset = body.lowerBound
                    while offset < body.upperBound {
                        let count = try reader.read(into: &buffer, offset: offset, limit: body.upperBound - offset)
                        try await writer.write(ByteBuffer(bytes: buffer[0..<count]))
                        offset += count
                        metrics?.objectStoreSent(bytes: count)
                    }
                    try await writer.finish(nil)
                })
        case (.delete, let uploadId?, _):
            try store.abortMultipartUpload(bucket: bucket, key: key, uploadId: uploadId)
            return Response(status: .noContent)
        case (.delete, nil, _):
            try await blocking { [store] in try store.delete(bucket: bucket, key: key) }
            return Response(status: .noContent)
        case (.post, nil, _?):
            let uploadId = try store.createMultipartUpload(bucket: bucket, key: key, contentType: request.headers[.contentType], now: clock.now())
            return Self.xml(
                "<InitiateMultipartUploadResult><Bucket>\(Self.escape(bucket))</Bucket><Key>\(Self.escape(key))</Key><UploadId>\(uploadId)</UploadId></InitiateMultipartUploadResult>"
            )
        case (.post, let uploadId?, _):
            let body = try await request.body.collect(upTo: 1024 * 1024)
            let parts = try Self.completionParts(String(buffer: body))
            let ifNoneMatch = request.headers[.ifNoneMatch]
            guard ifNoneMatch == nil || ifNoneMatch == "*" else {
                throw S3Error("NotImplemented", "If-None-Match supports only *", status: .notImplemented)
            }
            let now = clock.now()
            let info = try await blocking { [store] in
                try store.completeMultipartUpload(
                    bucket: bucket, key: key, uploadId: uploadId, parts: parts, ifNoneMatch: ifNoneMatch == "*", now: now)
            }
            return Self.xml(
                "<CompleteMultipartUploadResult><Location>/\(Self.escape(bucket))/\(Self.escape(key))</Location><Bucket>\(Self.escape(bucket))</Bucket><Key>\(Self.escape(key))</Key><ETag>&quot;\(info.etag)&quot;</ETag></CompleteMultipartUploadResult>"
            )
        default:
            throw S3Error("NotImplemented", "this request is not supported by the embedded store", status: .notImplemented)
        }
    }

    /// Runs file-system work that fsyncs (publishing, joining parts, deleting) on NIO's blocking-I/O pool, so a
    /// large fsync never holds a Swift concurrency thread the API needs.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    /// Streams the body into `write`, enforcing the declared `Content-Length` and, when signed, the body's SHA-256.
    private func receive(_ request: Request, into write: PendingWrite, payloadHash: String) async throws {
        guard let declared = request.headers[.contentLength].flatMap(Int.init) else {
            write.discard()
            throw S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", status: .lengthRequired)
        }
        guard declared <= Self.maximumObjectSize else {
            write.discard()
            throw S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size of 5 GB", status: .badRequest)
        }
        do {
            for try await buffer in request.body {
                guard write.bytesWritten + buffer.readableBytes <= declared else {
                    throw ObjectStoreError.incompleteBody(expected: declared, received: write.bytesWritten + buffer.readableBytes)
                }
                try buffer.withUnsafeReadableBytes { try write.write($0) }
            }
            try write.verify(expectedLength: declared, expectedSHA256: payloadHash == SigV4.unsignedPayload ? nil : payloadHash)
            metrics?.objectStoreReceived(bytes: declared)
        } catch {
            write.discard()
            throw error
        }
    }

    // MARK: Encoding

    /// The request's headers as the client sent them: HTTPTypes keeps `Host` as the authority, not a field.
    static func signableHeaders(_ request: Request) -> [(name: String, value: String)] {
        var headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        if let authority = request.head.authority { headers.append(("host", authority)) }
        return headers
    }

    static func split(_ target: String) -> (path: String, query: String?) {
        guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }

    static func objectHeaders(_ info: ObjectInfo) -> HTTPFields {
        [
            .contentType: info.contentType, .eTag: "\"\(info.etag)\"", .lastModified: httpDate(info.lastModified),
            .acceptRanges: "bytes",
        ]
    }

    /// A single `bytes=` range: nil when the header is not one we serve (several ranges, other units: the whole
    /// object is sent, as S3 does), `.some(nil)` when it cannot be satisfied, else the byte range.
    static func byteRange(_ header: String, size: Int) -> Range<Int>?? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { return nil }
        if spec[0].isEmpty {
            guard let suffix = Int(spec[1]) else { return nil }
            guard suffix > 0, size > 0 else { return .some(nil) }
            return .some(max(0, size - suffix)..<size)
        }
        guard let start = Int(spec[0]) else { return nil }
        let end = spec[1].isEmpty ? size - 1 : Int(spec[1])
        guard let end, end >= start else { return nil }
        guard start < size else { return .some(nil) }
        return .some(start..<min(end, size - 1) + 1)
    }

    private func rawPathOf(_ request: Request) -> String {
        Self.split(request.head.path ?? "/").path
    }

    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }

    static func listParts(_ parts: [(partNumber: Int, info: ObjectInfo)], bucket: String, key: String, uploadId: String) -> String {
        let items = parts.map { part in
            "<Part><PartNumber>\(part.partNumber)</PartNumber><ETag>&quot;\(part.info.etag)&quot;</ETag><Size>\(part.info.size)</Size><LastModified>\(RFC3339.format(part.info.lastModified))</LastModified></Part>"
        }
        return
            "<ListPartsResult><Bucket>\(escape(bucket))</Bucket><Key>\(escape(key))</Key><UploadId>\(uploadId)</UploadId><IsTruncated>false</IsTruncated>\(items.joined())</ListPartsResult>"
    }

    /// The `(PartNumber, ETag)` pairs of a CompleteMultipartUpload body.
    static func completionParts(_ xml: String) throws -> [(partNumber: Int, etag: String)] {
        var parts: [(partNumber: Int, etag: String)] = []
        for chunk in xml.components(separatedBy: "<Part>").dropFirst() {
            guard let body = chunk.components(separatedBy: "</Part>").first, let number = element("PartNumber", in: body).flatMap(Int.init),
                let etag = element("ETag", in: body)
            else {
                throw S3Error(
                    "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema", status: .badRequest)
            }
            parts.append((number, etag.replacingOccurrences(of: "&quot;", with: "\"")))
        }
        return parts
    }

    private static func element(_ name: String, in text: String) -> String? {
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[start.upperBound..<end.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func xml(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/xml"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + body)))
    }

    static func errorResponse(code: String, message: String, status: HTTPResponse.Status, resource: String) -> Response {
        xml("<Error><Code>\(code)</Code><Message>\(escape(message))</Message><Resource>\(escape(resource))</Resource></Error>", status: status)
    }
}

/// An S3 error answer.
struct S3Error: Error {
    let code: String
    let message: String
    let status: HTTPResponse.Status

    init(_ code: String, _ message: String, status: HTTPResponse.Status) {
        self.code = code
        self.message = message
        self.status = status
    }

    init(_ error: ObjectStoreError) {
        switch error {
        case .noSuchBucket: self.init("NoSuchBucket", "The specified bucket does not exist", status: .notFound)
        case .noSuchKey: self.init("NoSuchKey", "The specified key does not exist.", status: .notFound)
        case .noSuchUpload:
            self.init(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
                status: .notFound)
        case .preconditionFailed:
            self.init("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", status: .preconditionFailed)
        case .incompleteBody(let expected, let received):
            self.init("IncompleteBody", "The request body was \(received) bytes; Content-Length declared \(expected)", status: .badRequest)
        case .contentSHA256Mismatch:
            self.init(
                "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.", status: .badRequest)
        case .invalidPart(let detail): self.init("InvalidPart", detail, status: .badRequest)
        case .invalidPartOrder: self.init("InvalidPartOrder", "The list of parts was not in ascending order.", status: .badRequest)
        case .entityTooSmall(let number):
            self.init("EntityTooSmall", "Part \(number) is smaller than the minimum allowed size of 5 MiB", status: .badRequest)
        case .invalidBucketName(let name): self.init("InvalidBucketName", "The specified bucket is not valid: \(name)", status: .badRequest)
        case .io: self.init("InternalError", "We encountered an internal error. Please try again.", status: .internalServerError)
        }
    }
}
