import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardObjectStore
import SwitchyardTestSupport
import Testing

/// One contract for every S3 endpoint Switchyard talks to: the embedded store and an external emulator pass
/// the same checks through the same client (and, for presigned URLs, a plain HTTP client as a browser or
/// `curl` would be).
@Suite("Object store contract")
struct ObjectStoreContractTests {
    /// A fresh key per test, so runs against a shared emulator bucket never collide.
    func freshKey(_ name: String) -> String { "contract/\(UUID().uuidString.lowercased())/\(name)" }

    /// Sends a presigned request the way an uploader does: the URL as given, these headers, this body.
    func send(_ method: HTTPMethod, _ url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil) async throws -> (Int, [UInt8])
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for header in headers where header.name.lowercased() != "content-length" { request.headers.add(name: header.name, value: header.value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return (Int(response.status.code), Array(buffer: try await response.body.collect(upTo: 16 * 1024 * 1024)))
    }

    @Test("put, head, get and delete; keys with spaces, unicode and reserved characters", arguments: TestObjectStore.available)
    func roundTrip(store: TestObjectStore) async throws {
        try await store.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            for name in ["plain.txt", "a b/ü.png", "reserved !*'()+,;=:@$&[]~.bin", "日本語/ファイル 😀.txt"] {
                let key = freshKey(name)
                let body = Array("payload of \(name)".utf8)
                let etag = try await s3.putObject(key: key, body: body, contentType: "text/plain")
                #expect(etag.count == 32, "ETag is the MD5 of a single-part object")
                let head = try #require(try await s3.headObject(key: key))
                #expect(head.size == body.count && head.etag == etag && head.contentType == "text/plain")
                #expect(try await s3.getObject(key: key) == body)
                try await s3.deleteObject(key: key)
                #expect(try await s3.headObject(key: key) == nil)
                await #expect(throws: S3ClientError.self) { try await s3.getObject(key: key) }
            }
        }
    }

