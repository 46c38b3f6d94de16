import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Streams a model file from a presigned GET into a partial file, with constant memory: each chunk is hashed and
/// appended as it arrives. A partial file left by a dropped connection is resumed with `Range` (its bytes are hashed
/// again first, so the digest covers the whole file); a store that ignores the range (200) starts it over.
struct ModelDownload {
    let http: HTTPClient
    /// How long the whole transfer may take (multi-GB files on slow links); stalls end sooner, by the client's read
    /// timeout.
    var deadline: TimeAmount = .hours(12)

    struct Outcome: Equatable {
        /// `sha256:<hex>` of the whole file.
        let digest: String
        /// Bytes this call received (less than the file's size after a resume).
        let transferred: Int
        /// Bytes the partial file holds now.
        let held: Int
    }

    /// Downloads `url` into `partial` until it holds `size` bytes; `progress` is told the bytes held so far.
    func fetch(_ url: String, into partial: URL, size: Int, progress: @Sendable (Int) -> Void) async throws -> Outcome {
        var hash = SHA256()
        var held = try Self.rehash(partial, into: &hash)
        if held > size {
            try? FileManager.default.removeItem(at: partial)
            hash = SHA256()
            held = 0
        }
        var request = HTTPClientRequest(url: url)
        if held > 0 { request.headers.add(name: "Range", value: "bytes=\(held)-") }
        let response = try await http.execute(request, timeout: deadline)
        switch response.status.code {
        case 200:
            // The whole file: whatever was held is replaced.
            hash = SHA256()
            held = 0
        case 206:
            guard Self.rangeStart(response.headers.first(name: "Content-Range")) == held else {
                throw ModelSyncError.refused(status: 206, "the store answered another range than bytes=\(held)-")
            }
        case 416 where held == size:
            return Outcome(digest: Self.hex(hash), transferred: 0, held: held)
        default:
            throw ModelSyncError.refused(status: response.status.code, response.status.reasonPhrase)
        }
        // Appended to after a resume, started over otherwise. Readable by all (0644 before the umask): ComfyUI may
        // run as another user than the agent.
        let descriptor = open(partial.path, O_WRONLY | O_CREAT | O_CLOEXEC | (held > 0 ? O_APPEND : O_TRUNC), 0o644)
        guard descriptor >= 0 else { throw ModelSyncError.disk("cannot open \(partial.path): \(Self.lastError)") }
        defer { close(descriptor) }
        var transferred = 0
        for try await chunk in response.body {
            try chunk.withUnsafeReadableBytes { bytes in
                hash.update(bufferPointer: bytes)
                try Self.write(bytes, to: descriptor, path: partial.path)
            }
            transferred += chunk.readableBytes
            held += chunk.readableBytes
            guard held <= size else { throw ModelSyncError.integrity("the store sent more than the registered \(size) bytes") }
            progress(held)
        }
        guard fsync(descriptor) == 0 else { throw ModelSyncError.disk("cannot flush \(partial.path) to disk: \(Self.lastError)") }
        return Outcome(digest: Self.hex(hash), transferred: transferred, held: held)
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw ModelSyncError.disk("cannot write \(path): \(lastError)")
            }
            offset += written
        }
    }

    /// `errno`'s text ("No space left on device").
    static var lastError: String { String(cString: strerror(errno)) }

    /// Feeds what `partial` already holds into `hash`; returns its length (0 when there is no partial file).
    static func rehash(_ partial: URL, into hash: inout SHA256) throws -> Int {
        guard let file = try? FileHandle(forReadingFrom: partial) else { return 0 }
        defer { try? file.close() }
        var held = 0
        while let chunk = try file.read(upToCount: 1 << 20), !chunk.isEmpty {
            hash.update(data: chunk)
            held += chunk.count
        }
        return held
    }

    /// The first byte of `bytes <first>-<last>/<size>`.
    static func rangeStart(_ header: String?) -> Int? {
        guard let header, header.hasPrefix("bytes ") else { return nil }
        return header.dropFirst(6).split(separator: "-").first.flatMap { Int($0) }
    }

    static func hex(_ hash: SHA256) -> String {
        "sha256:" + hash.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
