import Foundation
import SQLiteNIO
import SwitchyardCore

/// One submission waiting for its group commit, with its rows already encoded: serialising happens on the
/// submitting request's task, keeping the writer's critical section to the SQL itself.
struct PendingTaskInsert: Sendable {
    let task: TaskRecord
    let idempotency: IdempotencyClaim?
    let taskRow: [SQLiteData]
    let eventRows: [[SQLiteData]]

    init(task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], idempotency: IdempotencyClaim?) {
        self.task = task
        self.idempotency = idempotency
        self.taskRow = SQLiteStorage.taskBinds(task) + [.text(definition.jsonString)]
        self.eventRows = events.map(SQLiteStorage.eventBinds)
    }
}

extension SQLiteStorage {
    static let taskColumns = """
        id, team_id, workflow_id, workflow_version, task_status, task_source, user_id, credential_id, parameters, dispatch_target, \
        target_pool, submitter_region, tool_type, required_labels, task_timeout, max_retries, retry_count, agent_id, agent_labels, \
        gateway_id, gpu_type, task_error, task_output, created_at, updated_at, started_at, completed_at, attempt_id, start_deadline
        """
    /// What reads select: the inserted columns plus those only dispatch writes.
    static let taskSelectColumns = taskColumns + ", stopped_at, gpu_seconds"
    /// SQLite allows 32766 bound values per statement; 30 columns per row keeps a batch statement far below it.
    static let rowsPerStatement = 500

