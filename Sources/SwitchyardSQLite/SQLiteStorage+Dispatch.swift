import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    public func dispatchableTasks(limit: Int) async throws -> [TaskRecord] {
        try await read(
            "SELECT \(Self.taskSelectColumns) FROM tasks WHERE task_status IN ('pending', 'waiting') ORDER BY created_at, id LIMIT ?",
            [.integer(limit)]
        ).map(Self.decodeTask)
    }

    public func activeTasks() async throws -> [TaskRecord] {
        try await read("SELECT \(Self.taskSelectColumns) FROM tasks WHERE task_status IN ('queued', 'running') ORDER BY created_at, id", [])
            .map(Self.decodeTask)
    }

    public func recordAttemptStopped(taskId: UUID, attemptId: UUID, stoppedAt: Date, gpuSeconds: Double?) async throws -> Bool {
        try await transaction { connection in
            let rows = try await connection.query(
                "UPDATE tasks SET stopped_at = ?, gpu_seconds = ? WHERE id = ? AND attempt_id = ? RETURNING id",
                [.date(stoppedAt), gpuSeconds.map(SQLiteData.float) ?? .null, .uuid(taskId), .uuid(attemptId)])
            return !rows.isEmpty
        }
    }

    public func appendProgress(taskId: UUID, attemptId: UUID, data: JSONValue, at date: Date) async throws -> Int? {
        try await transaction { connection in
            guard
                try await !connection.query(
                    "SELECT 1 AS found FROM tasks WHERE id = ? AND attempt_id = ? AND task_status = 'running'", [.uuid(taskId), .uuid(attemptId)]
                ).isEmpty
            else { return nil }
            let sequence = try await Self.nextSequence(taskId: taskId, on: connection)
            _ = try await connection.query(
                "INSERT INTO task_events (task_id, sequence, event_type, data, created_at) VALUES (?, ?, ?, ?, ?)",
                Self.eventBinds(TaskEventRecord(taskId: taskId, sequence: sequence, kind: .progress, data: data, createdAt: date)))
            return sequence
        }
    }

    /// Reads the task, applies `change`, and writes the change and its event, atomically. Concurrent changes are
    /// group-committed: one transaction (and one fsync) for a batch, each change in a savepoint of its own.
    public func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome? {
        try await tracked { try await taskChanges.submit(PendingTaskChange(id: id, change: change, date: date)) }
    }

    /// Writes a batch of changes in one transaction; a change that throws is rolled back to its savepoint alone.
    static func flushTaskChanges(_ items: [PendingTaskChange], writer: SQLiteConnection, lock: AsyncLock) async -> [Result<
        TaskTransitionOutcome?, any Error
    >] {
        do {
            return try await transaction(writer: writer, lock: lock) { connection in
                var results: [Result<TaskTransitionOutcome?, any Error>] = []
                for item in items {
                    _ = try await connection.query("SAVEPOINT change", [])
                    do {
                        results.append(.success(try await applyChange(item, on: connection)))
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

    static func applyChange(_ item: PendingTaskChange, on connection: SQLiteConnection) async throws -> TaskTransitionOutcome? {
        let (id, change, date) = (item.id, item.change, item.date)
        guard let row = try await connection.query("SELECT \(Self.taskSelectColumns) FROM tasks WHERE id = ?", [.uuid(id)]).first else {
            return nil
        }
        var task = try Self.decodeTask(row)
        guard let (action, message) = task.apply(change, at: date) else { return nil }
        guard case .transition = action else { return TaskTransitionOutcome(action: action, task: task) }
        _ = try await connection.query(
            """
            UPDATE tasks SET task_status = ?, retry_count = ?, agent_id = ?, agent_labels = ?, gateway_id = ?, gpu_type = ?, attempt_id = ?,
                task_error = ?, task_output = ?, updated_at = ?, started_at = ?, completed_at = ?, stopped_at = ?, gpu_seconds = ?
            WHERE id = ?
            """,
            [
                .text(task.status.rawValue), .integer(task.retryCount), task.agentId.map(SQLiteData.text) ?? .null,
                task.agentLabels.map { .text(StoredJSON.text($0)) } ?? .null, task.gatewayId.map(SQLiteData.text) ?? .null,
                task.gpuType.map(SQLiteData.text) ?? .null, .uuid(task.attemptId), .text(task.error),
                task.output.map { .text($0.jsonString) } ?? .null, .date(task.updatedAt), .date(task.startedAt), .date(task.completedAt),
                .date(task.stoppedAt), task.gpuSeconds.map(SQLiteData.float) ?? .null, .uuid(id),
            ])
        let sequence = try await Self.nextSequence(taskId: id, on: connection)
        _ = try await connection.query(
            "INSERT INTO task_events (task_id, sequence, event_type, data, created_at) VALUES (?, ?, ?, ?, ?)",
            Self.eventBinds(task.statusEvent(sequence: sequence, message: message, at: date)))
        try await Self.enqueueWebhookDeliveries(for: task, at: date, on: connection)
        return TaskTransitionOutcome(action: action, task: task)
    }
}

/// One queued `changeTask`.
struct PendingTaskChange: Sendable {
    let id: UUID
    let change: TaskChange
    let date: Date
}

extension SQLiteStorage {
    static func nextSequence(taskId: UUID, on connection: SQLiteConnection) async throws -> Int {
        try await connection.query("SELECT COALESCE(MAX(sequence), 0) + 1 AS next FROM task_events WHERE task_id = ?", [.uuid(taskId)])
            .first?.int("next") ?? 1
    }

    public func upsertAgents(_ agents: [AgentRecord]) async throws {
        guard !agents.isEmpty else { return }
        try await transaction { connection in
            for agent in agents {
                _ = try await connection.query(
                    """
                    INSERT OR REPLACE INTO agents (team_id, agent_id, credential_id, agent_status, labels, region, community_opt_in, capacity,
                        agent_version, tool, tool_version, system_stats, gateway_id, sync_detail, sync_percent, connected_at, last_heartbeat_at,
                        disconnected_at, tasks_completed)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .uuid(agent.teamId), .text(agent.agentId), .uuid(agent.credentialId), .text(agent.status.rawValue),
                        .text(StoredJSON.text(agent.labels)), agent.region.map(SQLiteData.text) ?? .null, .integer(agent.communityOptIn ? 1 : 0),
                        .integer(agent.capacity), .text(agent.agentVersion), .text(agent.tool), agent.toolVersion.map(SQLiteData.text) ?? .null,
                        .text(agent.systemStats.jsonString), .text(agent.gatewayId), agent.syncDetail.map(SQLiteData.text) ?? .null,
                        agent.syncPercent.map(SQLiteData.float) ?? .null, .date(agent.connectedAt), .date(agent.lastHeartbeatAt),
                        .date(agent.disconnectedAt), .integer(agent.tasksCompleted),
                    ])
            }
        }
    }

    public func agents(teamId: UUID, includeDisconnected: Bool, page: PageRequest) async throws -> Page<AgentRecord> {
        let filter = "team_id = ?" + (includeDisconnected ? "" : " AND disconnected_at IS NULL")
        let total = try await read("SELECT COUNT(*) AS total FROM agents WHERE \(filter)", [.uuid(teamId)]).first?.int("total") ?? 0
        let rows = try await read(
            "SELECT * FROM agents WHERE \(filter) ORDER BY disconnected_at IS NOT NULL, agent_id LIMIT ? OFFSET ?",
            [.uuid(teamId), .integer(page.perPage), .integer(page.offset)])
        return Page(
            items: try rows.map { row in
                guard let status = AgentStatus(rawValue: try row.string("agent_status")) else { throw SQLiteDecodingError(column: "agent_status") }
                return AgentRecord(
                    teamId: try row.uuid("team_id"), agentId: try row.string("agent_id"), credentialId: try row.uuid("credential_id"),
                    status: status, labels: try StoredJSON.strings(try row.string("labels")), region: row.optionalString("region"),
                    communityOptIn: try row.int("community_opt_in") != 0, capacity: try row.int("capacity"),
                    agentVersion: try row.string("agent_version"), tool: try row.string("tool"), toolVersion: row.optionalString("tool_version"),
                    systemStats: try JSONValue.parse(try row.string("system_stats")), gatewayId: try row.string("gateway_id"),
                    syncDetail: row.optionalString("sync_detail"), syncPercent: row.column("sync_percent")?.double,
                    connectedAt: try row.date("connected_at"), lastHeartbeatAt: try row.date("last_heartbeat_at"),
                    disconnectedAt: row.optionalDate("disconnected_at"), tasksCompleted: try row.int("tasks_completed"))
            }, totalCount: total)
    }

    // MARK: Replica leases

    public func heartbeatReplica(gatewayId: String, at date: Date) async throws {
        try await transaction { connection in
            _ = try await connection.query(
                "INSERT INTO replicas (gateway_id, heartbeat_at) VALUES (?, ?) ON CONFLICT (gateway_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                [.text(gatewayId), .date(date)])
        }
    }

    public func liveReplicas(since: Date) async throws -> Set<String> {
        Set(try await read("SELECT gateway_id FROM replicas WHERE heartbeat_at >= ?", [.date(since)]).map { try $0.string("gateway_id") })
    }

    public func takeOverAttempt(taskId: UUID, attemptId: UUID, from: String, to: String) async throws -> Bool {
        try await transaction { connection in
            try await !connection.query(
                """
                UPDATE tasks SET gateway_id = ? WHERE id = ? AND attempt_id = ? AND gateway_id = ? AND task_status IN ('queued', 'running')
                RETURNING id
                """,
                [.text(to), .uuid(taskId), .uuid(attemptId), .text(from)]
            ).isEmpty
        }
    }

    public func disconnectAgents(notOn live: Set<String>, at date: Date) async throws -> Int {
        let list = live.sorted()
        let placeholders = list.isEmpty ? "" : " AND gateway_id NOT IN (" + list.map { _ in "?" }.joined(separator: ", ") + ")"
        return try await transaction { connection in
            try await connection.query(
                "UPDATE agents SET disconnected_at = ? WHERE disconnected_at IS NULL\(placeholders) RETURNING agent_id",
                [.date(date)] + list.map(SQLiteData.text)
            ).count
        }
    }
}

extension SQLiteStorage {
    public func tasksPastStartDeadline(at date: Date, limit: Int) async throws -> [UUID] {
        try await read(
            """
            SELECT id FROM tasks WHERE start_deadline IS NOT NULL AND start_deadline <= ? AND task_status IN ('pending', 'waiting')
            ORDER BY start_deadline LIMIT ?
            """, [.date(date), .integer(limit)]
        ).map { try $0.uuid("id") }
    }

    public func backlog(teamId: UUID) async throws -> Int {
        try await read(
            "SELECT count(*) AS n FROM tasks WHERE team_id = ? AND task_status IN ('pending', 'waiting')", [.uuid(teamId)]
        ).first?.int("n") ?? 0
    }

    public func taskCensus() async throws -> TaskCensus {
        let rows = try await read(
            """
            SELECT task_status, count(*) AS n, min(created_at) AS oldest FROM tasks
            WHERE task_status IN ('pending', 'waiting', 'queued', 'running') GROUP BY task_status
            """, [])
        var census = TaskCensus(counts: [:], oldestWaitingSince: nil)
        for row in rows {
            guard let status = TaskStatus(rawValue: try row.string("task_status")) else { continue }
            census.counts[status] = try row.int("n")
            if status == .pending || status == .waiting, let oldest = row.optionalDate("oldest") {
                census.oldestWaitingSince = min(census.oldestWaitingSince ?? oldest, oldest)
            }
        }
        return census
    }

    public func queueStanding(of task: TaskRecord) async throws -> QueueStanding {
        let ahead =
            try await read(
                """
                SELECT count(*) AS n FROM tasks
                WHERE team_id = ? AND task_status IN ('pending', 'waiting') AND dispatch_target = 'agent' AND target_pool = ?
                    AND required_labels = ? AND (created_at < ? OR (created_at = ? AND id < ?))
                """,
                [
                    .uuid(task.teamId), .text(task.targetPool.rawValue), .text(StoredJSON.text(task.requiredLabels)), .date(task.createdAt),
                    .date(task.createdAt), .uuid(task.id),
                ]
            ).first?.int("n") ?? 0
        // The team's latest completed tasks (by the status index), of which those of this workflow.
        let runs = try await read(
            """
            SELECT started_at, completed_at FROM (
                SELECT workflow_id, started_at, completed_at FROM tasks WHERE team_id = ? AND task_status = 'completed'
                ORDER BY created_at DESC, id DESC LIMIT ?)
            WHERE workflow_id = ? AND started_at IS NOT NULL LIMIT ?
            """, [.uuid(task.teamId), .integer(QueueStanding.sampleSize * 10), .uuid(task.workflowId), .integer(QueueStanding.sampleSize)]
        ).compactMap { row -> Double? in
            guard let started = row.optionalDate("started_at"), let completed = row.optionalDate("completed_at") else { return nil }
            return max(0, completed.timeIntervalSince(started))
        }
        return QueueStanding(ahead: ahead, recentRunSeconds: runs)
    }
}
