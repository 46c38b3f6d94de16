import Foundation
import SwitchyardCore

extension SQLColumns {
    /// What a submission inserts (the definition aside).
    public static let task = """
        id, team_id, workflow_id, workflow_version, task_status, task_source, user_id, credential_id, parameters, dispatch_target, \
        target_pool, submitter_region, tool_type, required_labels, task_timeout, max_retries, retry_count, agent_id, agent_labels, \
        gateway_id, gpu_type, task_error, task_output, created_at, updated_at, started_at, completed_at, attempt_id, start_deadline
        """
    /// What reads select: the inserted columns plus those only dispatch writes.
    public static let taskSelection = task + ", stopped_at, gpu_seconds"
    public static let event = "task_id, sequence, event_type, data, created_at"
}

extension SQLStorage {
    public func task(id: UUID, teamId: UUID) async throws -> TaskRecord? {
        try await read("SELECT \(raw: SQLColumns.taskSelection) FROM tasks WHERE id = \(id) AND team_id = \(teamId)").first.map(TaskRecord.init(row:))
    }

    public func taskDefinition(id: UUID, teamId: UUID) async throws -> JSONValue? {
        try await read("SELECT definition FROM tasks WHERE id = \(id) AND team_id = \(teamId)").first.map {
            try JSONValue.parse(try $0.string("definition"))
        }
    }

    public func tasks(teamId: UUID, filter taskFilter: TaskFilter, page: PageRequest) async throws -> Page<TaskRecord> {
        var filter: SQLQuery = "team_id = \(teamId)"
        if let status = taskFilter.status { filter = "\(filter) AND task_status = \(status.rawValue)" }
        if let workflowId = taskFilter.workflowId { filter = "\(filter) AND workflow_id = \(workflowId)" }
        if let agentId = taskFilter.agentId { filter = "\(filter) AND agent_id = \(agentId)" }
        return try await self.page(SQLColumns.taskSelection, from: "tasks", where: filter, page, TaskRecord.init(row:))
    }

    public func applyTaskEvent(id: UUID, teamId: UUID, event: TaskStateMachine.Event, at date: Date) async throws -> TaskTransitionOutcome? {
        try await transaction { transaction in
            guard
                let row = try await transaction.query(
                    "SELECT \(raw: SQLColumns.taskSelection) FROM tasks WHERE id = \(id) AND team_id = \(teamId) \(lock: .forUpdate)"
                ).first
            else { return nil }
            var task = try TaskRecord(row: row)
            let action = try task.take(event, at: date)
            guard case .transition(let status, let retryCount) = action else { return TaskTransitionOutcome(action: action, task: task) }
            _ = try await transaction.query(
                """
                UPDATE tasks SET task_status = \(status.rawValue), retry_count = \(retryCount), updated_at = \(date),
                    started_at = \(task.startedAt), completed_at = \(task.completedAt)
                WHERE id = \(id)
                """)
            let sequence = try await transaction.nextSequence(taskId: id)
            try await transaction.insertEvent(
                TaskEventRecord.statusChange(taskId: id, sequence: sequence, to: status, error: task.error, output: task.output, at: date))
            try await transaction.enqueueWebhookDeliveries(for: task, at: date)
            return TaskTransitionOutcome(action: action, task: task)
        }
    }

    public func taskEvents(taskId: UUID, teamId: UUID, afterSequence: Int) async throws -> [TaskEventRecord]? {
        guard try await !read("SELECT 1 AS found FROM tasks WHERE id = \(taskId) AND team_id = \(teamId)").isEmpty else { return nil }
        return try await read(
            "SELECT \(raw: SQLColumns.event) FROM task_events WHERE task_id = \(taskId) AND sequence > \(afterSequence) ORDER BY sequence"
        ).map { row in
            TaskEventRecord(
                taskId: try row.uuid("task_id"), sequence: try row.int("sequence"), kind: try row.value("event_type"),
                data: try JSONValue.parse(try row.string("data")), createdAt: try row.date("created_at"))
        }
    }

