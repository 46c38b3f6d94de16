import Foundation

/// A multipart upload as the server issued it (`POST /uploads/multipart/initiate`): to which key, of what size, in
/// parts of which size. Part URLs sign each part's exact length and completion takes only these parts, so an
/// upload can neither grow past what was declared nor land on a key it was not issued for.
public struct MultipartUpload: Sendable, Equatable {
    /// Uploads are forgotten after this long (the store's retention aborts the parts).
    public static let lifetime: TimeInterval = 7 * 24 * 3600

    public var uploadId: String
    public var teamId: UUID
    public var storageKey: String
    public var fileSize: Int
    public var partSize: Int
    public var createdBy: UUID?
    public var createdAt: Date

    public init(uploadId: String, teamId: UUID, storageKey: String, fileSize: Int, partSize: Int, createdBy: UUID?, createdAt: Date) {
        self.uploadId = uploadId
        self.teamId = teamId
        self.storageKey = storageKey
        self.fileSize = fileSize
        self.partSize = partSize
        self.createdBy = createdBy
        self.createdAt = createdAt
    }

    public var partCount: Int { (fileSize + partSize - 1) / partSize }

    /// The exact length of part `number` (1-based): `partSize`, the last one what remains; nil past the last.
    public func length(ofPart number: Int) -> Int? {
        guard (1...partCount).contains(number) else { return nil }
        return number < partCount ? partSize : fileSize - partSize * (partCount - 1)
    }
}

/// Multipart uploads in progress.
public protocol MultipartRepository: Sendable {
    /// Records an upload (and forgets those older than `MultipartUpload.lifetime`).
    func insertMultipartUpload(_ upload: MultipartUpload) async throws
    func multipartUpload(id: String, teamId: UUID) async throws -> MultipartUpload?
    /// Forgets an upload (completed or aborted); false when there was none.
    func deleteMultipartUpload(id: String, teamId: UUID) async throws -> Bool
}