    public func insertTask(
        _ task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], idempotency: IdempotencyClaim?
    ) async throws -> TaskInsertOutcome {
        try await tracked {
            try await taskInserts.submit(PendingTaskInsert(task: task, definition: definition, events: events, idempotency: idempotency))
        }
    }

    /// Writes a batch in one transaction. Should the batch fail as a whole (say, a team deleted meanwhile), each
    /// item is retried alone, so one bad submission cannot fail its neighbours.
    static func flushTaskInserts(_ items: [PendingTaskInsert], writer: SQLiteConnection, lock: AsyncLock) async -> [Result<
        TaskInsertOutcome, any Error
    >] {
        do {
            if items.allSatisfy({ $0.idempotency == nil }) {
                return try await lock.withLock { try await insertChained(items, writer: writer) }
            }
            return try await transaction(writer: writer, lock: lock) { connection in try await insertBatch(items, on: connection) }
        } catch {
            guard items.count > 1 else { return [.failure(error)] }
            var results: [Result<TaskInsertOutcome, any Error>] = []
            for item in items {
                do {
                    results += try await transaction(writer: writer, lock: lock) { connection in try await insertBatch([item], on: connection) }
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        }
    }

    /// The common batch (no idempotency keys to look up) as one chain of futures: each statement is submitted
    /// to the storage's thread straight from the previous one's completion, without a round trip through the
    /// Swift concurrency pool — a third of the writer's time per batch went to those hops.
    private static func insertChained(_ items: [PendingTaskInsert], writer: SQLiteConnection) async throws -> [Result<TaskInsertOutcome, any Error>] {
        var statements: [(String, [SQLiteData])] = [("BEGIN IMMEDIATE", [])]
        for start in stride(from: 0, to: items.count, by: rowsPerStatement) {
            let chunk = items[start..<min(start + rowsPerStatement, items.count)]
            statements.append(insertStatement(table: "tasks", columns: "\(taskColumns), definition", rows: chunk.map(\.taskRow)))
            statements.append(
                insertStatement(table: "task_events", columns: "task_id, sequence, event_type, data, created_at", rows: chunk.flatMap(\.eventRows)))
        }
        statements.append(("COMMIT", []))
        var chain = writer.eventLoop.makeSucceededVoidFuture()
        for (sql, binds) in statements {
            chain = chain.flatMap { writer.query(sql, binds).map { _ in } }
        }
        do {
            try await chain.get()
        } catch {
            _ = try? await writer.query("ROLLBACK", [])
            throw error
        }
        return Array(repeating: .success(.created), count: items.count)
    }

    private static func insertBatch(_ items: [PendingTaskInsert], on connection: SQLiteConnection) async throws -> [Result<
        TaskInsertOutcome, any Error
    >] {
        var results: [Result<TaskInsertOutcome, any Error>] = []
        var inserts: [PendingTaskInsert] = []
        var claimed: [String: (fingerprint: String, taskId: UUID)] = [:]
        for item in items {
            if let claim = item.idempotency {
                let scope = "\(item.task.teamId.lowercased)/\(claim.key)"
                var live = claimed[scope]
                if live == nil,
                    let row = try await connection.query(
                        "SELECT fingerprint, task_id, created_at FROM idempotency_keys WHERE team_id = ? AND idempotency_key = ?",
                        [.uuid(item.task.teamId), .text(claim.key)]
                    ).first,
                    item.task.createdAt.timeIntervalSince(try row.date("created_at")) < IdempotencyClaim.window
                {
                    live = (try row.string("fingerprint"), try row.uuid("task_id"))
                }
                if let live {
                    results.append(
                        live.fingerprint == claim.fingerprint
                            ? .success(.replayed(taskId: live.taskId)) : .failure(SwitchyardError.conflict(IdempotencyClaim.conflictMessage)))
                    continue
                }
                claimed[scope] = (claim.fingerprint, item.task.id)
            }
            inserts.append(item)
            results.append(.success(.created))
        }
        for chunk in stride(from: 0, to: inserts.count, by: rowsPerStatement).map({ inserts[$0..<min($0 + rowsPerStatement, inserts.count)] }) {
            try await insertRows(
                table: "tasks", columns: "\(taskColumns), definition", rows: chunk.map(\.taskRow),
                on: connection)
            try await insertRows(
                table: "task_events", columns: "task_id, sequence, event_type, data, created_at", rows: chunk.flatMap(\.eventRows),
                on: connection)
            let claims = chunk.compactMap { item in
                item.idempotency.map { claim -> [SQLiteData] in
                    [.uuid(item.task.teamId), .text(claim.key), .text(claim.fingerprint), .uuid(item.task.id), .date(item.task.createdAt)]
                }
            }
            if !claims.isEmpty {
                try await insertRows(
                    table: "idempotency_keys", columns: "team_id, idempotency_key, fingerprint, task_id, created_at", rows: claims,
                    orReplace: true, on: connection)
            }
        }
        return results
    }

    private static func insertRows(table: String, columns: String, rows: [[SQLiteData]], orReplace: Bool = false, on connection: SQLiteConnection)
        async throws
    {
        guard !rows.isEmpty else { return }
        let (sql, binds) = insertStatement(table: table, columns: columns, rows: rows, orReplace: orReplace)
        _ = try await connection.query(sql, binds)
    }

    /// One multi-row `INSERT` for `rows` (all of the same width).
    private static func insertStatement(table: String, columns: String, rows: [[SQLiteData]], orReplace: Bool = false) -> (String, [SQLiteData]) {
        let row = "(" + Array(repeating: "?", count: rows.first?.count ?? 0).joined(separator: ", ") + ")"
        let values = Array(repeating: row, count: rows.count).joined(separator: ", ")
        return ("INSERT\(orReplace ? " OR REPLACE" : "") INTO \(table) (\(columns)) VALUES \(values)", rows.flatMap { $0 })
    }

    static func taskBinds(_ task: TaskRecord) -> [SQLiteData] {
        [
            .uuid(task.id), .uuid(task.teamId), .uuid(task.workflowId), .integer(task.workflowVersion), .text(task.status.rawValue),
            .text(task.source.rawValue), .uuid(task.userId), .uuid(task.credentialId), .text(StoredJSON.text(task.parameters)),
            .text(task.dispatchTarget.rawValue), .text(task.targetPool.rawValue), task.submitterRegion.map(SQLiteData.text) ?? .null,
            .text(task.toolType.rawValue), .text(StoredJSON.text(task.requiredLabels)), .integer(task.taskTimeout), .integer(task.maxRetries),
            .integer(task.retryCount), task.agentId.map(SQLiteData.text) ?? .null, task.agentLabels.map { .text(StoredJSON.text($0)) } ?? .null,
            task.gatewayId.map(SQLiteData.text) ?? .null, task.gpuType.map(SQLiteData.text) ?? .null, .text(task.error),
            task.output.map { .text($0.jsonString) } ?? .null, .date(task.createdAt), .date(task.updatedAt), .date(task.startedAt),
            .date(task.completedAt), .uuid(task.attemptId), .date(task.startDeadline),
        ]
    }

    static func eventBinds(_ event: TaskEventRecord) -> [SQLiteData] {
        [.uuid(event.taskId), .integer(event.sequence), .text(event.kind.rawValue), .text(event.data.jsonString), .date(event.createdAt)]
    }

    public func task(id: UUID, teamId: UUID) async throws -> TaskRecord? {
        try await read("SELECT \(Self.taskSelectColumns) FROM tasks WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)]).first.map(
            Self.decodeTask)
    }

    public func taskDefinition(id: UUID, teamId: UUID) async throws -> JSONValue? {
        guard let row = try await read("SELECT definition FROM tasks WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)]).first else {
            return nil
        }
        return try JSONValue.parse(try row.string("definition"))
    }

    public func tasks(teamId: UUID, status: TaskStatus?, page: PageRequest) async throws -> Page<TaskRecord> {
        var filter = "team_id = ?"
        var binds: [SQLiteData] = [.uuid(teamId)]
        if let status {
            filter += " AND task_status = ?"
            binds.append(.text(status.rawValue))
        }
        let total = try await read("SELECT COUNT(*) AS total FROM tasks WHERE \(filter)", binds).first?.int("total") ?? 0
        let rows = try await read(
            "SELECT \(Self.taskSelectColumns) FROM tasks WHERE \(filter) ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            binds + [.integer(page.perPage), .integer(page.offset)]
        )
        return Page(items: try rows.map(Self.decodeTask), totalCount: total)
    }

    public func applyTaskEvent(id: UUID, teamId: UUID, event: TaskStateMachine.Event, at date: Date) async throws -> TaskTransitionOutcome? {
        try await transaction { connection in
            guard
                let row = try await connection.query(
                    "SELECT \(Self.taskSelectColumns) FROM tasks WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)]
                )
                .first
            else { return nil }
            var task = try Self.decodeTask(row)
            let action = try task.take(event, at: date)
            guard case .transition(let status, let retryCount) = action else { return TaskTransitionOutcome(action: action, task: task) }
            _ = try await connection.query(
                "UPDATE tasks SET task_status = ?, retry_count = ?, updated_at = ?, started_at = ?, completed_at = ? WHERE id = ?",
                [.text(status.rawValue), .integer(retryCount), .date(date), .date(task.startedAt), .date(task.completedAt), .uuid(id)]
            )
            let sequence =
                try await connection.query("SELECT COALESCE(MAX(sequence), 0) + 1 AS next FROM task_events WHERE task_id = ?", [.uuid(id)])
                .first?.int("next") ?? 1
            let record = TaskEventRecord.statusChange(taskId: id, sequence: sequence, to: status, error: task.error, output: task.output, at: date)
            try await Self.insertRows(
                table: "task_events", columns: "task_id, sequence, event_type, data, created_at", rows: [Self.eventBinds(record)], on: connection)
            try await Self.enqueueWebhookDeliveries(for: task, at: date, on: connection)
            return TaskTransitionOutcome(action: action, task: task)
        }
    }

    public func taskEvents(taskId: UUID, teamId: UUID, afterSequence: Int) async throws -> [TaskEventRecord]? {
        guard try await read("SELECT 1 AS found FROM tasks WHERE id = ? AND team_id = ?", [.uuid(taskId), .uuid(teamId)]).first != nil else {
            return nil
        }
        return try await read(
            "SELECT task_id, sequence, event_type, data, created_at FROM task_events WHERE task_id = ? AND sequence > ? ORDER BY sequence",
            [.uuid(taskId), .integer(afterSequence)]
        ).map { row in
            guard let kind = TaskEventRecord.Kind(rawValue: try row.string("event_type")) else { throw SQLiteDecodingError(column: "event_type") }
            return TaskEventRecord(
                taskId: try row.uuid("task_id"), sequence: try row.int("sequence"), kind: kind, data: try JSONValue.parse(try row.string("data")),
                createdAt: try row.date("created_at"))
        }
    }

    static func decodeTask(_ row: SQLiteRow) throws -> TaskRecord {
        func enumValue<E: RawRepresentable>(_ column: String, _ type: E.Type) throws -> E where E.RawValue == String {
            guard let value = E(rawValue: try row.string(column)) else { throw SQLiteDecodingError(column: column) }
            return value
        }
        return TaskRecord(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), workflowId: try row.uuid("workflow_id"),
            workflowVersion: try row.int("workflow_version"), status: try enumValue("task_status", TaskStatus.self),
            source: try enumValue("task_source", TaskRecord.Source.self), userId: try row.optionalUUID("user_id"),
            credentialId: try row.optionalUUID("credential_id"), parameters: try StoredJSON.object(try row.string("parameters")),
            dispatchTarget: try enumValue("dispatch_target", DispatchTarget.self), targetPool: try enumValue("target_pool", TargetPool.self),
            submitterRegion: row.optionalString("submitter_region"), toolType: try enumValue("tool_type", ToolType.self),
            requiredLabels: try StoredJSON.strings(try row.string("required_labels")), taskTimeout: try row.int("task_timeout"),
            maxRetries: try row.int("max_retries"), retryCount: try row.int("retry_count"), agentId: row.optionalString("agent_id"),
            agentLabels: try row.optionalString("agent_labels").map(StoredJSON.strings), gatewayId: row.optionalString("gateway_id"),
            gpuType: row.optionalString("gpu_type"), error: try row.string("task_error"),
            output: try row.optionalString("task_output").map { try JSONValue.parse($0) }, createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"), startedAt: row.optionalDate("started_at"), completedAt: row.optionalDate("completed_at"),
            attemptId: try row.optionalUUID("attempt_id"), stoppedAt: row.optionalDate("stopped_at"), gpuSeconds: row.column("gpu_seconds")?.double,
            startDeadline: row.optionalDate("start_deadline")
        )
    }
}
