import Foundation
import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the store knows about an object besides its bytes.
public struct ObjectInfo: Sendable, Equatable, Codable {
    public var key: String
    public var size: Int
    /// S3's ETag without quotes: the MD5 of the bytes, or `md5-of-part-md5s-N` for a multipart object.
    public var etag: String
    public var contentType: String
    public var lastModified: Date

    enum CodingKeys: String, CodingKey {
        case key, size, etag
        case contentType = "content_type"
        case lastModified = "last_modified"
    }
}

/// Why the store refused, in S3's terms.
public enum ObjectStoreError: Error, Sendable, Equatable {
    case noSuchBucket(String)
    case noSuchKey(String)
    case noSuchUpload(String)
    /// `If-None-Match: *` and the key exists.
    case preconditionFailed
    /// The body ended before (or ran past) the length the request declared.
    case incompleteBody(expected: Int, received: Int)
    /// The body does not hash to the signed `x-amz-content-sha256`.
    case contentSHA256Mismatch
    case invalidPart(String)
    case invalidPartOrder
    case entityTooSmall(partNumber: Int)
    case invalidBucketName(String)
    case io(String)
}

/// The on-disk object format: the body, then the metadata JSON, then a 4-byte big-endian metadata length and
/// an 8-byte magic. Metadata goes last because the ETag is known only after the body is written; one file
/// holds both, so one rename publishes both.
enum ObjectFile {
    static let magic = Array("SYOBJ001".utf8)
    static let trailerSize = 12

    static func trailer(for info: ObjectInfo) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        let metadata = Array(try encoder.encode(info))
        let length = UInt32(metadata.count)
        return metadata + [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + magic
    }

    /// Reads the metadata of the object file open at `descriptor`.
    static func readInfo(descriptor: Int32) throws -> ObjectInfo {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw ObjectStoreError.io("fstat: \(String(cString: strerror(errno)))") }
        let fileSize = Int(status.st_size)
        guard fileSize >= trailerSize else { throw ObjectStoreError.io("object file too short") }
        var tail = [UInt8](repeating: 0, count: trailerSize)
        try preadFully(descriptor, &tail, offset: fileSize - trailerSize)
        guard Array(tail[4...]) == magic else { throw ObjectStoreError.io("object file without a trailer") }
        let length = Int(tail[0]) << 24 | Int(tail[1]) << 16 | Int(tail[2]) << 8 | Int(tail[3])
        guard length <= fileSize - trailerSize else { throw ObjectStoreError.io("object file trailer out of range") }
        var metadata = [UInt8](repeating: 0, count: length)
        try preadFully(descriptor, &metadata, offset: fileSize - trailerSize - length)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(ObjectInfo.self, from: Data(metadata))
    }

    static func preadFully(_ descriptor: Int32, _ buffer: inout [UInt8], offset: Int) throws {
        var done = 0
        while done < buffer.count {
            let count = buffer.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw ObjectStoreError.io("pread: \(count == 0 ? "unexpected end of file" : String(cString: strerror(errno)))") }
            done += count
        }
    }

    static func writeFully(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let count = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw ObjectStoreError.io("write: \(String(cString: strerror(errno)))") }
            done += count
        }
    }

    /// POSIX `open`/`close` under names that the store's own `open(bucket:key:)` does not shadow.
    static func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        open(path, flags, mode)
    }

    static func closeFile(_ descriptor: Int32) {
        close(descriptor)
    }

    /// fsync of a directory, so a rename or link in it survives a crash.
    static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw ObjectStoreError.io("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw ObjectStoreError.io("fsync \(path): \(String(cString: strerror(errno)))") }
    }
}
