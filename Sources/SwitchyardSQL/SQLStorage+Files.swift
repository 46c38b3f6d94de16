import Foundation
import SwitchyardCore

extension SQLColumns {
    static let model =
        """
        id, team_id, display_name, model_type, storage_key, file_size, file_hash, model_path, model_status, verification, \
        verification_error, created_at, updated_at
        """
}

extension SQLStorage {
    // MARK: Models

    public func insertModel(_ model: ModelRecord) async throws {
        try await mapConstraint("a model on this storage_key") {
            _ = try await write(
                """
                INSERT INTO models (\(raw: SQLColumns.model))
                VALUES (\(model.id), \(model.teamId), \(model.displayName), \(model.modelType), \(model.storageKey), \(model.fileSize),
                        \(model.fileHash), \(model.modelPath), \(model.status.rawValue), \(model.verification.column),
                        \(model.verification.error), \(model.createdAt), \(model.updatedAt))
                """)
        }
    }

    public func model(id: UUID, teamId: UUID) async throws -> ModelRecord? {
        try await read("SELECT \(raw: SQLColumns.model) FROM models WHERE id = \(id) AND team_id = \(teamId)").first.map(ModelRecord.init(row:))
    }

    public func models(teamId: UUID, page: PageRequest) async throws -> Page<ModelRecord> {
        try await self.page(SQLColumns.model, from: "models", where: "team_id = \(teamId)", page, ModelRecord.init(row:))
    }

    public func syncedModels(teamId: UUID, limit: Int) async throws -> [ModelRecord] {
        try await read(
            """
            SELECT \(raw: SQLColumns.model) FROM models
            WHERE team_id = \(teamId) AND model_status = 'active' AND model_path IS NOT NULL AND verification IS NULL
            ORDER BY created_at, id LIMIT \(limit)
            """
        ).map(ModelRecord.init(row:))
    }

    public func modelsToVerify(limit: Int) async throws -> [ModelRecord] {
        try await read("SELECT \(raw: SQLColumns.model) FROM models WHERE verification = 'pending' ORDER BY created_at, id LIMIT \(limit)")
            .map(ModelRecord.init(row:))
    }

    public func finishVerification(id: UUID, teamId: UUID, _ outcome: ModelRecord.Verification, at date: Date) async throws -> Bool {
        try await wrote(
            """
            UPDATE models SET verification = \(outcome.column), verification_error = \(outcome.error), updated_at = \(date)
            WHERE id = \(id) AND team_id = \(teamId) AND verification = 'pending' RETURNING id
            """)
    }

    public func updateModel(_ model: ModelRecord) async throws -> Bool {
        try await wrote(
            """
            UPDATE models SET display_name = \(model.displayName), model_type = \(model.modelType), model_path = \(model.modelPath),
                model_status = \(model.status.rawValue), updated_at = \(model.updatedAt)
            WHERE id = \(model.id) AND team_id = \(model.teamId) RETURNING id
            """)
    }

    public func deleteModel(id: UUID, teamId: UUID) async throws -> ModelRecord? {
        try await write("DELETE FROM models WHERE id = \(id) AND team_id = \(teamId) RETURNING \(raw: SQLColumns.model)")
            .first.map(ModelRecord.init(row:))
    }

    // MARK: Multipart uploads

    public func insertMultipartUpload(_ upload: MultipartUpload) async throws {
        try await transaction { transaction in
            _ = try await transaction.query(
                """
                INSERT INTO multipart_uploads (upload_id, team_id, storage_key, file_size, part_size, created_by, created_at)
                VALUES (\(upload.uploadId), \(upload.teamId), \(upload.storageKey), \(upload.fileSize), \(upload.partSize),
                    \(upload.createdBy), \(upload.createdAt))
                """)
            _ = try await transaction.query(
                "DELETE FROM multipart_uploads WHERE created_at < \(upload.createdAt.addingTimeInterval(-MultipartUpload.lifetime))")
        }
    }

