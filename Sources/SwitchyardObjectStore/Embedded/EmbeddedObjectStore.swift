import Crypto
import Foundation
import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The disk engine of the embedded S3-compatible store. Objects are single files (body + metadata, see
/// `ObjectFile`) named by the SHA-256 of their key, so any key is a safe file name. A write goes to a temp
/// file, is fsynced, then published with `rename` (replace) or `link` (`If-None-Match: *`: fails when the
/// key exists, atomically), and the directory is fsynced — a half-written upload is never visible, and an
/// existing object is never overwritten by a conditional PUT.
///
/// ```
/// root/buckets/{bucket}/{hh}/{sha256(key)}     objects
/// root/multipart/{upload id}/upload.json, {n}  open multipart uploads and their parts
/// root/tmp/                                    writes in progress
/// ```
public final class EmbeddedObjectStore: Sendable {
    public let root: URL
    /// S3's minimum size of every part but the last.
    public static let minimumPartSize = 5 * 1024 * 1024

    public init(root: URL) throws {
        self.root = root
        for directory in ["buckets", "multipart", "tmp"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
    }

    // MARK: Buckets

    /// S3's bucket naming rules: 3–63 characters of lowercase letters, digits, `.` and `-`, starting and ending
    /// with a letter or digit.
    public static func isValidBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        let allowed = bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        let edges = [bytes.first!, bytes.last!].allSatisfy { $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "-") }
        return allowed && edges && !name.contains("..")
    }

    /// Creates a bucket; creating one that exists is fine (the store has a single owner).
    public func createBucket(_ name: String) throws {
        guard Self.isValidBucketName(name) else { throw ObjectStoreError.invalidBucketName(name) }
        try FileManager.default.createDirectory(atPath: bucketPath(name), withIntermediateDirectories: true)
        try ObjectFile.syncDirectory(root.appendingPathComponent("buckets").path)
    }

    public func bucketExists(_ name: String) -> Bool {
        guard Self.isValidBucketName(name) else { return false }
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: bucketPath(name), isDirectory: &isDirectory) && isDirectory.boolValue
    }

    // MARK: Objects

    /// Starts writing an object; feed it with `write`, then `commit` it with `publish`.
    public func beginPut(bucket: String, key: String, contentType: String?) throws -> PendingWrite {
        guard bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
        return try PendingWrite(temporaryDirectory: root.appendingPathComponent("tmp").path, key: key, contentType: contentType)
    }

    /// Publishes a finished write as `key`: replacing what is there, or, with `ifNoneMatch`, only if nothing is.
    @discardableResult
    public func publish(_ write: PendingWrite, bucket: String, ifNoneMatch: Bool, now: Date) throws -> ObjectInfo {
        let (path, directory) = objectPath(bucket: bucket, key: write.key)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let info = try write.finish(now: now)
        defer { write.discard() }
        if ifNoneMatch {
            guard link(write.path, path) == 0 else {
                if errno == EEXIST { throw ObjectStoreError.preconditionFailed }
                throw ObjectStoreError.io("link: \(String(cString: strerror(errno)))")
            }
        } else {
            guard rename(write.path, path) == 0 else { throw ObjectStoreError.io("rename: \(String(cString: strerror(errno)))") }
        }
        try ObjectFile.syncDirectory(directory)
        return info
    }

    public func info(bucket: String, key: String) throws -> ObjectInfo {
        let reader = try open(bucket: bucket, key: key)
        defer { reader.close() }
        return reader.info
    }

    /// Opens an object for reading.
    public func open(bucket: String, key: String) throws -> ObjectReader {
        guard bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
        let descriptor = ObjectFile.openFile(objectPath(bucket: bucket, key: key).path, O_RDONLY)
        guard descriptor >= 0 else {
            if errno == ENOENT { throw ObjectStoreError.noSuchKey(key) }
            throw ObjectStoreError.io("open: \(String(cString: strerror(errno)))")
        }
        do {
            return ObjectReader(descriptor: descriptor, info: try ObjectFile.readInfo(descriptor: descriptor))
        } catch {
            ObjectFile.closeFile(descriptor)
            throw error
        }
    }

    /// Deletes an object; deleting a missing one succeeds, as in S3.
    public func delete(bucket: String, key: String) throws {
        guard bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
        let (path, directory) = objectPath(bucket: bucket, key: key)
        guard unlink(path) == 0 || errno == ENOENT else { throw ObjectStoreError.io("unlink: \(String(cString: strerror(errno)))") }
        try? ObjectFile.syncDirectory(directory)
    }

    /// Objects whose key starts with `prefix`, in key order, after `startAfter`, at most `limit` (and whether
    /// more follow). Reads every object's metadata: fine for the embedded store's scale and the reaper's pace.
    public func list(bucket: String, prefix: String, startAfter: String?, limit: Int) throws -> (objects: [ObjectInfo], truncated: Bool) {
        guard bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
        var found: [ObjectInfo] = []
        let root = bucketPath(bucket)
        for shard in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(shard)")) ?? [] {
                guard let reader = try? ObjectReader.open(path: "\(root)/\(shard)/\(name)") else { continue }
                let info = reader.info
                reader.close()
                if info.key.hasPrefix(prefix), startAfter.map({ info.key > $0 }) ?? true { found.append(info) }
            }
        }
        found.sort { $0.key < $1.key }
        return (Array(found.prefix(limit)), found.count > limit)
    }

    // MARK: Multipart uploads

    struct Upload: Codable {
        var bucket: String
        var key: String
        var contentType: String?
        var initiated: Date
    }

    /// Starts a multipart upload and returns its id.
    public func createMultipartUpload(bucket: String, key: String, contentType: String?, now: Date) throws -> String {
        guard bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
        let uploadId = Hex.encode(SystemRandomNumberGenerator.bytes(16))
        let directory = root.appendingPathComponent("multipart/\(uploadId)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        try encoder.encode(Upload(bucket: bucket, key: key, contentType: contentType, initiated: now)).write(
            to: directory.appendingPathComponent("upload.json"), options: .atomic)
        return uploadId
    }

    /// Starts writing part `partNumber` (1–10000) of an upload of `key` in `bucket`.
    public func beginPart(bucket: String, key: String, uploadId: String, partNumber: Int) throws -> PendingWrite {
        guard (1...10_000).contains(partNumber) else { throw ObjectStoreError.invalidPart("part number \(partNumber) is outside 1–10000") }
        _ = try upload(uploadId, bucket: bucket, key: key)
        return try PendingWrite(temporaryDirectory: root.appendingPathComponent("tmp").path, key: String(partNumber), contentType: nil)
    }

    /// Stores a finished part (a part uploaded again replaces the earlier one, as in S3).
    @discardableResult
    public func publishPart(_ write: PendingWrite, uploadId: String, now: Date) throws -> ObjectInfo {
        let directory = root.appendingPathComponent("multipart/\(uploadId)").path
        let info = try write.finish(now: now)
        defer { write.discard() }
        guard rename(write.path, "\(directory)/\(write.key)") == 0 else {
            throw ObjectStoreError.io("rename: \(String(cString: strerror(errno)))")
        }
        try ObjectFile.syncDirectory(directory)
        return info
    }

    /// The parts uploaded so far, by part number.
    public func listParts(bucket: String, key: String, uploadId: String) throws -> [(partNumber: Int, info: ObjectInfo)] {
        _ = try upload(uploadId, bucket: bucket, key: key)
        let directory = root.appendingPathComponent("multipart/\(uploadId)")
        let numbers = try FileManager.default.contentsOfDirectory(atPath: directory.path).compactMap(Int.init).sorted()
        return try numbers.map { number in
            let descriptor = ObjectFile.openFile(directory.appendingPathComponent(String(number)).path, O_RDONLY)
            guard descriptor >= 0 else { throw ObjectStoreError.io("open part: \(String(cString: strerror(errno)))") }
            defer { ObjectFile.closeFile(descriptor) }
            return (number, try ObjectFile.readInfo(descriptor: descriptor))
        }
    }

    /// Joins the named parts (ascending, ETags matching, all but the last ≥ 5 MiB) into the object.
    /// Joins the parts into `key`: replacing what is there, or, with `ifNoneMatch`, only if nothing is (the upload
    /// stays, to be completed elsewhere or aborted).
    public func completeMultipartUpload(
        bucket: String, key: String, uploadId: String, parts: [(partNumber: Int, etag: String)], ifNoneMatch: Bool = false, now: Date
    ) throws -> ObjectInfo {
        let upload = try upload(uploadId, bucket: bucket, key: key)
        guard !parts.isEmpty else { throw ObjectStoreError.invalidPart("the upload names no parts") }
        guard zip(parts, parts.dropFirst()).allSatisfy({ $0.partNumber < $1.partNumber }) else { throw ObjectStoreError.invalidPartOrder }
        let stored = Dictionary(uniqueKeysWithValues: try listParts(bucket: bucket, key: key, uploadId: uploadId).map { ($0.partNumber, $0.info) })
        var digests: [UInt8] = []
        for (index, part) in parts.enumerated() {
            let wanted = part.etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            guard let info = stored[part.partNumber], info.etag == wanted else {
                throw ObjectStoreError.invalidPart("part \(part.partNumber) was not uploaded with ETag \(wanted)")
            }
            if index < parts.count - 1 && info.size < Self.minimumPartSize { throw ObjectStoreError.entityTooSmall(partNumber: part.partNumber) }
            digests += Self.bytes(fromHex: info.etag)
        }
        let write = try beginPut(bucket: bucket, key: key, contentType: upload.contentType)
        let directory = root.appendingPathComponent("multipart/\(uploadId)")
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        do {
            for part in parts {
                let reader = try ObjectReader.open(path: directory.appendingPathComponent(String(part.partNumber)).path)
                defer { reader.close() }
                var offset = 0
                while offset < reader.info.size {
                    let count = try reader.read(into: &buffer, offset: offset)
                    try buffer.withUnsafeBytes { try write.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    offset += count
                }
            }
        } catch {
            write.discard()
            throw error
        }
        write.etagOverride = "\(Hex.encode(Insecure.MD5.hash(data: digests)))-\(parts.count)"
        let info = try publish(write, bucket: bucket, ifNoneMatch: ifNoneMatch, now: now)
        try? FileManager.default.removeItem(at: directory)
        return info
    }

    /// Aborts an upload and deletes its parts.
    public func abortMultipartUpload(bucket: String, key: String, uploadId: String) throws {
        _ = try upload(uploadId, bucket: bucket, key: key)
        try FileManager.default.removeItem(at: root.appendingPathComponent("multipart/\(uploadId)"))
    }

    /// The open uploads of `bucket` under `prefix`: id, key and when each started.
    public func uploads(bucket: String, prefix: String) throws -> [(uploadId: String, key: String, initiated: Date)] {
        guard bucketExists(bucket) else { throw ObjectStoreError.noSuchBucket(bucket) }
        return try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("multipart").path).compactMap { uploadId in
            guard let upload = try? readUpload(uploadId), upload.bucket == bucket, upload.key.hasPrefix(prefix) else { return nil }
            return (uploadId, upload.key, upload.initiated)
        }.sorted { ($0.key, $0.uploadId) < ($1.key, $1.uploadId) }
    }

    // MARK: Paths

    private func bucketPath(_ bucket: String) -> String {
        root.appendingPathComponent("buckets/\(bucket)").path
    }

    private func objectPath(bucket: String, key: String) -> (path: String, directory: String) {
        let name = Hex.encode(SHA256.hash(data: Array(key.utf8)))
        let directory = "\(bucketPath(bucket))/\(name.prefix(2))"
        return ("\(directory)/\(name)", directory)
    }

    private func upload(_ uploadId: String, bucket: String, key: String) throws -> Upload {
        guard uploadId.utf8.count == 32, uploadId.utf8.allSatisfy({ Hex.isDigit($0) }), let upload = try? readUpload(uploadId),
            upload.bucket == bucket,
            upload.key == key
        else { throw ObjectStoreError.noSuchUpload(uploadId) }
        return upload
    }

    private func readUpload(_ uploadId: String) throws -> Upload {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(Upload.self, from: Data(contentsOf: root.appendingPathComponent("multipart/\(uploadId)/upload.json")))
    }

    private static func bytes(fromHex hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            bytes.append(UInt8(Hex.value(high) << 4 | Hex.value(low)))
        }
        return bytes
    }
}