    /// Reads the task under a row lock, applies `change`, and writes the change and its event in one transaction.
    public func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome? {
        try await transaction { try await $0.changeTask(id: id, change, at: date) }
    }
}

extension SQLExecutor {
    /// Stores a submission: the task with its definition and its first events.
    public func insertTask(_ task: TaskRecord, definition: JSONValue, events: [TaskEventRecord]) async throws {
        _ = try await query(
            "INSERT INTO tasks (\(raw: SQLColumns.task), definition) VALUES \(binds: task.columnBinds + [.text(definition.jsonString)])")
        for event in events { try await insertEvent(event) }
    }

    /// Stores a submission that carries an idempotency key, inside the caller's transaction: a live claim of the
    /// key in the team replays its task (same fingerprint) or is a conflict; an absent or expired one is taken.
    public func insertTask(
        _ task: TaskRecord, definition: JSONValue, events: [TaskEventRecord], claim: IdempotencyClaim
    ) async throws -> TaskInsertOutcome {
        if let outcome = try await liveClaim(claim, of: task, lock: true) { return outcome }
        // A concurrent transaction holding the key makes this wait for its commit; then the key is live and replays.
        let taken = try await query(
            """
            INSERT INTO idempotency_keys (team_id, idempotency_key, fingerprint, task_id, created_at)
            VALUES (\(task.teamId), \(claim.key), \(claim.fingerprint), \(task.id), \(task.createdAt))
            ON CONFLICT (team_id, idempotency_key) DO UPDATE
                SET fingerprint = excluded.fingerprint, task_id = excluded.task_id, created_at = excluded.created_at
                WHERE idempotency_keys.created_at <= \(task.createdAt.addingTimeInterval(-IdempotencyClaim.window))
            RETURNING task_id
            """)
        if taken.isEmpty {
            if let outcome = try await liveClaim(claim, of: task, lock: false) { return outcome }
            throw SwitchyardError.conflict(IdempotencyClaim.conflictMessage)
        }
        try await insertTask(task, definition: definition, events: events)
        return .created
    }

    /// The outcome a live (unexpired) claim of the key dictates, or nil when there is none.
    private func liveClaim(_ claim: IdempotencyClaim, of task: TaskRecord, lock: Bool) async throws -> TaskInsertOutcome? {
        let locking: SQLQuery = lock ? "\(lock: .forUpdate)" : ""
        guard
            let row = try await query(
                """
                SELECT fingerprint, task_id FROM idempotency_keys
                WHERE team_id = \(task.teamId) AND idempotency_key = \(claim.key)
                    AND created_at > \(task.createdAt.addingTimeInterval(-IdempotencyClaim.window)) \(locking)
                """
            ).first
        else { return nil }
        guard try row.string("fingerprint") == claim.fingerprint else { throw SwitchyardError.conflict(IdempotencyClaim.conflictMessage) }
        return .replayed(taskId: try row.uuid("task_id"))
    }

    /// The number the task's next event gets.
    public func nextSequence(taskId: UUID) async throws -> Int {
        try await query("SELECT COALESCE(MAX(sequence), 0) + 1 AS next FROM task_events WHERE task_id = \(taskId)").first?.int("next") ?? 1
    }

    public func insertEvent(_ event: TaskEventRecord) async throws {
        _ = try await query("INSERT INTO task_events (\(raw: SQLColumns.event)) VALUES \(binds: event.columnBinds)")
    }

