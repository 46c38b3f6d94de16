import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    static let workflowSelect = """
        SELECT w.id, w.team_id, w.workflow_status, w.version, w.created_at, w.updated_at, s.definition
        FROM workflows w JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.version
        """

    public func importWorkflow(
        id: UUID, teamId: UUID, definition: WorkflowDefinition, status: WorkflowStatus?, at date: Date
    ) async throws -> (workflow: Workflow, created: Bool) {
        let logger = self.logger
        return try await transaction { connection in
            let initialStatus = (status ?? .active).rawValue
            // Inserting first (and locking the existing row otherwise) serialises concurrent imports of one slug.
            let inserted = try await connection.query(
                """
                INSERT INTO workflows (id, team_id, slug, workflow_status, version, created_at, updated_at)
                VALUES (\(id), \(teamId), \(definition.slug), \(initialStatus), 1, \(date), \(date))
                ON CONFLICT (team_id, slug) DO NOTHING RETURNING id
                """,
                logger: logger
            ).collect()
            if !inserted.isEmpty {
                let workflow = Workflow(
                    id: id, teamId: teamId, version: 1, status: status ?? .active, definition: definition, createdAt: date, updatedAt: date)
                try await Self.insertSnapshot(of: workflow, note: nil, on: connection, logger: logger)
                return (workflow, true)
            }
            guard
                let row = try await connection.query(
                    "SELECT id, version, workflow_status, created_at FROM workflows WHERE team_id = \(teamId) AND slug = \(definition.slug) FOR UPDATE",
                    logger: logger
                ).collect().first
            else { throw SwitchyardError.conflict("the workflow was deleted while it was being imported; try again") }
            let (existingId, version, statusName, createdAt) = try row.decode((UUID, Int, String, Date).self)
            var workflow = Workflow(
                id: existingId, teamId: teamId, version: version + 1, status: status ?? WorkflowStatus(rawValue: statusName) ?? .active,
                definition: definition, createdAt: createdAt, updatedAt: date
            )
            try await Self.saveVersion(of: &workflow, note: nil, on: connection, logger: logger)
            return (workflow, false)
        }
    }

    public func updateWorkflow(
        id: UUID, teamId: UUID, at date: Date, note: String?,
        _ change: @escaping @Sendable (Workflow) throws -> (definition: WorkflowDefinition, status: WorkflowStatus)
    ) async throws -> Workflow? {
        let logger = self.logger
        return try await mapConstraint("a workflow with this workflow_slug") {
            try await transaction { connection in
                guard
                    let row = try await connection.query(
                        "\(unescaped: Self.workflowSelect) WHERE w.id = \(id) AND w.team_id = \(teamId) FOR UPDATE OF w", logger: logger
                    ).collect().first
                else { return nil }
                var workflow = try Self.decodeWorkflow(row)
                let (definition, status) = try change(workflow)
                workflow.definition = definition
                workflow.status = status
                workflow.version += 1
                workflow.updatedAt = date
                try await Self.saveVersion(of: &workflow, note: note, on: connection, logger: logger)
                return workflow
            }
        }
    }

    private static func saveVersion(of workflow: inout Workflow, note: String?, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            UPDATE workflows SET slug = \(workflow.definition.slug), workflow_status = \(workflow.status.rawValue), version = \(workflow.version),
                updated_at = \(workflow.updatedAt)
            WHERE id = \(workflow.id)
            """,
            logger: logger
        )
        try await insertSnapshot(of: workflow, note: note, on: connection, logger: logger)
    }

    private static func insertSnapshot(of workflow: Workflow, note: String?, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO workflow_snapshots (workflow_id, version, definition, note, created_at)
            VALUES (\(workflow.id), \(workflow.version), \(workflow.definition.storedJSON), \(note), \(workflow.updatedAt))
            """,
            logger: logger
        )
    }

    public func workflow(id: UUID, teamId: UUID) async throws -> Workflow? {
        try await rows("\(unescaped: Self.workflowSelect) WHERE w.id = \(id) AND w.team_id = \(teamId)").first.map(Self.decodeWorkflow)
    }

    public func workflow(slug: String, teamId: UUID) async throws -> Workflow? {
        try await rows("\(unescaped: Self.workflowSelect) WHERE w.slug = \(slug) AND w.team_id = \(teamId)").first.map(Self.decodeWorkflow)
    }

    public func workflowHead(id: UUID, teamId: UUID) async throws -> WorkflowHead? {
        try await rows("SELECT id, slug, version, workflow_status FROM workflows WHERE id = \(id) AND team_id = \(teamId)").first.map(Self.decodeHead)
    }

    public func workflowHead(slug: String, teamId: UUID) async throws -> WorkflowHead? {
        try await rows("SELECT id, slug, version, workflow_status FROM workflows WHERE slug = \(slug) AND team_id = \(teamId)").first.map(
            Self.decodeHead)
    }

    public func workflows(teamId: UUID, page: PageRequest) async throws -> Page<Workflow> {
        let total = try await rows("SELECT COUNT(*) FROM workflows WHERE team_id = \(teamId)").first?.decode(Int.self) ?? 0
        let items = try await rows(
            "\(unescaped: Self.workflowSelect) WHERE w.team_id = \(teamId) ORDER BY w.created_at DESC, w.id DESC LIMIT \(page.perPage) OFFSET \(page.offset)"
        ).map(Self.decodeWorkflow)
        return Page(items: items, totalCount: total)
    }

    public func deleteWorkflow(id: UUID, teamId: UUID) async throws -> Bool {
        !(try await rows("DELETE FROM workflows WHERE id = \(id) AND team_id = \(teamId) RETURNING id").isEmpty)
    }

    public func workflowSnapshots(workflowId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WorkflowSnapshot>? {
        guard try await workflowHead(id: workflowId, teamId: teamId) != nil else { return nil }
        let total = try await rows("SELECT COUNT(*) FROM workflow_snapshots WHERE workflow_id = \(workflowId)").first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT workflow_id, version, definition, note, created_at FROM workflow_snapshots WHERE workflow_id = \(workflowId)
            ORDER BY version DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeSnapshot)
        return Page(items: items, totalCount: total)
    }

    public func workflowSnapshot(workflowId: UUID, teamId: UUID, version: Int) async throws -> WorkflowSnapshot? {
        try await rows(
            """
            SELECT s.workflow_id, s.version, s.definition, s.note, s.created_at
            FROM workflow_snapshots s JOIN workflows w ON w.id = s.workflow_id
            WHERE s.workflow_id = \(workflowId) AND w.team_id = \(teamId) AND s.version = \(version)
            """
        ).first.map(Self.decodeSnapshot)
    }

    static func decodeWorkflow(_ row: PostgresRow) throws -> Workflow {
        let (id, teamId, statusName, version, createdAt, updatedAt, definition) = try row.decode(
            (UUID, UUID, String, Int, Date, Date, String).self)
        guard let status = WorkflowStatus(rawValue: statusName) else { throw PostgresDecodingError(column: "workflow_status") }
        return Workflow(
            id: id, teamId: teamId, version: version, status: status, definition: try WorkflowDefinition.decodeStored(definition),
            createdAt: createdAt, updatedAt: updatedAt)
    }

    static func decodeHead(_ row: PostgresRow) throws -> WorkflowHead {
        let (id, slug, version, statusName) = try row.decode((UUID, String, Int, String).self)
        guard let status = WorkflowStatus(rawValue: statusName) else { throw PostgresDecodingError(column: "workflow_status") }
        return WorkflowHead(id: id, slug: slug, version: version, status: status)
    }

    static func decodeSnapshot(_ row: PostgresRow) throws -> WorkflowSnapshot {
        let (workflowId, version, definition, note, createdAt) = try row.decode((UUID, Int, String, String?, Date).self)
        return WorkflowSnapshot(
            workflowId: workflowId, version: version, definition: try WorkflowDefinition.decodeStored(definition), note: note,
            createdAt: createdAt)
    }
}
