import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    public func insertMultipartUpload(_ upload: MultipartUpload) async throws {
        let cutoff = upload.createdAt.addingTimeInterval(-MultipartUpload.lifetime)
        _ = try await rows(
            """
            INSERT INTO multipart_uploads (upload_id, team_id, storage_key, file_size, part_size, created_by, created_at)
            VALUES (\(upload.uploadId), \(upload.teamId), \(upload.storageKey), \(upload.fileSize), \(upload.partSize), \(upload.createdBy),
                \(upload.createdAt))
            """)
        _ = try await rows("DELETE FROM multipart_uploads WHERE created_at < \(cutoff)")
    }

    public func multipartUpload(id: String, teamId: UUID) async throws -> MultipartUpload? {
        try await rows(
            """
            SELECT upload_id, team_id, storage_key, file_size, part_size, created_by, created_at
            FROM multipart_uploads WHERE upload_id = \(id) AND team_id = \(teamId)
            """
        ).first.map { row in
            let (uploadId, team, key, fileSize, partSize, createdBy, createdAt) = try row.decode((String, UUID, String, Int, Int, UUID?, Date).self)
            return MultipartUpload(
                uploadId: uploadId, teamId: team, storageKey: key, fileSize: fileSize, partSize: partSize, createdBy: createdBy, createdAt: createdAt)
        }
    }

    public func deleteMultipartUpload(id: String, teamId: UUID) async throws -> Bool {
        !(try await rows("DELETE FROM multipart_uploads WHERE upload_id = \(id) AND team_id = \(teamId) RETURNING upload_id").isEmpty)
    }
}
