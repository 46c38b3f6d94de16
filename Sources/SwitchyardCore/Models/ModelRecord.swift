import Foundation

/// A registered model file (api.md §2.4): metadata over an object at `storageKey` (`models/{team}/{uuid}`).
public struct ModelRecord: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        case active
        case disabled
    }

    public var id: UUID
    public var teamId: UUID
    public var displayName: String
    /// The ComfyUI models subdirectory: `checkpoints`, `loras`, `vae`, …
    public var modelType: String
    public var storageKey: String
    public var fileSize: Int
    /// `sha256:<hex>`, verified against the stored bytes when given at registration.
    public var fileHash: String?
    /// Where agents place the file, relative (`models/checkpoints/sdxl.safetensors`).
    public var modelPath: String?
    public var status: Status
    /// Whether its `file_hash` is still being checked (registered large), or did not match.
    public var verification: Verification = .done
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: UUID, teamId: UUID, displayName: String, modelType: String, storageKey: String, fileSize: Int, fileHash: String?, modelPath: String?,
        status: Status = .active, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.teamId = teamId
        self.displayName = displayName
        self.modelType = modelType
        self.storageKey = storageKey
        self.fileSize = fileSize
        self.fileHash = fileHash
        self.modelPath = modelPath
        self.status = status
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The check of a large file's `file_hash` after its registration.
    public enum Verification: Sendable, Equatable {
        /// Checked at registration, or nothing to check.
        case done
        case pending
        /// The bytes did not hash to `file_hash` (or could not be read): the model is never synced.
        case failed(String)
    }

    /// `model_status` as the API shows it: `verifying` and `rejected` while (or because) the check did not pass.
    public var presentedStatus: String {
        switch verification {
        case .done: status.rawValue
        case .pending: "verifying"
        case .failed: "rejected"
        }
    }

    /// Where an agent places the file, as ComfyUI's loaders and `required_models` name it: `<model_type>/<path>`,
    /// with a leading `models/<model_type>/` (or `<model_type>/`) of `model_path` taken as the same place (§2.4's
    /// example path starts with `models/checkpoints/`). Nil without a `model_path`: such a model is not synced.
    public var placement: String? { Self.placement(modelPath: modelPath, modelType: modelType) }

    /// Where a model with this path and type lands under the models folder (`<type>/<file>`), as agents report it.
    public static func placement(modelPath: String?, modelType: String) -> String? {
        guard let modelPath else { return nil }
        var path = Substring(modelPath)
        if path.hasPrefix("models/") { path = path.dropFirst("models/".count) }
        if path.hasPrefix(modelType + "/") { path = path.dropFirst(modelType.count + 1) }
        return path.isEmpty ? nil : "\(modelType)/\(path)"
    }
}

/// Registered models, always scoped by team.
public protocol ModelRepository: Sendable {
    /// Stores a model; a second model on the same `storageKey` is a conflict.
    func insertModel(_ model: ModelRecord) async throws
    func model(id: UUID, teamId: UUID) async throws -> ModelRecord?
    /// Newest first.
    func models(teamId: UUID, page: PageRequest) async throws -> Page<ModelRecord>
    /// The team's `active` models with a `model_path` — what its agents sync — oldest first, at most `limit`.
    /// Models whose `file_hash` is still checked, or did not match, are left out.
    func syncedModels(teamId: UUID, limit: Int) async throws -> [ModelRecord]
    /// Models of every team whose check is pending, oldest first, at most `limit`.
    func modelsToVerify(limit: Int) async throws -> [ModelRecord]
    /// Records the check's outcome (`.done` or `.failed`) while it is still pending; false otherwise.
    func finishVerification(id: UUID, teamId: UUID, _ outcome: ModelRecord.Verification, at date: Date) async throws -> Bool
    /// Writes the editable fields (display name, type, path, status, `updated_at`); false when there is no such model.
    func updateModel(_ model: ModelRecord) async throws -> Bool
    /// Deletes a model and returns what was deleted, or nil when there was none.
    func deleteModel(id: UUID, teamId: UUID) async throws -> ModelRecord?
}

/// The rules of §2.4's model fields.
public enum ModelFields {
    /// `model_path`: `^(?!/)(?!.*\.\.)(?!.*\\)[\w./ -]+$` — relative, no `..`, no backslash; word characters, `.`,
    /// `/`, space and `-`. Nil when valid, else the rule broken.
    public static func pathViolation(_ path: String) -> String? {
        if path.isEmpty { return "must not be empty" }
        if path.hasPrefix("/") { return "must be relative (no leading /)" }
        if path.contains("..") { return "must not contain .." }
        if path.contains("\\") { return "must not contain a backslash" }
        let allowed = path.unicodeScalars.allSatisfy { scalar in
            scalar == "." || scalar == "/" || scalar == " " || scalar == "-" || scalar == "_" || scalar.properties.isAlphabetic
                || scalar.properties.numericType == .decimal
        }
        return allowed ? nil : "may contain only letters, digits, _, ., /, space and -"
    }

    /// `sha256:` followed by 64 hex digits (lowercased on the way in).
    public static func normalizedHash(_ hash: String) -> String? {
        let lowered = hash.lowercased()
        guard lowered.hasPrefix("sha256:") else { return nil }
        let hex = lowered.dropFirst(7)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy(Hex.isDigit) else { return nil }
        return lowered
    }
}
