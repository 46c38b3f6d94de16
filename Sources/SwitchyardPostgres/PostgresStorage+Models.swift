import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    static let modelColumns =
        "id, team_id, display_name, model_type, storage_key, file_size, file_hash, model_path, model_status, created_at, updated_at"

    public func insertModel(_ model: ModelRecord) async throws {
        try await mapConstraint("a model on this storage_key") {
            _ = try await rows(
                """
                INSERT INTO models (\(unescaped: Self.modelColumns))
                VALUES (\(model.id), \(model.teamId), \(model.displayName), \(model.modelType), \(model.storageKey), \(model.fileSize),
                        \(model.fileHash), \(model.modelPath), \(model.status.rawValue), \(model.createdAt), \(model.updatedAt))
                """)
        }
    }

    public func model(id: UUID, teamId: UUID) async throws -> ModelRecord? {
        try await rows("SELECT \(unescaped: Self.modelColumns) FROM models WHERE id = \(id) AND team_id = \(teamId)").first.map(Self.decodeModel)
    }

    public func models(teamId: UUID, page: PageRequest) async throws -> Page<ModelRecord> {
        let total = try await rows("SELECT COUNT(*) FROM models WHERE team_id = \(teamId)").first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT \(unescaped: Self.modelColumns) FROM models WHERE team_id = \(teamId)
            ORDER BY created_at DESC, id DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeModel)
        return Page(items: items, totalCount: total)
    }

    public func updateModel(_ model: ModelRecord) async throws -> Bool {
        !(try await rows(
            """
            UPDATE models SET display_name = \(model.displayName), model_type = \(model.modelType), model_path = \(model.modelPath),
                model_status = \(model.status.rawValue), updated_at = \(model.updatedAt)
            WHERE id = \(model.id) AND team_id = \(model.teamId) RETURNING id
            """
        ).isEmpty)
    }

    public func deleteModel(id: UUID, teamId: UUID) async throws -> ModelRecord? {
        try await rows("DELETE FROM models WHERE id = \(id) AND team_id = \(teamId) RETURNING \(unescaped: Self.modelColumns)").first.map(
            Self.decodeModel)
    }

    static func decodeModel(_ row: PostgresRow) throws -> ModelRecord {
        let (id, teamId, displayName, modelType, storageKey, fileSize, fileHash, modelPath, statusName, createdAt, updatedAt) = try row.decode(
            (UUID, UUID, String, String, String, Int, String?, String?, String, Date, Date).self)
        guard let status = ModelRecord.Status(rawValue: statusName) else { throw PostgresDecodingError(column: "model_status") }
        return ModelRecord(
            id: id, teamId: teamId, displayName: displayName, modelType: modelType, storageKey: storageKey, fileSize: fileSize, fileHash: fileHash,
            modelPath: modelPath, status: status, createdAt: createdAt, updatedAt: updatedAt)
    }
}