/// An object (or part) being written to a temp file, hashed as it goes.
///
/// `@unchecked Sendable`: a write belongs to one request, which feeds it sequentially and then hands it to a
/// blocking-I/O thread for the final fsync while awaiting that thread; it is never used from two threads at
/// once.
public final class PendingWrite: @unchecked Sendable {
    let path: String
    let key: String
    let contentType: String?
    private var descriptor: Int32
    private var md5 = Insecure.MD5()
    private var sha256 = SHA256()
    public private(set) var bytesWritten = 0
    /// Set for multipart objects, whose ETag is not the MD5 of their bytes.
    var etagOverride: String?

    init(temporaryDirectory: String, key: String, contentType: String?) throws {
        self.path = "\(temporaryDirectory)/\(Hex.encode(SystemRandomNumberGenerator.bytes(16)))"
        self.key = key
        self.contentType = contentType
        self.descriptor = ObjectFile.openFile(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw ObjectStoreError.io("open temp file: \(String(cString: strerror(errno)))") }
    }

    deinit { discard() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        md5.update(bufferPointer: bytes)
        sha256.update(bufferPointer: bytes)
        try ObjectFile.writeFully(descriptor, bytes)
        bytesWritten += bytes.count
    }

    /// Checks the body against what the request declared (length, and the signed SHA-256 unless unsigned).
    public func verify(expectedLength: Int?, expectedSHA256: String?) throws {
        if let expectedLength, expectedLength != bytesWritten {
            throw ObjectStoreError.incompleteBody(expected: expectedLength, received: bytesWritten)
        }
        if let expectedSHA256, Hex.encode(sha256.finalize()) != expectedSHA256 { throw ObjectStoreError.contentSHA256Mismatch }
    }