    /// `SwitchyardStorage.changeTask` inside the caller's transaction: reads the task (locked), applies `change` with
    /// the domain's rules (`TaskRecord.apply`), and writes the new state, its event and the webhook outbox.
    public func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome? {
        guard let row = try await query("SELECT \(raw: SQLColumns.taskSelection) FROM tasks WHERE id = \(id) \(lock: .forUpdate)").first else {
            return nil
        }
        var task = try TaskRecord(row: row)
        guard let (action, message) = task.apply(change, at: date) else { return nil }
        guard case .transition = action else { return TaskTransitionOutcome(action: action, task: task) }
        _ = try await query(
            """
            UPDATE tasks SET task_status = \(task.status.rawValue), retry_count = \(task.retryCount), agent_id = \(task.agentId),
                agent_labels = \(task.agentLabels.map(StoredJSON.text)), gateway_id = \(task.gatewayId), gpu_type = \(task.gpuType),
                attempt_id = \(task.attemptId), task_error = \(task.error), task_output = \(task.output?.jsonString),
                updated_at = \(task.updatedAt), started_at = \(task.startedAt), completed_at = \(task.completedAt),
                stopped_at = \(task.stoppedAt), gpu_seconds = \(task.gpuSeconds)
            WHERE id = \(id)
            """)
        try await insertEvent(task.statusEvent(sequence: try await nextSequence(taskId: id), message: message, at: date))
        try await enqueueWebhookDeliveries(for: task, at: date)
        return TaskTransitionOutcome(action: action, task: task)
    }
}

extension TaskEventRecord {
    /// The values of `SQLColumns.event`, in order.
    public var columnBinds: [SQLBind] { [.uuid(taskId), .integer(sequence), .text(kind.rawValue), .text(data.jsonString), .date(createdAt)] }
}

extension TaskRecord {
    /// The values of `SQLColumns.task`, in order (built without existential boxes: submissions are a hot path).
    public var columnBinds: [SQLBind] {
        [
            .uuid(id), .uuid(teamId), .uuid(workflowId), .integer(workflowVersion), .text(status.rawValue), .text(source.rawValue),
            .uuid(userId), .uuid(credentialId), .text(StoredJSON.text(parameters)), .text(dispatchTarget.rawValue), .text(targetPool.rawValue),
            .text(submitterRegion), .text(toolType.rawValue), .text(StoredJSON.text(requiredLabels)), .integer(taskTimeout), .integer(maxRetries),
            .integer(retryCount), .text(agentId), .text(agentLabels.map(StoredJSON.text)), .text(gatewayId), .text(gpuType), .text(error),
            .text(output?.jsonString), .date(createdAt), .date(updatedAt), .date(startedAt), .date(completedAt), .uuid(attemptId),
            .date(startDeadline),
        ]
    }

    public init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), workflowId: try row.uuid("workflow_id"),
            workflowVersion: try row.int("workflow_version"), status: try row.value("task_status"), source: try row.value("task_source"),
            userId: try row.optionalUUID("user_id"), credentialId: try row.optionalUUID("credential_id"),
            parameters: try StoredJSON.object(try row.string("parameters")), dispatchTarget: try row.value("dispatch_target"),
            targetPool: try row.value("target_pool"), submitterRegion: try row.optionalString("submitter_region"),
            toolType: try row.value("tool_type"), requiredLabels: try StoredJSON.strings(try row.string("required_labels")),
            taskTimeout: try row.int("task_timeout"), maxRetries: try row.int("max_retries"), retryCount: try row.int("retry_count"),
            agentId: try row.optionalString("agent_id"), agentLabels: try row.optionalString("agent_labels").map(StoredJSON.strings),
            gatewayId: try row.optionalString("gateway_id"), gpuType: try row.optionalString("gpu_type"), error: try row.string("task_error"),
            output: try row.optionalString("task_output").map { try JSONValue.parse($0) }, createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"), startedAt: try row.optionalDate("started_at"), completedAt: try row.optionalDate("completed_at"),
            attemptId: try row.optionalUUID("attempt_id"), stoppedAt: try row.optionalDate("stopped_at"),
            gpuSeconds: try row.optionalDouble("gpu_seconds"), startDeadline: try row.optionalDate("start_deadline"))
    }
}
