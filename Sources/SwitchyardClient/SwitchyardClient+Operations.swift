import Foundation
import NIOCore
import SwitchyardCore

// The API's operations, one method each. Runtime calls (`/r/…`) take an `sk-` or `dk-` key; workflow management,
// models and webhooks a `dk-` key or a session with `teamId`.

extension SwitchyardClient {
    // MARK: - Workflows

    /// `POST /workflows/import`: registers a workflow, or saves a new version of the one with the same slug. `body` is
    /// the import document (`workflow_slug`, `workflow_json`, `parameters`, …) as api.md §2.1 describes it.
    public func importWorkflow(_ body: JSONValue) async throws -> (id: UUID, version: Int) {
        let created: Created = try await send(.POST, "/workflows/import", json: body, expecting: [200, 201])
        return (created.id, created.version ?? 1)
    }

    /// `GET /workflows`: the team's workflows, one page.
    public func workflows(page: Int = 1, perPage: Int = 20) async throws -> Page<WorkflowInfo> {
        try await send(.GET, "/workflows", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// The management detail, with the graph.
    public func workflow(id: UUID) async throws -> WorkflowInfo {
        try await send(.GET, "/workflows/\(id.lowercased)")
    }

    /// The runtime view by slug (`slug` or `slug@version`): parameters, no graph.
    public func workflow(slug: String) async throws -> WorkflowInfo {
        try await send(.GET, "/r/workflows/slug/\(Self.segment(slug))")
    }

    /// `GET /workflows/{id}/snapshots`: the saved versions of a workflow, newest first.
    public func snapshots(workflowId: UUID, page: Int = 1, perPage: Int = 20) async throws -> Page<SnapshotInfo> {
        try await send(.GET, "/workflows/\(workflowId.lowercased)/snapshots", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Saves snapshot `version` as the workflow's newest version; answers the new version number.
    public func restore(workflowId: UUID, version: Int) async throws -> Int {
        let created: Created = try await send(.POST, "/workflows/\(workflowId.lowercased)/snapshots/\(version)/restore", expecting: [200, 201])
        return created.version ?? 0
    }

    // MARK: - Runs and tasks

    /// What a run may say beside its parameters (api.md §2.2).
    public struct RunOptions: Sendable {
        /// Sent as `Idempotency-Key`: the same key and body again return the same task. Set by default, so a retried
        /// submission never starts a second task.
        public var idempotencyKey: String? = UUID().uuidString
        /// Seconds the task may wait for an agent before it fails as expired.
        public var startDeadline: Int?
        public var requiredLabels: [String]?

        public init(idempotencyKey: String? = UUID().uuidString, startDeadline: Int? = nil, requiredLabels: [String]? = nil) {
            self.idempotencyKey = idempotencyKey
            self.startDeadline = startDeadline
            self.requiredLabels = requiredLabels
        }
    }

    /// `POST /r/workflows/slug/{slug}/run` (`slug` or `slug@version`): the task's id once it is durable.
    public func run(workflow slug: String, parameters: [String: JSONValue] = [:], options: RunOptions = RunOptions()) async throws -> UUID {
        var body: [String: JSONValue] = ["parameters": .object(parameters)]
        if let deadline = options.startDeadline { body["start_deadline"] = .number(JSONNumber(deadline)) }
        if let labels = options.requiredLabels { body["required_labels"] = .array(labels.map(JSONValue.string)) }
        let headers = options.idempotencyKey.map { [("Idempotency-Key", $0)] } ?? []
        let submitted: RunAccepted = try await send(
            .POST, "/r/workflows/slug/\(Self.segment(slug))/run", json: JSONValue.object(body), headers: headers, expecting: [200, 202])
        return submitted.taskId
    }

    /// `GET /r/tasks/{id}`: the task with its queue standing while it waits.
    public func task(id: UUID) async throws -> TaskInfo {
        try await send(.GET, "/r/tasks/\(id.lowercased)")
    }

    /// `GET /r/tasks`: the team's tasks, newest first, optionally of one status.
    public func tasks(status: TaskStatus? = nil, page: Int = 1, perPage: Int = 20) async throws -> Page<TaskInfo> {
        var query = [("current_page", "\(page)"), ("per_page", "\(perPage)")]
        if let status { query.append(("status", status.rawValue)) }
        return try await send(.GET, "/r/tasks", query: query)
    }

    /// Cancels a task; a finished one is left as it is (and this succeeds).
    public func cancel(task id: UUID) async throws {
        try await perform(.POST, "/r/tasks/\(id.lowercased)/cancel")
    }

    /// `GET /r/tasks/{id}/result`: a finished task's outputs with presigned download URLs, or its error.
    public func result(task id: UUID) async throws -> TaskResult {
        try await send(.GET, "/r/tasks/\(id.lowercased)/result")
    }

    /// Follows the task's events until it ends, then answers the task as it ended. `onEvent` sees every event.
    public func wait(for id: UUID, onEvent: @Sendable (TaskEvent) -> Void = { _ in }) async throws -> TaskInfo {
        for try await event in events(task: id) { onEvent(event) }
        return try await task(id: id)
    }

    // MARK: - Files and models

    /// `POST /r/files/presign`: where to upload an input file of `size` bytes.
    public func presignFile(name: String, size: Int, contentType: String) async throws -> PresignedUpload {
        let body: JSONValue = ["file_name": .string(name), "file_size": .number(JSONNumber(size)), "content_type": .string(contentType)]
        return try await send(.POST, "/r/files/presign", json: body)
    }

    /// Uploads a local file as a task input and answers its `file_key` (the value of a file parameter).
    public func uploadFile(
        at path: String, contentType: String? = nil, progress: @escaping @Sendable (Int64, Int64) -> Void = { _, _ in }
    ) async throws -> String {
        let size = try FileUpload.size(of: path)
        let name = (path as NSString).lastPathComponent
        let upload = try await presignFile(name: name, size: Int(size), contentType: contentType ?? FileUpload.contentType(of: name))
        let counter = ProgressCounter(total: size, report: progress)
        try await FileUpload.put(path: path, size: size, url: upload.uploadURL, headers: upload.uploadHeaders, http: http, sent: counter.add)
        return upload.fileKey
    }

    /// `GET /models`: the team's registered models.
    public func models(page: Int = 1, perPage: Int = 50) async throws -> Page<ModelInfo> {
        try await send(.GET, "/models", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Uploads a model file (one PUT, or a multipart upload for a large one) and registers it with its SHA-256, so
    /// every syncing agent checks what it downloads. A multipart upload that stopped part-way (a failure, an
    /// interrupted process) resumes when the same file is uploaded again: only its missing parts are sent.
    public func uploadModel(
        at path: String, displayName: String, modelType: String, modelPath: String? = nil,
        progress: @escaping @Sendable (Int64, Int64) -> Void = { _, _ in }
    ) async throws -> ModelInfo {
        let size = try FileUpload.size(of: path)
        let name = (path as NSString).lastPathComponent
        let target = modelPath ?? name
        let body: JSONValue = [
            "file_name": .string(name), "file_size": .number(JSONNumber(Int(size))), "model_type": .string(modelType),
            "model_path": .string(target),
        ]
        let hash = try await FileUpload.sha256(of: path)
        // An earlier upload of this file that stopped part-way goes on where it stopped.
        let presigned: PresignedModelUpload
        let journal = UploadJournal.load(for: path, size: size)
        if let journal {
            presigned = PresignedModelUpload(storageKey: journal.storageKey, uploadURL: "", uploadHeaders: [:], uploadMethod: "multipart")
        } else {
            presigned = try await send(.POST, "/models/presign", json: body)
        }
        if presigned.uploadMethod == "multipart" {
            try await uploadMultipart(path: path, size: size, storageKey: presigned.storageKey, resume: journal, progress: progress)
        } else {
            let counter = ProgressCounter(total: size, report: progress)
            try await FileUpload.put(
                path: path, size: size, url: presigned.uploadURL, headers: presigned.uploadHeaders, http: http, sent: counter.add)
        }
        let registration: JSONValue = [
            "display_name": .string(displayName), "model_type": .string(modelType), "storage_key": .string(presigned.storageKey),
            "file_size": .number(JSONNumber(Int(size))), "file_hash": .string("sha256:" + hash), "model_path": .string(target),
        ]
        let created: Created = try await send(.POST, "/models", json: registration, expecting: [200, 201])
        return try await send(.GET, "/models/\(created.id.lowercased)")
    }

    /// Sets a model's status: `active` (synced to agents) or `disabled` (left out of the sync set).
    public func setModelStatus(id: UUID, status: String) async throws -> ModelInfo {
        try await send(.PUT, "/models/\(id.lowercased)", json: JSONValue.object(["model_status": .string(status)]))
    }

    /// `DELETE /models/{id}`: the registration and its file; syncing agents remove their copies.
    public func deleteModel(id: UUID) async throws {
        try await perform(.DELETE, "/models/\(id.lowercased)")
    }

    // MARK: - Keys (a session only: `signIn`)

    /// `GET /credentials`: the team's keys (prefixes only; a secret is shown once, when created).
    public func credentials(kind: String? = nil, page: Int = 1, perPage: Int = 100) async throws -> Page<CredentialInfo> {
        var query = [("current_page", "\(page)"), ("per_page", "\(perPage)")]
        if let kind { query.append(("kind", kind)) }
        return try await send(.GET, "/credentials", query: query)
    }

    /// Creates a key; its secret (`rawKey`) is in this answer only.
    public func createCredential(kind: String, displayName: String, expiresInDays: Int? = nil) async throws -> CredentialInfo {
        var body: [String: JSONValue] = ["kind": .string(kind), "display_name": .string(displayName)]
        if let expiresInDays { body["expires_in_days"] = .number(JSONNumber(expiresInDays)) }
        return try await send(.POST, "/credentials", json: JSONValue.object(body), expecting: [200, 201])
    }

    /// Revokes a key at once (an agent connected with it is disconnected).
    public func revokeCredential(id: UUID) async throws {
        try await perform(.DELETE, "/credentials/\(id.lowercased)")
    }

    // MARK: - Agents and webhooks

    /// The team's agents (runtime view).
    public func agents(page: Int = 1, perPage: Int = 50) async throws -> Page<AgentInfo> {
        try await send(.GET, "/r/agents", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// `GET /webhooks`: the team's webhooks.
    public func webhooks(page: Int = 1, perPage: Int = 50) async throws -> Page<WebhookInfo> {
        try await send(.GET, "/webhooks", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Creates a webhook; its `secret` is in this answer only.
    public func createWebhook(displayName: String, url: String, events: [String]) async throws -> WebhookInfo {
        let body: JSONValue = [
            "display_name": .string(displayName), "webhook_url": .string(url), "webhook_events": .array(events.map(JSONValue.string)),
        ]
        struct Answer: Decodable {
            let id: UUID
            let webhook_secret: String
        }
        let created: Answer = try await send(.POST, "/webhooks", json: body, expecting: [200, 201])
        // The create answer carries the id and the secret; the detail the rest.
        var webhook: WebhookInfo = try await send(.GET, "/webhooks/\(created.id.lowercased)")
        webhook.secret = created.webhook_secret
        return webhook
    }

    /// `DELETE /webhooks/{id}`: no further deliveries.
    public func deleteWebhook(id: UUID) async throws {
        try await perform(.DELETE, "/webhooks/\(id.lowercased)")
    }

    /// `GET /webhooks/{id}/deliveries`: the webhook's deliveries, newest first, each with its attempts.
    public func deliveries(webhookId: UUID, page: Int = 1, perPage: Int = 50) async throws -> Page<DeliveryInfo> {
        try await send(.GET, "/webhooks/\(webhookId.lowercased)/deliveries", query: [("current_page", "\(page)"), ("per_page", "\(perPage)")])
    }

    /// Sends a delivery again (a new delivery of the same payload).
    public func redeliver(webhookId: UUID, deliveryId: UUID) async throws -> DeliveryInfo {
        try await send(.POST, "/webhooks/\(webhookId.lowercased)/deliveries/\(deliveryId.lowercased)/redeliver", expecting: [200, 201, 202])
    }
}