    public func multipartUpload(id: String, teamId: UUID) async throws -> MultipartUpload? {
        try await read(
            """
            SELECT upload_id, team_id, storage_key, file_size, part_size, created_by, created_at
            FROM multipart_uploads WHERE upload_id = \(id) AND team_id = \(teamId)
            """
        ).first.map { row in
            MultipartUpload(
                uploadId: try row.string("upload_id"), teamId: try row.uuid("team_id"), storageKey: try row.string("storage_key"),
                fileSize: try row.int("file_size"), partSize: try row.int("part_size"), createdBy: try row.optionalUUID("created_by"),
                createdAt: try row.date("created_at"))
        }
    }

    public func deleteMultipartUpload(id: String, teamId: UUID) async throws -> Bool {
        try await wrote("DELETE FROM multipart_uploads WHERE upload_id = \(id) AND team_id = \(teamId) RETURNING upload_id")
    }

    // MARK: Retention

    public func tasksWithOutputsDue(completedBefore date: Date, limit: Int) async throws -> [(taskId: UUID, teamId: UUID)] {
        try await read(
            """
            SELECT id, team_id FROM tasks
            WHERE task_status = 'completed' AND completed_at < \(date)
              AND NOT EXISTS (SELECT 1 FROM task_output_expiries e WHERE e.task_id = tasks.id)
            ORDER BY completed_at LIMIT \(limit)
            """
        ).map { (taskId: try $0.uuid("id"), teamId: try $0.uuid("team_id")) }
    }

    public func markOutputsExpired(taskId: UUID, teamId: UUID, at date: Date) async throws {
        _ = try await write(
            "INSERT INTO task_output_expiries (task_id, team_id, expired_at) VALUES (\(taskId), \(teamId), \(date)) ON CONFLICT (task_id) DO NOTHING")
    }

    public func outputsExpiredAt(taskId: UUID, teamId: UUID) async throws -> Date? {
        try await read("SELECT expired_at FROM task_output_expiries WHERE task_id = \(taskId) AND team_id = \(teamId)").first?.date("expired_at")
    }

    public func recordRetentionSweep(_ sweep: RetentionSweep) async throws {
        _ = try await write(
            """
            INSERT INTO retention_sweeps (id, started_at, finished_at, inputs_deleted, outputs_expired, uploads_aborted, error)
            VALUES (\(sweep.id), \(sweep.startedAt), \(sweep.finishedAt), \(sweep.inputsDeleted), \(sweep.outputsExpired),
                    \(sweep.uploadsAborted), \(sweep.error))
            """)
    }

    public func retentionSweeps(limit: Int) async throws -> [RetentionSweep] {
        try await read(
            """
            SELECT id, started_at, finished_at, inputs_deleted, outputs_expired, uploads_aborted, error
            FROM retention_sweeps ORDER BY started_at DESC, id DESC LIMIT \(limit)
            """
        ).map { row in
            RetentionSweep(
                id: try row.uuid("id"), startedAt: try row.date("started_at"), finishedAt: try row.date("finished_at"),
                inputsDeleted: try row.int("inputs_deleted"), outputsExpired: try row.int("outputs_expired"),
                uploadsAborted: try row.int("uploads_aborted"), error: try row.optionalString("error"))
        }
    }
}

extension ModelRecord {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), displayName: try row.string("display_name"),
            modelType: try row.string("model_type"), storageKey: try row.string("storage_key"), fileSize: try row.int("file_size"),
            fileHash: try row.optionalString("file_hash"), modelPath: try row.optionalString("model_path"), status: try row.value("model_status"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
        switch try row.optionalString("verification") {
        case "pending": verification = .pending
        case "failed": verification = .failed(try row.optionalString("verification_error") ?? "the file did not match its file_hash")
        default: verification = .done
        }
    }
}

extension ModelRecord.Verification {
    /// The `verification` column: NULL once done.
    var column: String? {
        switch self {
        case .done: nil
        case .pending: "pending"
        case .failed: "failed"
        }
    }

    var error: String? {
        if case .failed(let message) = self { message } else { nil }
    }
}
