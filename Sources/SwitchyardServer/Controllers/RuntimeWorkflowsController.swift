import Foundation
import HTTPTypes
import Hummingbird
import SwitchyardCore

/// `/r/workflows` (api.md §2.1, runtime surface): discover workflows and run them. Runtime reads never include
/// `workflow_json`; the parameters, labels and version are what a caller needs to build a run.
struct RuntimeWorkflowsController {
    let storage: any SwitchyardStorage
    let submitter: RunSubmitter

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.get(use: list)
        group.get("{workflowId}", use: detailById)
        group.get("slug/{workflowSlug}", use: detailBySlug)
        group.post("{workflowId}/run", use: runById)
        group.post("slug/{workflowSlug}/run", use: runBySlug)
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<JSONValue> {
        try await WorkflowsController.list(request, context: context, storage: storage)
    }

    @Sendable func detailById(_ request: Request, context: SwitchyardRequestContext) async throws -> JSONValue {
        let id = try context.parameters.requireUUID("workflowId")
        guard let workflow = try await storage.workflow(id: id, teamId: try context.requireCaller().requireTeam()) else {
            throw SwitchyardError.notFound("workflow not found")
        }
        return Presenters.workflow(workflow, includeGraph: false)
    }

    /// `slug` is the live workflow; `slug@version` shows that snapshot (with the live status).
    @Sendable func detailBySlug(_ request: Request, context: SwitchyardRequestContext) async throws -> JSONValue {
        let reference = try Self.reference(context)
        let teamId = try context.requireCaller().requireTeam()
        guard var workflow = try await storage.workflow(slug: reference.slug, teamId: teamId) else {
            throw SwitchyardError.notFound("workflow \"\(reference.slug)\" not found")
        }
        if let version = reference.version, version != workflow.version {
            guard let snapshot = try await storage.workflowSnapshot(workflowId: workflow.id, teamId: teamId, version: version) else {
                throw SwitchyardError.notFound("workflow \"\(reference.slug)\" has no version \(version) (the latest is \(workflow.version))")
            }
            workflow.version = snapshot.version
            workflow.definition = snapshot.definition
            workflow.updatedAt = snapshot.createdAt
        }
        return Presenters.workflow(workflow, includeGraph: false)
    }

    /// `{"task_id": "..."}` with 202, `Location` and, for a replayed `Idempotency-Key`, `Idempotency-Replayed`.
    struct Submitted: ResponseEncodable {
        let taskId: UUID
    }

    @Sendable func runById(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Submitted> {
        try await run(.id(try context.parameters.requireUUID("workflowId")), request: request, context: context)
    }

    @Sendable func runBySlug(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Submitted> {
        try await run(.reference(try Self.reference(context)), request: request, context: context)
    }

    private func run(_ target: RunSubmitter.Target, request: Request, context: SwitchyardRequestContext) async throws
        -> EditedResponse<Submitted>
    {
        let caller = try context.requireCaller()
        try caller.requireRunner()
        let body = try await request.decode(as: JSONValue.self, context: context)
        let submitted = try await submitter.submit(target, body: body, caller: caller, idempotencyKey: request.headers[.idempotencyKey])
        var headers = HTTPFields()
        headers[.location] = "/api/v1/r/tasks/\(submitted.taskId.lowercased)"
        if submitted.replayed { headers[.idempotencyReplayed] = "true" }
        return EditedResponse(status: .accepted, headers: headers, response: Submitted(taskId: submitted.taskId))
    }
}

extension RuntimeWorkflowsController {
    /// The `workflowSlug` path segment, percent-decoded (`text-to-image%402` is `text-to-image@2`).
    static func reference(_ context: SwitchyardRequestContext) throws -> WorkflowReference {
        let raw = try context.parameters.require("workflowSlug")
        return try WorkflowReference(parsing: raw.removingPercentEncoding ?? raw)
    }
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
    static let idempotencyReplayed = Self("Idempotency-Replayed")!
}
