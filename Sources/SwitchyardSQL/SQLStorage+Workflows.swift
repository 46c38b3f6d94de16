import Foundation
import SwitchyardCore

extension SQLColumns {
    static let workflowColumns = "w.id, w.team_id, w.workflow_status, w.version, w.created_at, w.updated_at, s.definition"
    static let workflowJoin = "workflows w JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.version"
    static let workflowSelect = "SELECT \(workflowColumns) FROM \(workflowJoin)"
}

extension SQLStorage {
    public func importWorkflow(
        id: UUID, teamId: UUID, definition: WorkflowDefinition, status: WorkflowStatus?, at date: Date
    ) async throws -> (workflow: Workflow, created: Bool) {
        try await transaction { transaction in
            // Inserting first (and locking the existing row otherwise) serialises concurrent imports of one slug.
            let inserted = try await transaction.query(
                """
                INSERT INTO workflows (id, team_id, slug, workflow_status, version, created_at, updated_at)
                VALUES (\(id), \(teamId), \(definition.slug), \((status ?? .active).rawValue), 1, \(date), \(date))
                ON CONFLICT (team_id, slug) DO NOTHING RETURNING id
                """)
            if !inserted.isEmpty {
                let workflow = Workflow(
                    id: id, teamId: teamId, version: 1, status: status ?? .active, definition: definition, createdAt: date, updatedAt: date)
                try await transaction.insertSnapshot(of: workflow, note: nil)
                return (workflow, true)
            }
            guard
                let row = try await transaction.query(
                    """
                    SELECT id, version, workflow_status, created_at FROM workflows WHERE team_id = \(teamId) AND slug = \(definition.slug)
                    \(lock: .forUpdate)
                    """
                ).first
            else { throw SwitchyardError.conflict("the workflow was deleted while it was being imported; try again") }
            let currentStatus = WorkflowStatus(rawValue: try row.string("workflow_status")) ?? .active
            var workflow = Workflow(
                id: try row.uuid("id"), teamId: teamId, version: try row.int("version") + 1, status: status ?? currentStatus,
                definition: definition, createdAt: try row.date("created_at"), updatedAt: date)
            try await transaction.saveVersion(of: &workflow, note: nil)
            return (workflow, false)
        }
    }

    public func updateWorkflow(
        id: UUID, teamId: UUID, at date: Date, note: String?,
        _ change: @escaping @Sendable (Workflow) throws -> (definition: WorkflowDefinition, status: WorkflowStatus)
    ) async throws -> Workflow? {
        try await mapConstraint("a workflow with this workflow_slug") {
            try await transaction { transaction in
                guard
                    let row = try await transaction.query(
                        "\(raw: SQLColumns.workflowSelect) WHERE w.id = \(id) AND w.team_id = \(teamId) \(lock: .forUpdateOf("w"))"
                    ).first
                else { return nil }
                var workflow = try Workflow(row: row)
                let (definition, status) = try change(workflow)
                workflow.definition = definition
                workflow.status = status
                workflow.version += 1
                workflow.updatedAt = date
                try await transaction.saveVersion(of: &workflow, note: note)
                return workflow
            }
        }
    }

    public func workflow(id: UUID, teamId: UUID) async throws -> Workflow? {
        try await read("\(raw: SQLColumns.workflowSelect) WHERE w.id = \(id) AND w.team_id = \(teamId)").first.map(Workflow.init(row:))
    }

    public func workflow(slug: String, teamId: UUID) async throws -> Workflow? {
        try await read("\(raw: SQLColumns.workflowSelect) WHERE w.slug = \(slug) AND w.team_id = \(teamId)").first.map(Workflow.init(row:))
    }

    public func workflowHead(id: UUID, teamId: UUID) async throws -> WorkflowHead? {
        try await read("SELECT id, slug, version, workflow_status FROM workflows WHERE id = \(id) AND team_id = \(teamId)")
            .first.map(WorkflowHead.init(row:))
    }

    public func workflowHead(slug: String, teamId: UUID) async throws -> WorkflowHead? {
        try await read("SELECT id, slug, version, workflow_status FROM workflows WHERE slug = \(slug) AND team_id = \(teamId)")
            .first.map(WorkflowHead.init(row:))
    }

    public func workflows(teamId: UUID, page: PageRequest) async throws -> Page<Workflow> {
        try await self.page(
            SQLColumns.workflowColumns, from: SQLColumns.workflowJoin,
            where: "w.team_id = \(teamId)", orderBy: "w.created_at DESC, w.id DESC", page, Workflow.init(row:))
    }

    public func deleteWorkflow(id: UUID, teamId: UUID) async throws -> Bool {
        try await wrote("DELETE FROM workflows WHERE id = \(id) AND team_id = \(teamId) RETURNING id")
    }

    public func workflowSnapshots(workflowId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WorkflowSnapshot>? {
        guard try await workflowHead(id: workflowId, teamId: teamId) != nil else { return nil }
        return try await self.page(
            "workflow_id, version, definition, note, created_at", from: "workflow_snapshots", where: "workflow_id = \(workflowId)",
            orderBy: "version DESC", page, WorkflowSnapshot.init(row:))
    }

    public func workflowSnapshot(workflowId: UUID, teamId: UUID, version: Int) async throws -> WorkflowSnapshot? {
        try await read(
            """
            SELECT s.workflow_id, s.version, s.definition, s.note, s.created_at
            FROM workflow_snapshots s JOIN workflows w ON w.id = s.workflow_id
            WHERE s.workflow_id = \(workflowId) AND w.team_id = \(teamId) AND s.version = \(version)
            """
        ).first.map(WorkflowSnapshot.init(row:))
    }
}

extension SQLExecutor {
    fileprivate func saveVersion(of workflow: inout Workflow, note: String?) async throws {
        _ = try await query(
            """
            UPDATE workflows SET slug = \(workflow.definition.slug), workflow_status = \(workflow.status.rawValue), version = \(workflow.version),
                updated_at = \(workflow.updatedAt)
            WHERE id = \(workflow.id)
            """)
        try await insertSnapshot(of: workflow, note: note)
    }

    fileprivate func insertSnapshot(of workflow: Workflow, note: String?) async throws {
        _ = try await query(
            """
            INSERT INTO workflow_snapshots (workflow_id, version, definition, note, created_at)
            VALUES (\(workflow.id), \(workflow.version), \(workflow.definition.storedJSON), \(note), \(workflow.updatedAt))
            """)
    }
}

extension Workflow {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), version: try row.int("version"), status: try row.value("workflow_status"),
            definition: try WorkflowDefinition.decodeStored(try row.string("definition")), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }
}

extension WorkflowHead {
    init(row: SQLRow) throws {
        self.init(id: try row.uuid("id"), slug: try row.string("slug"), version: try row.int("version"), status: try row.value("workflow_status"))
    }
}

extension WorkflowSnapshot {
    init(row: SQLRow) throws {
        self.init(
            workflowId: try row.uuid("workflow_id"), version: try row.int("version"),
            definition: try WorkflowDefinition.decodeStored(try row.string("definition")), note: try row.optionalString("note"),
            createdAt: try row.date("created_at"))
    }
}
