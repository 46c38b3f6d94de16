import Foundation
import SQLiteNIO
import SwitchyardCore
import SwitchyardSQL

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
        self.eventRows = events.map { event in
            SQLiteStorage.binds([event.taskId, event.sequence, event.kind.rawValue, event.data.jsonString, event.createdAt])
        }
    }
}

extension SQLiteStorage {
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
            statements.append(insertStatement(table: "tasks", columns: "\(SQLColumns.task), definition", rows: chunk.map(\.taskRow)))
            statements.append(
                insertStatement(table: "task_events", columns: SQLColumns.event, rows: chunk.flatMap(\.eventRows)))
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
                    let row = try await SQLiteExecutor(connection: connection).query(
                        """
                        SELECT fingerprint, task_id, created_at FROM idempotency_keys
                        WHERE team_id = \(item.task.teamId) AND idempotency_key = \(claim.key)
                        """
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
                table: "tasks", columns: "\(SQLColumns.task), definition", rows: chunk.map(\.taskRow),
                on: connection)
            try await insertRows(
                table: "task_events", columns: SQLColumns.event, rows: chunk.flatMap(\.eventRows),
                on: connection)
            let claims = chunk.compactMap { item in
                item.idempotency.map { claim in
                    Self.binds([item.task.teamId, claim.key, claim.fingerprint, item.task.id, item.task.createdAt])
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
        binds([
            task.id, task.teamId, task.workflowId, task.workflowVersion, task.status.rawValue, task.source.rawValue, task.userId,
            task.credentialId, StoredJSON.text(task.parameters), task.dispatchTarget.rawValue, task.targetPool.rawValue, task.submitterRegion,
            task.toolType.rawValue, StoredJSON.text(task.requiredLabels), task.taskTimeout, task.maxRetries, task.retryCount, task.agentId,
            task.agentLabels.map(StoredJSON.text), task.gatewayId, task.gpuType, task.error, task.output?.jsonString, task.createdAt,
            task.updatedAt, task.startedAt, task.completedAt, task.attemptId, task.startDeadline,
        ])
    }

    static func binds(_ values: [any SQLBindable]) -> [SQLiteData] {
        values.map { SQLiteExecutor.data($0.sqlBind) }
    }

    /// Concurrent changes are group-committed: one transaction (and one fsync) for a batch, each change in a
    /// savepoint of its own.
    public func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome? {
        try await tracked { try await taskChanges.submit(PendingTaskChange(id: id, change: change, date: date)) }
    }

    /// Writes a batch of changes in one transaction; a change that throws is rolled back to its savepoint alone.
    static func flushTaskChanges(_ items: [PendingTaskChange], writer: SQLiteConnection, lock: AsyncLock) async -> [Result<
        TaskTransitionOutcome?, any Error
    >] {
        do {
            return try await transaction(writer: writer, lock: lock) { connection in
                let executor = SQLiteExecutor(connection: connection)
                var results: [Result<TaskTransitionOutcome?, any Error>] = []
                for item in items {
                    _ = try await connection.query("SAVEPOINT change", [])
                    do {
                        results.append(.success(try await executor.changeTask(id: item.id, item.change, at: item.date)))
                        _ = try await connection.query("RELEASE change", [])
                    } catch {
                        _ = try await connection.query("ROLLBACK TO change", [])
                        _ = try await connection.query("RELEASE change", [])
                        results.append(.failure(error))
                    }
                }
                return results
            }
        } catch {
            return Array(repeating: .failure(error), count: items.count)
        }
    }
}

/// One queued `changeTask`.
struct PendingTaskChange: Sendable {
    let id: UUID
    let change: TaskChange
    let date: Date
}