    @Test("If-None-Match: * never overwrites: 412, and the object keeps its bytes", arguments: TestObjectStore.available)
    func conditionalPut(store: TestObjectStore) async throws {
        try await store.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            let key = freshKey("once.txt")
            try await s3.putObject(key: key, body: Array("first".utf8), ifNoneMatch: true)
            do {
                try await s3.putObject(key: key, body: Array("second".utf8), ifNoneMatch: true)
                Issue.record("a conditional PUT overwrote an object")
            } catch let error as S3ClientError {
                #expect(error.status == 412 && error.code == "PreconditionFailed")
            }
            #expect(try await s3.getObject(key: key) == Array("first".utf8))
        }
    }

    @Test(
        "presigned PUT: valid once; reuse is 412; tampered, other path, other length, missing header, wrong secret, expired are 403",
        arguments: TestObjectStore.available)
    func presignedPut(store: TestObjectStore) async throws {
        try await store.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            let key = freshKey("upload photo.png")
            let body = Array("hello world".utf8)
            let (url, headers) = s3.presignedPut(key: key, contentLength: body.count, contentType: "image/png", expires: 300, now: Date())
            #expect(try await send(.PUT, url, headers: headers, body: Array("hello".utf8)).0 == 403, "a length other than the signed one")
            #expect(
                try await send(.PUT, url, headers: headers.filter { $0.name != "If-None-Match" }, body: body).0 == 403, "a signed header left out")
            let index = url.range(of: "X-Amz-Signature=")!.upperBound
            let tampered = url.replacingCharacters(in: index..<url.index(after: index), with: url[index] == "0" ? "1" : "0")
            #expect(try await send(.PUT, tampered, headers: headers, body: body).0 == 403)
            let otherPath = url.replacingOccurrences(of: "upload%20photo.png", with: "other.png")
            #expect(try await send(.PUT, otherPath, headers: headers, body: body).0 == 403)
            var wrong = configuration
            wrong.credentials.secretAccessKey += "x"
            let wrongSecret = S3Client(configuration: wrong).presignedPut(
                key: key, contentLength: body.count, contentType: "image/png", expires: 300, now: Date())
            #expect(try await send(.PUT, wrongSecret.url, headers: wrongSecret.headers, body: body).0 == 403)
            let expired = s3.presignedPut(
                key: key, contentLength: body.count, contentType: "image/png", expires: 1, now: Date().addingTimeInterval(-60))
            #expect(try await send(.PUT, expired.url, headers: expired.headers, body: body).0 == 403)
            #expect(try await s3.headObject(key: key) == nil, "nothing refused left an object behind")

            #expect(try await send(.PUT, url, headers: headers, body: body).0 == 200)
            #expect(try await send(.PUT, url, headers: headers, body: body).0 == 412)
            let get = s3.presignedGet(key: key, expires: 60, now: Date())
            let (status, downloaded) = try await send(.GET, get)
            #expect(status == 200 && downloaded == body)
            #expect(try await send(.HEAD, s3.presignedHead(key: key, expires: 60, now: Date())).0 == 200)
            #expect(try await send(.GET, get.replacingOccurrences(of: "upload%20photo.png", with: "other.png")).0 == 403)
        }
    }

    @Test(
        "multipart: presigned parts, list, complete, size and ETag; a tampered part URL is 403; abort ends the upload",
        arguments: TestObjectStore.available)
    func multipart(store: TestObjectStore) async throws {
        try await store.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            let key = freshKey("big.bin")
            let uploadId = try await s3.createMultipartUpload(key: key, contentType: "application/octet-stream")
            let chunks = [[UInt8](repeating: 0x41, count: 5 * 1024 * 1024), [UInt8](repeating: 0x42, count: 1024)]
            var parts: [(partNumber: Int, etag: String)] = []
            for (index, chunk) in chunks.enumerated() {
                let url = s3.presignedUploadPart(key: key, uploadId: uploadId, partNumber: index + 1, expires: 300, now: Date())
                var request = HTTPClientRequest(url: url)
                request.method = .PUT
                request.body = .bytes(ByteBuffer(bytes: chunk))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                parts.append((index + 1, response.headers.first(name: "ETag") ?? ""))
            }
            let third = s3.presignedUploadPart(key: key, uploadId: uploadId, partNumber: 3, expires: 300, now: Date())
            #expect(try await send(.PUT, third.replacingOccurrences(of: "partNumber=3", with: "partNumber=4"), body: [1, 2]).0 == 403)
            #expect(try await s3.listParts(key: key, uploadId: uploadId).map(\.partNumber) == [1, 2])
            let etag = try await s3.completeMultipartUpload(key: key, uploadId: uploadId, parts: parts)
            #expect(etag.hasSuffix("-2"))
            #expect(try await s3.headObject(key: key)?.size == chunks.map(\.count).reduce(0, +))

            let aborted = try await s3.createMultipartUpload(key: key)
            try await s3.uploadPart(key: key, uploadId: aborted, partNumber: 1, body: [1, 2, 3])
            try await s3.abortMultipartUpload(key: key, uploadId: aborted)
            await #expect(throws: S3ClientError.self) { try await s3.listParts(key: key, uploadId: aborted) }
        }
    }
}

extension ObjectStoreContractTests {
    @Test(
        "listing: objects under a prefix across pages (keys with reserved characters), and open multipart uploads",
        arguments: TestObjectStore.available)
    func listing(store: TestObjectStore) async throws {
        try await store.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            let prefix = freshKey("listing") + "/"
            let names = (0..<7).map { "\(prefix)file \($0) & <x>.txt" } + ["\(prefix)ü/deep.bin"]
            for name in names { try await s3.putObject(key: name, body: Array(name.utf8)) }
            try await s3.putObject(key: freshKey("elsewhere.txt"), body: [1])
            let listed = try await s3.listObjects(prefix: prefix, pageSize: 3)
            #expect(listed.map(\.key).sorted() == names.sorted())
            #expect(listed.allSatisfy { abs($0.lastModified.timeIntervalSinceNow) < 300 && $0.size > 0 })

            let uploadId = try await s3.createMultipartUpload(key: "\(prefix)open.bin")
            let open = try await s3.listMultipartUploads(prefix: prefix)
            #expect(open.map(\.uploadId) == [uploadId] && open.first?.key == "\(prefix)open.bin")
            try await s3.abortMultipartUpload(key: "\(prefix)open.bin", uploadId: uploadId)
            #expect(try await s3.listMultipartUploads(prefix: prefix).isEmpty)
        }
    }
}

