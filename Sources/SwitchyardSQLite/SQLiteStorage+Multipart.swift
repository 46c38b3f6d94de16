import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    public func insertMultipartUpload(_ upload: MultipartUpload) async throws {
        try await write { connection in
            _ = try await connection.query(
                """
                INSERT INTO multipart_uploads (upload_id, team_id, storage_key, file_size, part_size, created_by, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(upload.uploadId), .uuid(upload.teamId), .text(upload.storageKey), .integer(upload.fileSize), .integer(upload.partSize),
                    upload.createdBy.map(SQLiteData.uuid) ?? .null, .date(upload.createdAt),
                ])
            _ = try await connection.query(
                "DELETE FROM multipart_uploads WHERE created_at < ?", [.date(upload.createdAt.addingTimeInterval(-MultipartUpload.lifetime))])
        }
    }

    public func multipartUpload(id: String, teamId: UUID) async throws -> MultipartUpload? {
        try await read("SELECT * FROM multipart_uploads WHERE upload_id = ? AND team_id = ?", [.text(id), .uuid(teamId)]).first.map { row in
            MultipartUpload(
                uploadId: try row.string("upload_id"), teamId: try row.uuid("team_id"), storageKey: try row.string("storage_key"),
                fileSize: try row.int("file_size"), partSize: try row.int("part_size"), createdBy: try row.optionalUUID("created_by"),
                createdAt: try row.date("created_at"))
        }
    }

    public func deleteMultipartUpload(id: String, teamId: UUID) async throws -> Bool {
        try await write { connection in
            !(try await connection.query(
                "DELETE FROM multipart_uploads WHERE upload_id = ? AND team_id = ? RETURNING upload_id", [.text(id), .uuid(teamId)]
            ).isEmpty)
        }
    }
}
