import Foundation
import Hummingbird
import SwitchyardCore
import SwitchyardObjectStore

/// `/models` (api.md §2.4, management surface): presign an upload, register the uploaded file, read, list,
/// edit and delete. Every member reads; owners and admins change (as for workflows).
struct ModelsController {
    let storage: any SwitchyardStorage
    let objects: ObjectStorage
    let clock: any WallClock
    /// Tells the team's agents that sync that its model set changed.
    let dispatcher: Dispatcher
    /// Checks the hash of files above `verifyInlineMaxBytes` after the registration answered.
    let verifier: ModelVerifier
    let verifyInlineMaxBytes: Int

    /// S3's largest object: what a multipart upload can reach.
    static let maximumModelSize = 5 * 1024 * 1024 * 1024 * 1024

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("presign", use: presign)
        group.post(use: register)
        group.get(use: list)
        group.get("{modelId}", use: detail)
        group.put("{modelId}", use: update)
        group.delete("{modelId}", use: delete)
    }

    /// `models/{team}/{uuid}` for a new upload; the answer carries a single PUT URL when the file fits the
    /// single-upload cap, else `upload_method: "multipart"` and no URL (use `/uploads/multipart/*`).
    /// Where to upload a model file: one `PUT` (`upload_method: "put"`), or `multipart` without a URL.
    struct Presigned: ResponseEncodable {
        let storageKey: String
        let uploadUrl: String
        let uploadHeaders: [String: String]
        let uploadMethod: String
        var expiresAt: Date?
    }

    /// A registered model (api.md §2.4).
    struct Model: ResponseEncodable, Sendable {
        let id: UUID
        let displayName: String
        let modelType: String
        let storageKey: String
        let fileSize: Int
        @Nullable var fileHash: String?
        @Nullable var modelPath: String?
        /// `active`, `disabled`, or — for a large file — `verifying` while its `file_hash` is checked and `rejected`
        /// when it did not match (`verification_error` says why).
        let modelStatus: String
        @Nullable var verificationError: String?
        let createdAt: Date
        let updatedAt: Date

        init(_ model: ModelRecord) {
            self.id = model.id
            self.displayName = model.displayName
            self.modelType = model.modelType
            self.storageKey = model.storageKey
            self.fileSize = model.fileSize
            self.fileHash = model.fileHash
            self.modelPath = model.modelPath
            self.modelStatus = model.presentedStatus
            if case .failed(let reason) = model.verification { self.verificationError = reason }
            self.createdAt = model.createdAt
            self.updatedAt = model.updatedAt
        }
    }

    @Sendable func presign(_ request: Request, context: SwitchyardRequestContext) async throws -> Presigned {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let teamId = try caller.requireTeam()
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        _ = try fields.required("file_name") { key throws(SwitchyardError) in try fields.string(key, length: 1...255) }
        guard let size = try fields.number("file_size") else { throw SwitchyardError.invalid("field \"file_size\" is required") }
        guard let fileSize = size.intValue, fileSize >= 1 else {
            throw SwitchyardError.invalid("field \"file_size\" must be a whole number of bytes, at least 1, not \(size)")
        }
        guard fileSize <= Self.maximumModelSize else {
            throw SwitchyardError.invalid("field \"file_size\": \(fileSize) bytes is above S3's object limit of \(Self.maximumModelSize) bytes")
        }
        _ = try fields.required("model_type") { key throws(SwitchyardError) in try fields.string(key, length: 1...50) }
        let path = try fields.required("model_path") { key throws(SwitchyardError) in try fields.string(key, length: 1...1024) }
        if let rule = ModelFields.pathViolation(path) { throw SwitchyardError.invalid("field \"model_path\" \(rule)") }

        let now = clock.now()
        let key = "models/\(teamId.lowercased)/\(UUIDv7.make(at: now).lowercased)"
        guard fileSize <= objects.maximumUploadSize else {
            return Presigned(storageKey: key, uploadUrl: "", uploadHeaders: [:], uploadMethod: "multipart")
        }
        let (url, headers) = objects.presigner.presignedPut(key: key, contentLength: fileSize, expires: objects.presignLifetime, now: now)
        return Presigned(
            storageKey: key, uploadUrl: url, uploadHeaders: [String: String](signedHeaders: headers), uploadMethod: "put",
            expiresAt: now.addingTimeInterval(TimeInterval(objects.presignLifetime)))
    }

    /// Confirms an upload: the object must exist at `storage_key` (a key issued to this team), match a given
    /// `file_size`, and hash to a given `file_hash`.
    @Sendable func register(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Identified> {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let teamId = try caller.requireTeam()
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let displayName = try fields.required("display_name") { key throws(SwitchyardError) in try fields.string(key, length: 1...255, trim: true) }
        let modelType = try fields.required("model_type") { key throws(SwitchyardError) in try fields.string(key, length: 1...50) }
        let storageKey = try fields.required("storage_key") { key throws(SwitchyardError) in try fields.string(key, length: 1...1024) }
        let declaredSize = try fields.integer("file_size", range: 0...Self.maximumModelSize)
        var fileHash: String?
        if let raw = try fields.string("file_hash") {
            guard let normalized = ModelFields.normalizedHash(raw) else {
                throw SwitchyardError.invalid("field \"file_hash\" must be sha256: followed by 64 hex digits")
            }
            fileHash = normalized
        }
        let modelPath = try fields.string("model_path", length: 1...1024)
        if let modelPath, let rule = ModelFields.pathViolation(modelPath) { throw SwitchyardError.invalid("field \"model_path\" \(rule)") }
        guard Self.isIssued(storageKey, to: teamId) else {
            throw SwitchyardError.invalid("field \"storage_key\": \"\(storageKey)\" was not issued to this team by POST /models/presign")
        }
        guard let head = try await objects.client.headObject(key: storageKey) else {
            throw SwitchyardError.invalid("field \"storage_key\": nothing was uploaded at \"\(storageKey)\" yet")
        }
        if let declaredSize, declaredSize != head.size {
            throw SwitchyardError.invalid("field \"file_size\": \(declaredSize) does not match the uploaded file's \(head.size) bytes")
        }
        // A large file is hashed after the answer (`verifying`), so the request does not wait minutes on it.
        let inBackground = fileHash != nil && head.size > verifyInlineMaxBytes
        if let fileHash, !inBackground {
            let (digest, _) = try await objects.client.sha256(key: storageKey)
            guard "sha256:\(digest)" == fileHash else {
                throw SwitchyardError.invalid("field \"file_hash\": the uploaded file hashes to sha256:\(digest), not \(fileHash)")
            }
        }
        let now = clock.now()
        var model = ModelRecord(
            id: UUIDv7.make(at: now), teamId: teamId, displayName: displayName, modelType: modelType, storageKey: storageKey, fileSize: head.size,
            fileHash: fileHash, modelPath: modelPath, createdAt: now, updatedAt: now)
        model.verification = inBackground ? .pending : .done
        try await storage.insertModel(model)
        if inBackground {
            await verifier.enqueue(id: model.id, teamId: teamId)
        } else {
            await dispatcher.modelsChanged(teamId: teamId)
        }
        return EditedResponse(status: .created, response: Identified(id: model.id))
    }

    @Sendable func detail(_ request: Request, context: SwitchyardRequestContext) async throws -> Model {
        Model(try await load(context))
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<Model> {
        let page = try request.pageRequest
        let result = try await storage.models(teamId: try context.requireCaller().requireTeam(), page: page)
        return Listing("model_list", result.items.map(Model.init), page: page, totalCount: result.totalCount)
    }

    /// Edits display name, type, path and status; fields left out keep their values.
    @Sendable func update(_ request: Request, context: SwitchyardRequestContext) async throws -> Model {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        var model = try await load(context)
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        if let name = try fields.string("display_name", length: 1...255, trim: true) { model.displayName = name }
        if let type = try fields.string("model_type", length: 1...50) { model.modelType = type }
        if fields.has("model_path") {
            let path = try fields.string("model_path", length: 1...1024)
            if let path, let rule = ModelFields.pathViolation(path) { throw SwitchyardError.invalid("field \"model_path\" \(rule)") }
            model.modelPath = path
        }
        if let status = try fields.enumeration("model_status", ModelRecord.Status.self) {
            switch model.verification {
            case .done: model.status = status
            case .pending:
                throw SwitchyardError.conflict("the model's file_hash is still being checked (model_status verifying); its status can change after")
            case .failed:
                throw SwitchyardError.conflict("the model was rejected: its file did not match file_hash; register the file again")
            }
        }
        model.updatedAt = clock.now()
        guard try await storage.updateModel(model) else { throw SwitchyardError.notFound("model not found") }
        await dispatcher.modelsChanged(teamId: model.teamId)
        return Model(model)
    }

    /// Deletes the record, then the file (a failure to delete the file is logged; the reaper's sweep of
    /// unreferenced model files is the backstop).
    @Sendable func delete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let id = try context.parameters.requireUUID("modelId")
        guard let deleted = try await storage.deleteModel(id: id, teamId: try caller.requireTeam()) else {
            throw SwitchyardError.notFound("model not found")
        }
        await dispatcher.modelsChanged(teamId: deleted.teamId)
        do {
            try await objects.client.deleteObject(key: deleted.storageKey)
        } catch {
            context.logger.warning("model file not deleted", metadata: ["storage_key": "\(deleted.storageKey)", "error": "\(error)"])
        }
        return Response(status: .noContent)
    }

    private func load(_ context: SwitchyardRequestContext) async throws -> ModelRecord {
        let id = try context.parameters.requireUUID("modelId")
        guard let model = try await storage.model(id: id, teamId: try context.requireCaller().requireTeam()) else {
            throw SwitchyardError.notFound("model not found")
        }
        return model
    }

    /// `models/{team}/{uuid}` of this team.
    static func isIssued(_ key: String, to teamId: UUID) -> Bool {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        return segments.count == 3 && segments[0] == "models" && UUID(text: segments[1]) == teamId && UUID(text: segments[2]) != nil
    }
}
