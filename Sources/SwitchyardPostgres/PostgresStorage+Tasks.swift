import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardSQL

extension PostgresStorage {
    /// Without an idempotency key, concurrent submissions are group-committed: one statement (tasks and first
    /// events inserted by one `WITH`, atomic without BEGIN/COMMIT round trips) per batch, so PostgreSQL parses,
    /// plans and commits once for many tasks. With a key, the claim and the inserts share a transaction.
    public func insertTask(
        _ task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], idempotency: IdempotencyClaim?
    ) async throws -> TaskInsertOutcome {
        let logger = self.logger
        guard let claim = idempotency else {
            let shard = nextInsertShard.add(1, ordering: .relaxed).oldValue % taskInserts.count
            return try await tracked {
                try await taskInserts[shard].submit(PendingPostgresInsert(task: task, definition: definition, events: events))
            }
        }
        return try await transaction { connection in
            if let outcome = try await Self.liveClaim(claim, teamId: task.teamId, at: task.createdAt, lock: true, on: connection, logger: logger) {
                return outcome
            }
            // Absent or expired: take the key. A concurrent transaction holding it makes this wait for its
            // commit; then the key is live and replays.
            let taken = try await connection.query(
                """
                INSERT INTO idempotency_keys (team_id, idempotency_key, fingerprint, task_id, created_at)
                VALUES (\(task.teamId), \(claim.key), \(claim.fingerprint), \(task.id), \(task.createdAt))
                ON CONFLICT (team_id, idempotency_key) DO UPDATE
                    SET fingerprint = EXCLUDED.fingerprint, task_id = EXCLUDED.task_id, created_at = EXCLUDED.created_at
                    WHERE idempotency_keys.created_at <= \(task.createdAt.addingTimeInterval(-IdempotencyClaim.window))
                RETURNING task_id
                """,
                logger: logger
            ).collect()
            if taken.isEmpty {
                if let outcome = try await Self.liveClaim(claim, teamId: task.teamId, at: task.createdAt, lock: false, on: connection, logger: logger)
                {
                    return outcome
                }
                throw SwitchyardError.conflict(IdempotencyClaim.conflictMessage)
            }
            try await connection.query(
                Self.insertQuery([PendingPostgresInsert(task: task, definition: definition, events: events)]), logger: logger)
            return .created
        }
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

    /// Inserts tasks and their first events in one statement: the `WITH` makes both inserts one atomic unit.
    static func insertQuery(_ items: [PendingPostgresInsert]) -> PostgresQuery {
        var sql = PostgresQuery.StringInterpolation(literalCapacity: 64 * items.count + 512, interpolationCount: 40 * items.count)
        sql.appendLiteral("WITH inserted AS (INSERT INTO tasks (\(SQLColumns.task), definition) VALUES ")
        for (index, item) in items.enumerated() {
            let task = item.task
            appendRow(
                [
                    task.id, task.teamId, task.workflowId, task.workflowVersion, task.status.rawValue, task.source.rawValue, task.userId,
                    task.credentialId, item.parameters, task.dispatchTarget.rawValue, task.targetPool.rawValue, task.submitterRegion,
                    task.toolType.rawValue, item.requiredLabels, task.taskTimeout, task.maxRetries, task.retryCount, task.agentId,
                    task.agentLabels.map(StoredJSON.text), task.gatewayId, task.gpuType, task.error, task.output?.jsonString, task.createdAt,
                    task.updatedAt, task.startedAt, task.completedAt, task.attemptId, task.startDeadline, item.definition,
                ], to: &sql, first: index == 0)
        }
        // The events' foreign key is checked at the end of the statement, after the tasks are in.
        sql.appendLiteral(" RETURNING id) INSERT INTO task_events (\(SQLColumns.event)) VALUES ")
        var first = true
        for item in items {
            for (event, data) in zip(item.events, item.eventData) {
                appendRow([event.taskId, event.sequence, event.kind.rawValue, data, event.createdAt], to: &sql, first: first)
                first = false
            }
        }
        return PostgresQuery(stringInterpolation: sql)
    }

    /// Appends `(…)` with each value bound (nil as NULL), preceded by a comma unless it is the first row.
    private static func appendRow(
        _ values: [(any PostgresDynamicTypeEncodable)?], to sql: inout PostgresQuery.StringInterpolation, first: Bool
    ) {
        sql.appendLiteral(first ? "(" : ", (")
        for (index, value) in values.enumerated() {
            if index > 0 { sql.appendLiteral(", ") }
            if let value { sql.appendInterpolation(value) } else { sql.appendInterpolation(String?.none) }
        }
        sql.appendLiteral(")")
    }

    /// The outcome a live (unexpired) claim of the key dictates, or nil when there is none.
    private static func liveClaim(
        _ claim: IdempotencyClaim, teamId: UUID, at date: Date, lock: Bool, on connection: PostgresConnection, logger: Logger
    ) async throws -> TaskInsertOutcome? {
        let rows = try await connection.query(
            """
            SELECT fingerprint, task_id FROM idempotency_keys
            WHERE team_id = \(teamId) AND idempotency_key = \(claim.key) AND created_at > \(date.addingTimeInterval(-IdempotencyClaim.window))
            \(unescaped: lock ? "FOR UPDATE" : "")
            """,
            logger: logger
        ).collect()
        guard let row = rows.first else { return nil }
        let (fingerprint, taskId) = try row.decode((String, UUID).self)
        guard fingerprint == claim.fingerprint else { throw SwitchyardError.conflict(IdempotencyClaim.conflictMessage) }
        return .replayed(taskId: taskId)
    }
}

/// One submission waiting for its group commit, its JSON already serialised on the submitting request's task.
struct PendingPostgresInsert: Sendable {
    let task: TaskRecord
    let events: [TaskEventRecord]
    let parameters: String
    let requiredLabels: String
    let definition: String
    let eventData: [String]

    init(task: TaskRecord, definition: JSONValue, events: [TaskEventRecord]) {
        self.task = task
        self.events = events
        self.parameters = StoredJSON.text(task.parameters)
        self.requiredLabels = StoredJSON.text(task.requiredLabels)
        self.definition = definition.jsonString
        self.eventData = events.map(\.data.jsonString)
    }
}
