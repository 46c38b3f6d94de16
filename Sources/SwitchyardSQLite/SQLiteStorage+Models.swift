import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    static let modelColumns =
        "id, team_id, display_name, model_type, storage_key, file_size, file_hash, model_path, model_status, created_at, updated_at"

    public func insertModel(_ model: ModelRecord) async throws {
        try await mapConstraint("a model on this storage_key") {
            try await write { connection in
                _ = try await connection.query(
                    "INSERT INTO models (\(Self.modelColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        .uuid(model.id), .uuid(model.teamId), .text(model.displayName), .text(model.modelType), .text(model.storageKey),
                        .integer(model.fileSize), model.fileHash.map(SQLiteData.text) ?? .null, model.modelPath.map(SQLiteData.text) ?? .null,
                        .text(model.status.rawValue), .date(model.createdAt), .date(model.updatedAt),
                    ])
            }
        }
    }

    public func model(id: UUID, teamId: UUID) async throws -> ModelRecord? {
        try await read("SELECT \(Self.modelColumns) FROM models WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)]).first.map(Self.decodeModel)
    }

    public func models(teamId: UUID, page: PageRequest) async throws -> Page<ModelRecord> {
        let total = try await read("SELECT COUNT(*) AS total FROM models WHERE team_id = ?", [.uuid(teamId)]).first?.int("total") ?? 0
        let rows = try await read(
            "SELECT \(Self.modelColumns) FROM models WHERE team_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [.uuid(teamId), .integer(page.perPage), .integer(page.offset)])
        return Page(items: try rows.map(Self.decodeModel), totalCount: total)
    }

    public func updateModel(_ model: ModelRecord) async throws -> Bool {
        try await write { connection in
            !(try await connection.query(
                """
                UPDATE models SET display_name = ?, model_type = ?, model_path = ?, model_status = ?, updated_at = ?
                WHERE id = ? AND team_id = ? RETURNING id
                """,
                [
                    .text(model.displayName), .text(model.modelType), model.modelPath.map(SQLiteData.text) ?? .null, .text(model.status.rawValue),
                    .date(model.updatedAt), .uuid(model.id), .uuid(model.teamId),
                ]
            ).isEmpty)
        }
    }

    public func deleteModel(id: UUID, teamId: UUID) async throws -> ModelRecord? {
        try await write { connection in
            try await connection.query(
                "DELETE FROM models WHERE id = ? AND team_id = ? RETURNING \(Self.modelColumns)", [.uuid(id), .uuid(teamId)]
            ).first.map(Self.decodeModel)
        }
    }

    static func decodeModel(_ row: SQLiteRow) throws -> ModelRecord {
        guard let status = ModelRecord.Status(rawValue: try row.string("model_status")) else { throw SQLiteDecodingError(column: "model_status") }
        return ModelRecord(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), displayName: try row.string("display_name"),
            modelType: try row.string("model_type"), storageKey: try row.string("storage_key"), fileSize: try row.int("file_size"),
            fileHash: row.optionalString("file_hash"), modelPath: row.optionalString("model_path"), status: status,
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}
