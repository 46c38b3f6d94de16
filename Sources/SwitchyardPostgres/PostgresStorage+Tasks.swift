import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    static let taskColumns = """
        id, team_id, workflow_id, workflow_version, task_status, task_source, user_id, credential_id, parameters, dispatch_target, \
        target_pool, submitter_region, tool_type, required_labels, task_timeout, max_retries, retry_count, agent_id, agent_labels, \
        gateway_id, gpu_type, task_error, task_output, created_at, updated_at, started_at, completed_at, attempt_id, start_deadline
        """
    /// What reads select: the inserted columns plus those only dispatch writes.
    static let taskSelectColumns = taskColumns + ", stopped_at, gpu_seconds"

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
        sql.appendLiteral("WITH inserted AS (INSERT INTO tasks (\(taskColumns), definition) VALUES ")
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
        sql.appendLiteral(" RETURNING id) INSERT INTO task_events (task_id, sequence, event_type, data, created_at) VALUES ")
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

    static func insertEvent(_ event: TaskEventRecord, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO task_events (task_id, sequence, event_type, data, created_at)
            VALUES (\(event.taskId), \(event.sequence), \(event.kind.rawValue), \(event.data.jsonString), \(event.createdAt))
            """,
            logger: logger
        )
    }

    public func task(id: UUID, teamId: UUID) async throws -> TaskRecord? {
        try await rows("SELECT \(unescaped: Self.taskSelectColumns) FROM tasks WHERE id = \(id) AND team_id = \(teamId)").first.map(Self.decodeTask)
    }

    public func taskDefinition(id: UUID, teamId: UUID) async throws -> JSONValue? {
        guard let row = try await rows("SELECT definition FROM tasks WHERE id = \(id) AND team_id = \(teamId)").first else { return nil }
        return try JSONValue.parse(try row.decode(String.self))
    }

    public func tasks(teamId: UUID, status: TaskStatus?, page: PageRequest) async throws -> Page<TaskRecord> {
        let statusName = status?.rawValue
        let total =
            try await rows(
                "SELECT COUNT(*) FROM tasks WHERE team_id = \(teamId) AND (\(statusName)::text IS NULL OR task_status = \(statusName))"
            ).first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT \(unescaped: Self.taskSelectColumns) FROM tasks
            WHERE team_id = \(teamId) AND (\(statusName)::text IS NULL OR task_status = \(statusName))
            ORDER BY created_at DESC, id DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeTask)
        return Page(items: items, totalCount: total)
    }

    public func applyTaskEvent(id: UUID, teamId: UUID, event: TaskStateMachine.Event, at date: Date) async throws -> TaskTransitionOutcome? {
        let logger = self.logger
        return try await transaction { connection in
            guard
                let row = try await connection.query(
                    "SELECT \(unescaped: Self.taskSelectColumns) FROM tasks WHERE id = \(id) AND team_id = \(teamId) FOR UPDATE", logger: logger
                ).collect().first
            else { return nil }
            var task = try Self.decodeTask(row)
            let action = try task.take(event, at: date)
            guard case .transition(let status, let retryCount) = action else { return TaskTransitionOutcome(action: action, task: task) }
            try await connection.query(
                """
                UPDATE tasks SET task_status = \(status.rawValue), retry_count = \(retryCount), updated_at = \(date),
                    started_at = \(task.startedAt), completed_at = \(task.completedAt)
                WHERE id = \(id)
                """,
                logger: logger
            )
            let sequence =
                try await connection.query("SELECT COALESCE(MAX(sequence), 0) + 1 FROM task_events WHERE task_id = \(id)", logger: logger)
                .collect().first?.decode(Int.self) ?? 1
            let record = TaskEventRecord.statusChange(taskId: id, sequence: sequence, to: status, error: task.error, output: task.output, at: date)
            try await Self.insertEvent(record, on: connection, logger: logger)
            try await Self.enqueueWebhookDeliveries(for: task, at: date, on: connection, logger: logger)
            return TaskTransitionOutcome(action: action, task: task)
        }
    }

    public func taskEvents(taskId: UUID, teamId: UUID, afterSequence: Int) async throws -> [TaskEventRecord]? {
        guard try await !rows("SELECT 1 FROM tasks WHERE id = \(taskId) AND team_id = \(teamId)").isEmpty else { return nil }
        return try await rows(
            """
            SELECT task_id, sequence, event_type, data, created_at FROM task_events
            WHERE task_id = \(taskId) AND sequence > \(afterSequence) ORDER BY sequence
            """
        ).map { row in
            let (taskId, sequence, kindName, data, createdAt) = try row.decode((UUID, Int, String, String, Date).self)
            guard let kind = TaskEventRecord.Kind(rawValue: kindName) else { throw PostgresDecodingError(column: "event_type") }
            return TaskEventRecord(taskId: taskId, sequence: sequence, kind: kind, data: try JSONValue.parse(data), createdAt: createdAt)
        }
    }

    static func decodeTask(_ row: PostgresRow) throws -> TaskRecord {
        let columns = row.makeRandomAccess()
        func value<T: PostgresDecodable>(_ name: String, _ type: T.Type) throws -> T {
            try columns[name].decode(T.self)
        }
        func enumValue<E: RawRepresentable>(_ name: String, _ type: E.Type) throws -> E where E.RawValue == String {
            guard let parsed = E(rawValue: try value(name, String.self)) else { throw PostgresDecodingError(column: name) }
            return parsed
        }
        return TaskRecord(
            id: try value("id", UUID.self), teamId: try value("team_id", UUID.self), workflowId: try value("workflow_id", UUID.self),
            workflowVersion: try value("workflow_version", Int.self), status: try enumValue("task_status", TaskStatus.self),
            source: try enumValue("task_source", TaskRecord.Source.self), userId: try value("user_id", UUID?.self),
            credentialId: try value("credential_id", UUID?.self), parameters: try StoredJSON.object(try value("parameters", String.self)),
            dispatchTarget: try enumValue("dispatch_target", DispatchTarget.self), targetPool: try enumValue("target_pool", TargetPool.self),
            submitterRegion: try value("submitter_region", String?.self), toolType: try enumValue("tool_type", ToolType.self),
            requiredLabels: try StoredJSON.strings(try value("required_labels", String.self)), taskTimeout: try value("task_timeout", Int.self),
            maxRetries: try value("max_retries", Int.self), retryCount: try value("retry_count", Int.self),
            agentId: try value("agent_id", String?.self), agentLabels: try value("agent_labels", String?.self).map(StoredJSON.strings),
            gatewayId: try value("gateway_id", String?.self), gpuType: try value("gpu_type", String?.self),
            error: try value("task_error", String.self), output: try value("task_output", String?.self).map { try JSONValue.parse($0) },
            createdAt: try value("created_at", Date.self), updatedAt: try value("updated_at", Date.self),
            startedAt: try value("started_at", Date?.self), completedAt: try value("completed_at", Date?.self),
            attemptId: try value("attempt_id", UUID?.self), stoppedAt: try value("stopped_at", Date?.self),
            gpuSeconds: try value("gpu_seconds", Double?.self), startDeadline: try value("start_deadline", Date?.self)
        )
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