@Suite("Embedded store")
struct EmbeddedStoreTests {
    @Test("a wrong region or an unsigned request is refused")
    func regionAndAnonymous() async throws {
        try await TestObjectStore.embedded.with { configuration, _ in
            var other = configuration
            other.region = "eu-west-1"
            await #expect(
                throws: S3ClientError(
                    status: 403, code: "AuthorizationHeaderMalformed", message: "the region 'eu-west-1' is wrong; expecting 'us-east-1'")
            ) {
                try await S3Client(configuration: other).putObject(key: "k", body: [1])
            }
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "\(configuration.origin.base)/\(configuration.bucket)/k"), timeout: .seconds(10))
            #expect(response.status == .forbidden)
        }
    }

    @Test("a write that is never published is invisible, survives no restart, and leaves no temp file")
    func crashSafety() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sy-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = try EmbeddedObjectStore(root: root)
        try store.createBucket("bkt")
        let write = try store.beginPut(bucket: "bkt", key: "half.bin", contentType: nil)
        try [UInt8](repeating: 7, count: 4096).withUnsafeBytes { try write.write($0) }
        #expect(throws: ObjectStoreError.noSuchKey("half.bin")) { try store.info(bucket: "bkt", key: "half.bin") }
        // A "crash": the process goes away before publishing; a new store over the same directory sees nothing.
        let reopened = try EmbeddedObjectStore(root: root)
        #expect(throws: ObjectStoreError.noSuchKey("half.bin")) { try reopened.info(bucket: "bkt", key: "half.bin") }
        #expect(throws: ObjectStoreError.incompleteBody(expected: 5000, received: 4096)) {
            try write.verify(expectedLength: 5000, expectedSHA256: nil)
        }
        write.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("tmp").path).isEmpty)

        let complete = try store.beginPut(bucket: "bkt", key: "whole.bin", contentType: "x/y")
        try [UInt8](repeating: 9, count: 10).withUnsafeBytes { try complete.write($0) }
        try store.publish(complete, bucket: "bkt", ifNoneMatch: true, now: Date())
        #expect(try reopened.info(bucket: "bkt", key: "whole.bin").size == 10)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("tmp").path).isEmpty)
    }

    @Test("multipart rules: parts in order, ETags must match, all but the last at least 5 MiB")
    func multipartRules() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sy-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = try EmbeddedObjectStore(root: root)
        try store.createBucket("bkt")
        let upload = try store.createMultipartUpload(bucket: "bkt", key: "k", contentType: nil, now: Date())
        var etags: [Int: String] = [:]
        for number in 1...2 {
            let part = try store.beginPart(bucket: "bkt", key: "k", uploadId: upload, partNumber: number)
            try [UInt8](repeating: UInt8(number), count: 100).withUnsafeBytes { try part.write($0) }
            etags[number] = try store.publishPart(part, uploadId: upload, now: Date()).etag
        }
        #expect(throws: ObjectStoreError.invalidPartOrder) {
            try store.completeMultipartUpload(bucket: "bkt", key: "k", uploadId: upload, parts: [(2, etags[2]!), (1, etags[1]!)], now: Date())
        }
        #expect(throws: ObjectStoreError.entityTooSmall(partNumber: 1)) {
            try store.completeMultipartUpload(bucket: "bkt", key: "k", uploadId: upload, parts: [(1, etags[1]!), (2, etags[2]!)], now: Date())
        }
        #expect(throws: ObjectStoreError.self) {
            try store.completeMultipartUpload(bucket: "bkt", key: "k", uploadId: upload, parts: [(1, "0000")], now: Date())
        }
        #expect(throws: ObjectStoreError.noSuchUpload(upload)) { try store.listParts(bucket: "bkt", key: "other", uploadId: upload) }
        let info = try store.completeMultipartUpload(bucket: "bkt", key: "k", uploadId: upload, parts: [(2, etags[2]!)], now: Date())
        #expect(info.size == 100 && info.etag.hasSuffix("-1"))
    }
}

