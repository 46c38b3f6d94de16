import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardSQL

/// One submission waiting for its group commit, its row values already made on the submitting request's task.
struct PendingPostgresInsert: Sendable {
    let taskRow: [SQLBind]
    let eventRows: [[SQLBind]]

    init(task: TaskRecord, definition: JSONValue, events: [TaskEventRecord]) {
        self.taskRow = task.columnBinds + [.text(definition.jsonString)]
        self.eventRows = events.map(\.columnBinds)
    }
}

extension PostgresStorage {
    /// Without an idempotency key, concurrent submissions are group-committed: one statement (tasks and first
    /// events inserted by one `WITH`, atomic without BEGIN/COMMIT round trips) per batch, so PostgreSQL parses,
    /// plans and commits once for many tasks. With a key, the claim and the inserts share a transaction.
    public func insertTask(
        _ task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], idempotency: IdempotencyClaim?
    ) async throws -> TaskInsertOutcome {
        guard let claim = idempotency else {
            let shard = nextInsertShard.add(1, ordering: .relaxed).oldValue % taskInserts.count
            return try await tracked {
                try await taskInserts[shard].submit(PendingPostgresInsert(task: task, definition: definition, events: events))
            }
        }
        return try await transaction { try await $0.insertTask(task, definition: definition, events: events, claim: claim) }
    }

    /// Writes one batch in one statement. Should it fail as a whole, each item is retried alone, so one bad
    /// submission cannot fail its neighbours.
    static func flushTaskInserts(_ items: [PendingPostgresInsert], client: PostgresClient, logger: Logger) async -> [Result<
        TaskInsertOutcome, any Error
    >] {
        do {
            try await client.query(insertQuery(items), logger: logger)
            return Array(repeating: .success(.created), count: items.count)
        } catch {
            guard items.count > 1 else { return [.failure(error)] }
            var results: [Result<TaskInsertOutcome, any Error>] = []
            for item in items {
                do {
                    try await client.query(insertQuery([item]), logger: logger)
                    results.append(.success(.created))
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        }
    }

    /// Inserts tasks and their first events in one statement: the `WITH` makes both inserts one atomic unit (the
    /// events' foreign key is checked at the end of the statement, after the tasks are in).
    static func insertQuery(_ items: [PendingPostgresInsert]) -> PostgresQuery {
        var sql = "WITH inserted AS (INSERT INTO tasks (\(SQLColumns.task), definition) VALUES "
        var bindings = PostgresBindings(capacity: 36 * items.count)
        func append(_ row: [SQLBind], first: Bool) {
            sql += first ? "(" : ", ("
            for (index, value) in row.enumerated() {
                PostgresExecutor.append(value, to: &bindings)
                sql += index == 0 ? "$\(bindings.count)" : ", $\(bindings.count)"
            }
            sql += ")"
        }
        for (index, item) in items.enumerated() { append(item.taskRow, first: index == 0) }
        sql += " RETURNING id) INSERT INTO task_events (\(SQLColumns.event)) VALUES "
        for (index, row) in items.flatMap(\.eventRows).enumerated() { append(row, first: index == 0) }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}
