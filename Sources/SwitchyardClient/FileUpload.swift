import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Uploads and downloads of files straight to and from the object store (presigned URLs), streamed from and to
/// disk with progress.
enum FileUpload {
    static let chunkSize = 1 << 20

    static func size(of path: String) throws -> Int64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        guard (attributes[.type] as? FileAttributeType) == .typeRegular, let size = attributes[.size] as? NSNumber else {
            throw SwitchyardAPIError(status: 0, message: "\(path) is not a regular file")
        }
        return size.int64Value
    }

    /// The content type an upload declares, from the file's extension.
    static func contentType(of name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "webp": "image/webp"
        case "gif": "image/gif"
        case "mp4": "video/mp4"
        case "webm": "video/webm"
        case "wav": "audio/wav"
        case "mp3": "audio/mpeg"
        case "json": "application/json"
        case "txt": "text/plain"
        default: "application/octet-stream"
        }
    }

    /// The file's SHA-256, hex, read in chunks.
    static func sha256(of path: String) async throws -> String {
        try await Task.detached {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw SwitchyardAPIError(status: 0, message: "cannot read \(path)") }
            defer { try? handle.close() }
            var hasher = SHA256()
            while let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty { hasher.update(data: chunk) }
            return hasher.finalize().map { String(format: "%02x", $0) }.joined()
        }.value
    }

    /// A file region read chunk by chunk; one reader at a time (the HTTP client pulls the stream sequentially).
    final class Reader: @unchecked Sendable {
        // Sendable proof: `handle` and `remaining` are touched only by `next()`, which the single consumer of the
        // `AsyncThrowingStream(unfolding:)` below calls one call after another, never concurrently.
        private let handle: FileHandle
        private var remaining: Int64
        private let progress: @Sendable (Int) -> Void

        init(path: String, offset: Int64, length: Int64, progress: @escaping @Sendable (Int) -> Void) throws {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw SwitchyardAPIError(status: 0, message: "cannot read \(path)") }
            try handle.seek(toOffset: UInt64(offset))
            self.handle = handle
            self.remaining = length
            self.progress = progress
        }

        func next() throws -> ByteBuffer? {
            guard remaining > 0 else {
                try? handle.close()
                return nil
            }
            guard let data = try handle.read(upToCount: Int(min(Int64(chunkSize), remaining))), !data.isEmpty else {
                throw SwitchyardAPIError(status: 0, message: "the file got shorter while it was uploaded")
            }
            remaining -= Int64(data.count)
            progress(data.count)
            return ByteBuffer(bytes: data)
        }
    }

    /// PUTs `size` bytes of the file from `offset` to a presigned URL with its signed headers; answers the ETag.
    /// `sent` is told of every chunk as it goes out.
    @discardableResult
    static func put(
        path: String, offset: Int64 = 0, size: Int64, url: String, headers: [String: String], http: HTTPClient,
        sent: @escaping @Sendable (Int) -> Void
    ) async throws -> String {
        let reader = try Reader(path: path, offset: offset, length: size, progress: sent)
        var request = HTTPClientRequest(url: url)
        request.method = .PUT
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        request.headers.replaceOrAdd(name: "Content-Length", value: "\(size)")
        request.body = .stream(AsyncThrowingStream(unfolding: { try reader.next() }), length: .known(size))
        let response = try await http.execute(request, timeout: .hours(6))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(Int(response.status.code)) else {
            let text = String(buffer: body)
            let code = text.range(of: "<Message>").flatMap { start in
                text.range(of: "</Message>").map { String(text[start.upperBound..<$0.lowerBound]) }
            }
            throw SwitchyardAPIError(
                status: Int(response.status.code), message: "the object store refused the upload: \(code ?? text.prefix(200).description)")
        }
        return response.headers.first(name: "ETag") ?? ""
    }

    /// Streams a URL's body into a file (written beside it first, renamed when complete); answers the bytes written.
    @discardableResult
    static func download(url: String, to path: String, http: HTTPClient, progress: @escaping @Sendable (Int64, Int64) -> Void) async throws -> Int64 {
        let response = try await http.execute(HTTPClientRequest(url: url), timeout: .hours(6))
        guard response.status == .ok else {
            throw SwitchyardAPIError(status: Int(response.status.code), message: "the object store answered \(response.status.code) for the download")
        }
        let total = response.headers.first(name: "Content-Length").flatMap(Int64.init) ?? 0
        let partial = path + ".partial"
        _ = FileManager.default.createFile(atPath: partial, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: partial) else { throw SwitchyardAPIError(status: 0, message: "cannot write \(partial)") }
        var written: Int64 = 0
        do {
            for try await buffer in response.body {
                try handle.write(contentsOf: Data(buffer.readableBytesView))
                written += Int64(buffer.readableBytes)
                progress(written, total)
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: partial, toPath: path)
        return written
    }
}

/// Bytes sent so far across concurrent part uploads, reported as (sent, total).
final class ProgressCounter: Sendable {
    private let state: Mutex<Int64>
    let total: Int64
    let report: @Sendable (Int64, Int64) -> Void

    init(total: Int64, report: @escaping @Sendable (Int64, Int64) -> Void) {
        self.state = Mutex(0)
        self.total = total
        self.report = report
    }

    var value: Int64 { state.withLock { $0 } }

    func add(_ count: Int) {
        let now = state.withLock { sent in
            sent += Int64(count)
            return sent
        }
        report(now, total)
    }

    /// Takes back bytes of a part whose upload failed and is sent again.
    func subtract(_ count: Int64) {
        let now = state.withLock { sent in
            sent -= count
            return sent
        }
        report(now, total)
    }
}
