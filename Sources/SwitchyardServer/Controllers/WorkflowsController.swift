import Foundation
import Hummingbird
import SwitchyardCore

/// `/workflows` (api.md §2.1, §3.8, management surface): import, update, read, list, delete, and the snapshot
/// history with restore. Every member reads; owners and admins change (docs/decisions.md).
struct WorkflowsController {
    let storage: any SwitchyardStorage
    let clock: any WallClock
    /// Cleared on every change, so runs through this server see it on their next request.
    let heads: WorkflowHeadCache

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post("import", use: importWorkflow)
        group.get(use: list)
        group.get("{workflowId}", use: detail)
        group.put("{workflowId}", use: update)
        group.delete("{workflowId}", use: delete)
        group.get("{workflowId}/snapshots", use: snapshots)
        group.get("{workflowId}/snapshots/{version}", use: snapshot)
        group.post("{workflowId}/snapshots/{version}/restore", use: restore)
    }

    /// Creates the workflow, or overwrites the team's workflow with the same slug as version + 1 (same id).
    /// 201 when created, 200 when overwritten.
    /// A workflow's id and version after an import, update or restore (`restored_from` after a restore).
    struct Versioned: ResponseEncodable {
        let id: UUID
        let version: Int
        var restoredFrom: Int?
    }

    @Sendable func importWorkflow(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Versioned> {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let definition = try WorkflowDefinition.parse(fields, base: nil)
        let status = try fields.enumeration("workflow_status", WorkflowStatus.self)
        let now = clock.now()
        let teamId = try caller.requireTeam()
        let (workflow, created) = try await storage.importWorkflow(
            id: UUIDv7.make(at: now), teamId: teamId, definition: definition, status: status, at: now)
        heads.invalidate(teamId: teamId)
        context.logger.info(
            "workflow imported", metadata: ["workflow_id": "\(workflow.id.lowercased)", "version": "\(workflow.version)", "created": "\(created)"])
        return EditedResponse(status: created ? .created : .ok, response: Versioned(id: workflow.id, version: workflow.version))
    }

    /// Fields that are sent replace the current ones; the rest stay. The result is validated as a whole.
    @Sendable func update(_ request: Request, context: SwitchyardRequestContext) async throws -> Versioned {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let id = try context.parameters.requireUUID("workflowId")
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        let status = try fields.enumeration("workflow_status", WorkflowStatus.self)
        let teamId = try caller.requireTeam()
        let workflow: Workflow?
        do {
            workflow = try await storage.updateWorkflow(
                id: id, teamId: teamId, at: clock.now(), note: nil,
                { current in
                    let changed = (try WorkflowDefinition.parse(fields, base: current.definition), status ?? current.status)
                    // Nothing to change: no new version, no snapshot (the transaction is rolled back).
                    guard changed != (current.definition, current.status) else { throw Unchanged(workflow: current) }
                    return changed
                })
        } catch let unchanged as Unchanged {
            workflow = unchanged.workflow
        }
        guard let workflow else { throw SwitchyardError.notFound("workflow not found") }
        heads.invalidate(teamId: teamId)
        return Versioned(id: workflow.id, version: workflow.version)
    }

    /// An update that changes nothing, thrown out of the storage's transaction.
    private struct Unchanged: Error {
        let workflow: Workflow
    }

    @Sendable func detail(_ request: Request, context: SwitchyardRequestContext) async throws -> JSONValue {
        let id = try context.parameters.requireUUID("workflowId")
        guard let workflow = try await storage.workflow(id: id, teamId: try context.requireCaller().requireTeam()) else {
            throw SwitchyardError.notFound("workflow not found")
        }
        return Presenters.workflow(workflow, includeGraph: true)
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<JSONValue> {
        try await Self.list(request, context: context, storage: storage)
    }

    /// `workflow_list` + `page_meta`, without graphs; the runtime surface lists the same way.
    static func list(_ request: Request, context: SwitchyardRequestContext, storage: any SwitchyardStorage) async throws
        -> Listing<JSONValue>
    {
        let page = try request.pageRequest
        let result = try await storage.workflows(teamId: try context.requireCaller().requireTeam(), page: page)
        return Listing("workflow_list", result.items.map { Presenters.workflow($0, includeGraph: false) }, page: page, totalCount: result.totalCount)
    }

    @Sendable func delete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let id = try context.parameters.requireUUID("workflowId")
        let teamId = try caller.requireTeam()
        guard try await storage.deleteWorkflow(id: id, teamId: teamId) else {
            throw SwitchyardError.notFound("workflow not found")
        }
        heads.invalidate(teamId: teamId)
        context.logger.info("workflow deleted", metadata: ["workflow_id": "\(id.lowercased)"])
        return Response(status: .noContent)
    }

    /// Newest first, paginated (the dashboard shows the 50 most recent; older ones stay reachable by page).
    @Sendable func snapshots(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<JSONValue> {
        let page = try request.pageRequest
        let id = try context.parameters.requireUUID("workflowId")
        guard let result = try await storage.workflowSnapshots(workflowId: id, teamId: try context.requireCaller().requireTeam(), page: page) else {
            throw SwitchyardError.notFound("workflow not found")
        }
        return Listing("snapshot_list", result.items.map { Presenters.snapshot($0, includeGraph: false) }, page: page, totalCount: result.totalCount)
    }

    @Sendable func snapshot(_ request: Request, context: SwitchyardRequestContext) async throws -> JSONValue {
        let (id, version) = try Self.snapshotPath(context)
        guard let snapshot = try await storage.workflowSnapshot(workflowId: id, teamId: try context.requireCaller().requireTeam(), version: version)
        else { throw SwitchyardError.notFound("workflow snapshot not found") }
        return Presenters.snapshot(snapshot, includeGraph: true)
    }

    /// Saves the snapshot's definition as a new version (the live status is kept). The version it replaces stays
    /// in the history, so a restore is undone by restoring that version.
    @Sendable func restore(_ request: Request, context: SwitchyardRequestContext) async throws -> Versioned {
        let caller = try context.requireCaller()
        try caller.requireWorkflowManager()
        let teamId = try caller.requireTeam()
        let (id, version) = try Self.snapshotPath(context)
        guard let snapshot = try await storage.workflowSnapshot(workflowId: id, teamId: teamId, version: version) else {
            throw SwitchyardError.notFound("workflow snapshot not found")
        }
        guard
            let workflow = try await storage.updateWorkflow(
                id: id, teamId: teamId, at: clock.now(), note: "restored from version \(version)",
                { current in (snapshot.definition, current.status) })
        else { throw SwitchyardError.notFound("workflow not found") }
        heads.invalidate(teamId: teamId)
        context.logger.info("workflow restored", metadata: ["workflow_id": "\(id.lowercased)", "from_version": "\(version)"])
        return Versioned(id: workflow.id, version: workflow.version, restoredFrom: version)
    }

    private static func snapshotPath(_ context: SwitchyardRequestContext) throws -> (UUID, Int) {
        let id = try context.parameters.requireUUID("workflowId")
        let raw = try context.parameters.require("version")
        guard let version = Int(raw), version >= 1 else { throw SwitchyardError.invalid("version: \"\(raw)\" is not a positive integer") }
        return (id, version)
    }
}