    /// Appends the metadata and fsyncs; the file is then ready to be renamed or linked into place.
    func finish(now: Date) throws -> ObjectInfo {
        let info = ObjectInfo(
            key: key, size: bytesWritten, etag: etagOverride ?? Hex.encode(md5.finalize()), contentType: contentType ?? "binary/octet-stream",
            lastModified: Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down)))
        try ObjectFile.trailer(for: info).withUnsafeBytes { try ObjectFile.writeFully(descriptor, $0) }
        guard fsync(descriptor) == 0 else { throw ObjectStoreError.io("fsync: \(String(cString: strerror(errno)))") }
        return info
    }

    /// Closes and removes the temp file (after a publish, only the name in tmp/ goes).
    public func discard() {
        if descriptor >= 0 {
            ObjectFile.closeFile(descriptor)
            descriptor = -1
        }
        unlink(path)
    }
}

/// An open object: its metadata and positional reads of its body.
public final class ObjectReader: Sendable {
    public let info: ObjectInfo
    private let descriptor: Int32

    init(descriptor: Int32, info: ObjectInfo) {
        self.descriptor = descriptor
        self.info = info
    }

    static func open(path: String) throws -> ObjectReader {
        let descriptor = ObjectFile.openFile(path, O_RDONLY)
        guard descriptor >= 0 else { throw ObjectStoreError.io("open: \(String(cString: strerror(errno)))") }
        return ObjectReader(descriptor: descriptor, info: try ObjectFile.readInfo(descriptor: descriptor))
    }

    /// Reads up to `buffer.count` (and `limit`) body bytes at `offset`; returns how many (0 at the end of the body).
    public func read(into buffer: inout [UInt8], offset: Int, limit: Int = .max) throws -> Int {
        let wanted = min(buffer.count, info.size - offset, limit)
        guard wanted > 0 else { return 0 }
        var done = 0
        while done < wanted {
            let count = buffer.withUnsafeMutableBytes { raw in pread(descriptor, raw.baseAddress! + done, wanted - done, off_t(offset + done)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw ObjectStoreError.io("pread: \(String(cString: strerror(errno)))") }
            done += count
        }
        return done
    }

    public func close() {
        ObjectFile.closeFile(descriptor)
    }
}

extension SystemRandomNumberGenerator {
    static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
