import Foundation
import SQLiteNIO
import SwitchyardConcurrency
import SwitchyardCore
import SwitchyardSQL

/// One submission waiting for its group commit, with its rows already encoded: serialising happens on the
/// submitting request's task, keeping the writer's critical section to the SQL itself.
struct PendingTaskInsert: Sendable {
    let task: TaskRecord
    let definition: JSONValue
    let events: [TaskEventRecord]
    let idempotency: IdempotencyClaim?
    let taskRow: [SQLiteData]
    let eventRows: [[SQLiteData]]

    init(task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], idempotency: IdempotencyClaim?) {
        (self.task, self.definition, self.events, self.idempotency) = (task, definition, events, idempotency)
        self.taskRow = (task.columnBinds + [.text(definition.jsonString)]).map(SQLiteExecutor.data)
        self.eventRows = events.map { $0.columnBinds.map(SQLiteExecutor.data) }
    }
}

/// One queued `changeTask`.
struct PendingTaskChange: Sendable {
    let id: UUID
    let change: TaskChange
    let date: Date
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

    /// Writes a batch of submissions in one transaction: the common batch (no idempotency keys) as one chain of
    /// multi-row inserts; otherwise, or should that batch fail as a whole (say, a team deleted meanwhile), each
    /// submission in a savepoint of its own, so one bad submission cannot fail its neighbours.
    static func flushTaskInserts(_ items: [PendingTaskInsert], writer: SQLiteConnection, lock: AsyncSemaphore) async -> [Result<
        TaskInsertOutcome, any Error
    >] {
        if items.allSatisfy({ $0.idempotency == nil }) {
            do {
                try await lock.withPermit { try await insertChained(items, writer: writer) }
                return Array(repeating: .success(.created), count: items.count)
            } catch {
                guard items.count > 1 else { return [.failure(error)] }
            }
        }
        return await eachInSavepoint(items, writer: writer, lock: lock) { item, executor in
            guard let claim = item.idempotency else {
                try await executor.insertTask(item.task, definition: item.definition, events: item.events)
                return .created
            }
            return try await executor.insertTask(item.task, definition: item.definition, events: item.events, claim: claim)
        }
    }

    /// The batch as one chain of futures: each statement is submitted to the storage's thread straight from the
    /// previous one's completion, without a round trip through the Swift concurrency pool — a third of the
    /// writer's time per batch went to those hops.
    private static func insertChained(_ items: [PendingTaskInsert], writer: SQLiteConnection) async throws {
        var statements: [(String, [SQLiteData])] = [("BEGIN IMMEDIATE", [])]
        for start in stride(from: 0, to: items.count, by: rowsPerStatement) {
            let chunk = items[start..<min(start + rowsPerStatement, items.count)]
            statements.append(insertStatement(table: "tasks", columns: "\(SQLColumns.task), definition", rows: chunk.map(\.taskRow)))
            statements.append(insertStatement(table: "task_events", columns: SQLColumns.event, rows: chunk.flatMap(\.eventRows)))
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
    }

    /// One multi-row `INSERT` for `rows` (all of the same width).
    private static func insertStatement(table: String, columns: String, rows: [[SQLiteData]]) -> (String, [SQLiteData]) {
        let row = "(" + Array(repeating: "?", count: rows.first?.count ?? 0).joined(separator: ", ") + ")"
        return ("INSERT INTO \(table) (\(columns)) VALUES " + Array(repeating: row, count: rows.count).joined(separator: ", "), rows.flatMap { $0 })
    }

    /// Concurrent changes are group-committed: one transaction (and one fsync) for a batch, each change in a
    /// savepoint of its own.
    public func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome? {
        try await tracked { try await taskChanges.submit(PendingTaskChange(id: id, change: change, date: date)) }
    }

    static func flushTaskChanges(_ items: [PendingTaskChange], writer: SQLiteConnection, lock: AsyncSemaphore) async -> [Result<
        TaskTransitionOutcome?, any Error
    >] {
        await eachInSavepoint(items, writer: writer, lock: lock) { item, executor in
            try await executor.changeTask(id: item.id, item.change, at: item.date)
        }
    }

    /// Runs `body` for each item in one transaction, each in a savepoint of its own: an item that throws is rolled
    /// back alone and fails alone.
    static func eachInSavepoint<Item: Sendable, Output: Sendable>(
        _ items: [Item], writer: SQLiteConnection, lock: AsyncSemaphore, _ body: @Sendable @escaping (Item, SQLiteExecutor) async throws -> Output
    ) async -> [Result<Output, any Error>] {
        do {
            return try await transaction(writer: writer, lock: lock) { connection in
                var results: [Result<Output, any Error>] = []
                for item in items {
                    _ = try await connection.query("SAVEPOINT item", [])
                    do {
                        results.append(.success(try await body(item, SQLiteExecutor(connection: connection))))
                    } catch {
                        _ = try await connection.query("ROLLBACK TO item", [])
                        results.append(.failure(error))
                    }
                    _ = try await connection.query("RELEASE item", [])
                }
                return results
            }
        } catch {
            return Array(repeating: .failure(error), count: items.count)
        }
    }
}
