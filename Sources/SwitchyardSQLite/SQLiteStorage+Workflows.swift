import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    static let workflowSelect = """
        SELECT w.id, w.team_id, w.workflow_status, w.version, w.created_at, w.updated_at, s.definition
        FROM workflows w JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.version
        """

    public func importWorkflow(
        id: UUID, teamId: UUID, definition: WorkflowDefinition, status: WorkflowStatus?, at date: Date
    ) async throws -> (workflow: Workflow, created: Bool) {
        try await transaction { connection in
            let existing = try await connection.query(
                "SELECT id, version, workflow_status, created_at FROM workflows WHERE team_id = ? AND slug = ?",
                [.uuid(teamId), .text(definition.slug)]
            ).first
            if let existing {
                let currentStatus = WorkflowStatus(rawValue: try existing.string("workflow_status")) ?? .active
                var workflow = Workflow(
                    id: try existing.uuid("id"), teamId: teamId, version: try existing.int("version") + 1,
                    status: status ?? currentStatus, definition: definition,
                    createdAt: try existing.date("created_at"), updatedAt: date
                )
                try await Self.saveVersion(of: &workflow, note: nil, on: connection)
                return (workflow, false)
            }
            let workflow = Workflow(
                id: id, teamId: teamId, version: 1, status: status ?? .active, definition: definition, createdAt: date, updatedAt: date)
            _ = try await connection.query(
                "INSERT INTO workflows (id, team_id, slug, workflow_status, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                [.uuid(id), .uuid(teamId), .text(definition.slug), .text(workflow.status.rawValue), .date(date), .date(date)]
            )
            try await Self.insertSnapshot(of: workflow, note: nil, on: connection)
            return (workflow, true)
        }
    }

    public func updateWorkflow(
        id: UUID, teamId: UUID, at date: Date, note: String?,
        _ change: @escaping @Sendable (Workflow) throws -> (definition: WorkflowDefinition, status: WorkflowStatus)
    ) async throws -> Workflow? {
        try await mapConstraint("a workflow with this workflow_slug") {
            try await transaction { connection in
                guard
                    let row = try await connection.query("\(Self.workflowSelect) WHERE w.id = ? AND w.team_id = ?", [.uuid(id), .uuid(teamId)])
                        .first
                else { return nil }
                var workflow = try Self.decodeWorkflow(row)
                let (definition, status) = try change(workflow)
                workflow.definition = definition
                workflow.status = status
                workflow.version += 1
                workflow.updatedAt = date
                try await Self.saveVersion(of: &workflow, note: note, on: connection)
                return workflow
            }
        }
    }

    /// Points the workflow row at `workflow.version` and writes that version's snapshot.
    private static func saveVersion(of workflow: inout Workflow, note: String?, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "UPDATE workflows SET slug = ?, workflow_status = ?, version = ?, updated_at = ? WHERE id = ?",
            [
                .text(workflow.definition.slug), .text(workflow.status.rawValue), .integer(workflow.version), .date(workflow.updatedAt),
                .uuid(workflow.id),
            ]
        )
        try await insertSnapshot(of: workflow, note: note, on: connection)
    }

    private static func insertSnapshot(of workflow: Workflow, note: String?, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO workflow_snapshots (workflow_id, version, definition, note, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                .uuid(workflow.id), .integer(workflow.version), .text(workflow.definition.storedJSON), note.map(SQLiteData.text) ?? .null,
                .date(workflow.updatedAt),
            ]
        )
    }

    public func workflow(id: UUID, teamId: UUID) async throws -> Workflow? {
        try await read("\(Self.workflowSelect) WHERE w.id = ? AND w.team_id = ?", [.uuid(id), .uuid(teamId)]).first.map(Self.decodeWorkflow)
    }

    public func workflow(slug: String, teamId: UUID) async throws -> Workflow? {
        try await read("\(Self.workflowSelect) WHERE w.slug = ? AND w.team_id = ?", [.text(slug), .uuid(teamId)]).first.map(Self.decodeWorkflow)
    }

    public func workflowHead(id: UUID, teamId: UUID) async throws -> WorkflowHead? {
        try await read("SELECT id, slug, version, workflow_status FROM workflows WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)])
            .first.map(Self.decodeHead)
    }

    public func workflowHead(slug: String, teamId: UUID) async throws -> WorkflowHead? {
        try await read("SELECT id, slug, version, workflow_status FROM workflows WHERE slug = ? AND team_id = ?", [.text(slug), .uuid(teamId)])
            .first.map(Self.decodeHead)
    }

    public func workflows(teamId: UUID, page: PageRequest) async throws -> Page<Workflow> {
        let total = try await read("SELECT COUNT(*) AS total FROM workflows WHERE team_id = ?", [.uuid(teamId)]).first?.int("total") ?? 0
        let rows = try await read(
            "\(Self.workflowSelect) WHERE w.team_id = ? ORDER BY w.created_at DESC, w.id DESC LIMIT ? OFFSET ?",
            [.uuid(teamId), .integer(page.perPage), .integer(page.offset)]
        )
        return Page(items: try rows.map(Self.decodeWorkflow), totalCount: total)
    }

    public func deleteWorkflow(id: UUID, teamId: UUID) async throws -> Bool {
        try await write { connection in
            !(try await connection.query("DELETE FROM workflows WHERE id = ? AND team_id = ? RETURNING id", [.uuid(id), .uuid(teamId)]).isEmpty)
        }
    }

    public func workflowSnapshots(workflowId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WorkflowSnapshot>? {
        guard try await workflowHead(id: workflowId, teamId: teamId) != nil else { return nil }
        let total =
            try await read("SELECT COUNT(*) AS total FROM workflow_snapshots WHERE workflow_id = ?", [.uuid(workflowId)]).first?.int("total") ?? 0
        let rows = try await read(
            "SELECT workflow_id, version, definition, note, created_at FROM workflow_snapshots WHERE workflow_id = ? ORDER BY version DESC LIMIT ? OFFSET ?",
            [.uuid(workflowId), .integer(page.perPage), .integer(page.offset)]
        )
        return Page(items: try rows.map(Self.decodeSnapshot), totalCount: total)
    }

    public func workflowSnapshot(workflowId: UUID, teamId: UUID, version: Int) async throws -> WorkflowSnapshot? {
        try await read(
            """
            SELECT s.workflow_id, s.version, s.definition, s.note, s.created_at
            FROM workflow_snapshots s JOIN workflows w ON w.id = s.workflow_id
            WHERE s.workflow_id = ? AND w.team_id = ? AND s.version = ?
            """,
            [.uuid(workflowId), .uuid(teamId), .integer(version)]
        ).first.map(Self.decodeSnapshot)
    }

    static func decodeWorkflow(_ row: SQLiteRow) throws -> Workflow {
        guard let status = WorkflowStatus(rawValue: try row.string("workflow_status")) else { throw SQLiteDecodingError(column: "workflow_status") }
        return Workflow(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), version: try row.int("version"), status: status,
            definition: try WorkflowDefinition.decodeStored(try row.string("definition")), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    static func decodeHead(_ row: SQLiteRow) throws -> WorkflowHead {
        guard let status = WorkflowStatus(rawValue: try row.string("workflow_status")) else { throw SQLiteDecodingError(column: "workflow_status") }
        return WorkflowHead(id: try row.uuid("id"), slug: try row.string("slug"), version: try row.int("version"), status: status)
    }

    static func decodeSnapshot(_ row: SQLiteRow) throws -> WorkflowSnapshot {
        WorkflowSnapshot(
            workflowId: try row.uuid("workflow_id"), version: try row.int("version"),
            definition: try WorkflowDefinition.decodeStored(try row.string("definition")), note: row.optionalString("note"),
            createdAt: try row.date("created_at")
        )
    }
}