@Suite("Embedded store: HTTP details")
struct EmbeddedStoreHTTPTests {
    @Test("Expect: 100-continue is answered before the body is sent (curl and botocore wait a second otherwise)")
    func expectContinue() async throws {
        try await TestObjectStore.embedded.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            let (url, _) = s3.presignedPut(key: "continue.bin", contentLength: 4, expires: 60, now: Date())
            let components = URLComponents(string: url)!
            let head =
                "PUT \(components.percentEncodedPath)?\(components.percentEncodedQuery!) HTTP/1.1\r\nHost: \(configuration.origin.hostHeader)\r\n"
                + "Content-Length: 4\r\nIf-None-Match: *\r\nExpect: 100-continue\r\n\r\n"
            let socket = try LineSocket(port: configuration.origin.port!)
            defer { socket.close() }
            try socket.send(Array(head.utf8))
            #expect(await socket.receive(until: "\r\n\r\n").hasPrefix("HTTP/1.1 100 Continue"))
            try socket.send(Array("data".utf8))
            #expect(await socket.receive(until: "\r\n\r\n").hasPrefix("HTTP/1.1 200 OK"))
        }
    }
}

extension EmbeddedStoreHTTPTests {
    @Test(
        "ranged GETs (as aws s3 cp downloads): 206 with Content-Range, suffix and open ranges, 416 past the end",
        arguments: [
            ("bytes=0-3", 206, "0123", "bytes 0-3/10"), ("bytes=6-", 206, "6789", "bytes 6-9/10"), ("bytes=-3", 206, "789", "bytes 7-9/10"),
            ("bytes=8-100", 206, "89", "bytes 8-9/10"), ("bytes=10-12", 416, nil, "bytes */10"), ("bytes=0-1,4-5", 200, "0123456789", nil),
        ] as [(String, Int, String?, String?)])
    func ranges(range: String, status: Int, body: String?, contentRange: String?) async throws {
        try await TestObjectStore.embedded.with { configuration, _ in
            let s3 = S3Client(configuration: configuration)
            try await s3.putObject(key: "digits.txt", body: Array("0123456789".utf8))
            var request = HTTPClientRequest(url: s3.presignedGet(key: "digits.txt", expires: 60, now: Date()))
            request.headers.add(name: "Range", value: range)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let received = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(Int(response.status.code) == status)
            #expect(response.headers.first(name: "Content-Range") == contentRange)
            if let body { #expect(received == body) }
        }
    }
}

/// A blocking loopback TCP client with a receive timeout, for speaking raw HTTP. Its reads wait on a thread of
/// their own, not on one of Swift's cooperative threads: the server it talks to needs those (two on a two-core
/// machine) to answer, and a test run under load once starved it until the read gave up.
struct LineSocket {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw S3ClientError(status: 0, code: "ConnectFailed", message: "could not connect to port \(port)") }
    }

    func send(_ bytes: [UInt8]) throws {
        guard bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw S3ClientError(status: 0, code: "WriteFailed", message: "short write")
        }
    }

    /// Reads until `terminator` has arrived (or the timeout passes) and returns what came.
    func receive(until terminator: String) async -> String {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: receiveBlocking(until: terminator)) }.start()
        }
    }

    private func receiveBlocking(until terminator: String) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains(terminator) {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    func close() {
        _ = Foundation.close(descriptor)
    }
}
