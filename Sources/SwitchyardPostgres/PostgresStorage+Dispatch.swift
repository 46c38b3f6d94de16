import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    public func dispatchableTasks(limit: Int) async throws -> [TaskRecord] {
        try await rows(
            """
            SELECT \(unescaped: Self.taskSelectColumns) FROM tasks WHERE task_status IN ('pending', 'waiting')
            ORDER BY created_at, id LIMIT \(limit)
            """
        ).map(Self.decodeTask)
    }

    public func activeTasks() async throws -> [TaskRecord] {
        try await rows(
            "SELECT \(unescaped: Self.taskSelectColumns) FROM tasks WHERE task_status IN ('queued', 'running') ORDER BY created_at, id"
        ).map(Self.decodeTask)
    }

    public func recordAttemptStopped(taskId: UUID, attemptId: UUID, stoppedAt: Date, gpuSeconds: Double?) async throws -> Bool {
        try await !rows(
            """
            UPDATE tasks SET stopped_at = \(stoppedAt), gpu_seconds = \(gpuSeconds) WHERE id = \(taskId) AND attempt_id = \(attemptId) RETURNING id
            """
        ).isEmpty
    }

    public func appendProgress(taskId: UUID, attemptId: UUID, data: JSONValue, at date: Date) async throws -> Int? {
        let logger = self.logger
        return try await transaction { connection in
            guard
                try await !connection.query(
                    "SELECT 1 FROM tasks WHERE id = \(taskId) AND attempt_id = \(attemptId) AND task_status = 'running' FOR UPDATE", logger: logger
                ).collect().isEmpty
            else { return nil }
            let sequence = try await Self.nextSequence(taskId: taskId, on: connection, logger: logger)
            try await Self.insertEvent(
                TaskEventRecord(taskId: taskId, sequence: sequence, kind: .progress, data: data, createdAt: date), on: connection, logger: logger)
            return sequence
        }
    }

    /// Reads the task under a row lock, applies `change`, and writes the change and its event in one transaction.
    public func changeTask(id: UUID, _ change: TaskChange, at date: Date) async throws -> TaskTransitionOutcome? {
        let logger = self.logger
        return try await transaction { connection in
            guard
                let row = try await connection.query(
                    "SELECT \(unescaped: Self.taskSelectColumns) FROM tasks WHERE id = \(id) FOR UPDATE", logger: logger
                ).collect().first
            else { return nil }
            var task = try Self.decodeTask(row)
            guard let (action, message) = task.apply(change, at: date) else { return nil }
            guard case .transition = action else { return TaskTransitionOutcome(action: action, task: task) }
            try await connection.query(
                """
                UPDATE tasks SET task_status = \(task.status.rawValue), retry_count = \(task.retryCount), agent_id = \(task.agentId),
                    agent_labels = \(task.agentLabels.map(StoredJSON.text)), gateway_id = \(task.gatewayId), gpu_type = \(task.gpuType),
                    attempt_id = \(task.attemptId), task_error = \(task.error), task_output = \(task.output?.jsonString),
                    updated_at = \(task.updatedAt), started_at = \(task.startedAt), completed_at = \(task.completedAt),
                    stopped_at = \(task.stoppedAt), gpu_seconds = \(task.gpuSeconds)
                WHERE id = \(id)
                """,
                logger: logger
            )
            let sequence = try await Self.nextSequence(taskId: id, on: connection, logger: logger)
            try await Self.insertEvent(task.statusEvent(sequence: sequence, message: message, at: date), on: connection, logger: logger)
            try await Self.enqueueWebhookDeliveries(for: task, at: date, on: connection, logger: logger)
            return TaskTransitionOutcome(action: action, task: task)
        }
    }

    /// The assignment in one statement (no BEGIN/COMMIT, no read first): the conditional update and its `queued`
    /// event, as `changeTask(.assign)` writes them (`TaskRecord.assign`). Another replica's assignment or a cancel
    /// makes the update find no row; an event appended concurrently (its writer held the row first) can make the
    /// event's number collide, and the statement then fails as a whole — the dispatcher puts the task back in line.
    public func assignTask(id: UUID, to assignment: AttemptAssignment, at date: Date) async throws -> TaskTransitionOutcome? {
        let event = TaskEventRecord.statusChange(taskId: id, sequence: 0, to: .queued, at: date)
        let labels = StoredJSON.text(assignment.agentLabels)
        let query: PostgresQuery = """
            WITH assigned AS (
                UPDATE tasks SET task_status = 'queued', agent_id = \(assignment.agentId), agent_labels = \(labels),
                    gateway_id = \(assignment.gatewayId), gpu_type = \(assignment.gpuType), attempt_id = \(assignment.attemptId),
                    updated_at = \(date), stopped_at = NULL, gpu_seconds = NULL
                WHERE id = \(id) AND task_status IN ('pending', 'waiting')
                RETURNING \(unescaped: Self.taskSelectColumns)
            ), logged AS (
                INSERT INTO task_events (task_id, sequence, event_type, data, created_at)
                SELECT assigned.id, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM task_events WHERE task_id = \(id)),
                    \(event.kind.rawValue), \(event.data.jsonString), \(date)
                FROM assigned
            )
            SELECT * FROM assigned
            """
        guard let row = try await rows(query).first else { return nil }
        let task = try Self.decodeTask(row)
        return TaskTransitionOutcome(action: .transition(to: .queued, retryCount: task.retryCount), task: task)
    }

    static func nextSequence(taskId: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query("SELECT COALESCE(MAX(sequence), 0) + 1 FROM task_events WHERE task_id = \(taskId)", logger: logger)
            .collect().first?.decode(Int.self) ?? 1
    }

    public func upsertAgents(_ agents: [AgentRecord]) async throws {
        guard !agents.isEmpty else { return }
        try await transaction { connection in
            for agent in agents { try await Self.upsertAgent(agent, on: connection, logger: logger) }
        }
    }

    static func upsertAgent(_ agent: AgentRecord, on connection: PostgresConnection, logger: Logger) async throws {
        _ = try await connection.query(
            """
            INSERT INTO agents (team_id, agent_id, credential_id, agent_status, labels, region, community_opt_in, capacity, agent_version, tool,
                tool_version, system_stats, gateway_id, sync_detail, sync_percent, connected_at, last_heartbeat_at, disconnected_at, tasks_completed)
            VALUES (\(agent.teamId), \(agent.agentId), \(agent.credentialId), \(agent.status.rawValue), \(StoredJSON.text(agent.labels)),
                \(agent.region), \(agent.communityOptIn), \(agent.capacity), \(agent.agentVersion), \(agent.tool), \(agent.toolVersion),
                \(agent.systemStats.jsonString), \(agent.gatewayId), \(agent.syncDetail), \(agent.syncPercent), \(agent.connectedAt),
                \(agent.lastHeartbeatAt), \(agent.disconnectedAt), \(agent.tasksCompleted))
            ON CONFLICT (team_id, agent_id) DO UPDATE SET credential_id = EXCLUDED.credential_id, agent_status = EXCLUDED.agent_status,
                labels = EXCLUDED.labels, region = EXCLUDED.region, community_opt_in = EXCLUDED.community_opt_in, capacity = EXCLUDED.capacity,
                agent_version = EXCLUDED.agent_version, tool = EXCLUDED.tool, tool_version = EXCLUDED.tool_version,
                system_stats = EXCLUDED.system_stats, gateway_id = EXCLUDED.gateway_id, sync_detail = EXCLUDED.sync_detail,
                sync_percent = EXCLUDED.sync_percent, connected_at = EXCLUDED.connected_at, last_heartbeat_at = EXCLUDED.last_heartbeat_at,
                disconnected_at = EXCLUDED.disconnected_at, tasks_completed = EXCLUDED.tasks_completed
            """, logger: logger
        )
    }

    public func agents(teamId: UUID, includeDisconnected: Bool, page: PageRequest) async throws -> Page<AgentRecord> {
        let total =
            try await rows(
                "SELECT COUNT(*) FROM agents WHERE team_id = \(teamId) AND (\(includeDisconnected) OR disconnected_at IS NULL)"
            ).first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT team_id, agent_id, credential_id, agent_status, labels, region, community_opt_in, capacity, agent_version, tool, tool_version,
                system_stats, gateway_id, sync_detail, sync_percent, connected_at, last_heartbeat_at, disconnected_at, tasks_completed
            FROM agents WHERE team_id = \(teamId) AND (\(includeDisconnected) OR disconnected_at IS NULL)
            ORDER BY disconnected_at IS NOT NULL, agent_id LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map { row in
            let columns = row.makeRandomAccess()
            func value<T: PostgresDecodable>(_ name: String, _ type: T.Type) throws -> T { try columns[name].decode(T.self) }
            guard let status = AgentStatus(rawValue: try value("agent_status", String.self)) else {
                throw PostgresDecodingError(column: "agent_status")
            }
            return AgentRecord(
                teamId: try value("team_id", UUID.self), agentId: try value("agent_id", String.self),
                credentialId: try value("credential_id", UUID.self), status: status,
                labels: try StoredJSON.strings(try value("labels", String.self)), region: try value("region", String?.self),
                communityOptIn: try value("community_opt_in", Bool.self), capacity: try value("capacity", Int.self),
                agentVersion: try value("agent_version", String.self), tool: try value("tool", String.self),
                toolVersion: try value("tool_version", String?.self), systemStats: try JSONValue.parse(try value("system_stats", String.self)),
                gatewayId: try value("gateway_id", String.self), syncDetail: try value("sync_detail", String?.self),
                syncPercent: try value("sync_percent", Double?.self), connectedAt: try value("connected_at", Date.self),
                lastHeartbeatAt: try value("last_heartbeat_at", Date.self), disconnectedAt: try value("disconnected_at", Date?.self),
                tasksCompleted: try value("tasks_completed", Int.self))
        }
        return Page(items: items, totalCount: total)
    }

    // MARK: Replica leases

    public func heartbeatReplica(gatewayId: String, at date: Date) async throws {
        _ = try await rows(
            """
            INSERT INTO replicas (gateway_id, heartbeat_at) VALUES (\(gatewayId), \(date))
            ON CONFLICT (gateway_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
            """
        )
    }

    public func liveReplicas(since: Date) async throws -> Set<String> {
        Set(try await rows("SELECT gateway_id FROM replicas WHERE heartbeat_at >= \(since)").map { try $0.decode(String.self) })
    }

    public func takeOverAttempt(taskId: UUID, attemptId: UUID, from: String, to: String) async throws -> Bool {
        try await !rows(
            """
            UPDATE tasks SET gateway_id = \(to)
            WHERE id = \(taskId) AND attempt_id = \(attemptId) AND gateway_id = \(from) AND task_status IN ('queued', 'running')
            RETURNING id
            """
        ).isEmpty
    }

    public func disconnectAgents(notOn live: Set<String>, at date: Date) async throws -> Int {
        try await rows(
            """
            UPDATE agents SET disconnected_at = \(date) WHERE disconnected_at IS NULL AND NOT (gateway_id = ANY(\(live.sorted())))
            RETURNING agent_id
            """
        ).count
    }
}

extension PostgresStorage {
    public func tasksPastStartDeadline(at date: Date, limit: Int) async throws -> [UUID] {
        try await rows(
            """
            SELECT id FROM tasks WHERE start_deadline IS NOT NULL AND start_deadline <= \(date) AND task_status IN ('pending', 'waiting')
            ORDER BY start_deadline LIMIT \(limit)
            """
        ).map { try $0.decode(UUID.self) }
    }

    public func backlog(teamId: UUID) async throws -> Int {
        try await rows("SELECT count(*)::bigint FROM tasks WHERE team_id = \(teamId) AND task_status IN ('pending', 'waiting')").first?.decode(
            Int.self) ?? 0
    }

    public func taskCensus() async throws -> TaskCensus {
        let rows = try await rows(
            """
            SELECT task_status, count(*)::bigint, min(created_at) FROM tasks
            WHERE task_status IN ('pending', 'waiting', 'queued', 'running') GROUP BY task_status
            """)
        var census = TaskCensus(counts: [:], oldestWaitingSince: nil)
        for row in rows {
            let (name, count, oldest) = try row.decode((String, Int, Date).self)
            guard let status = TaskStatus(rawValue: name) else { continue }
            census.counts[status] = count
            if status == .pending || status == .waiting {
                census.oldestWaitingSince = min(census.oldestWaitingSince ?? oldest, oldest)
            }
        }
        return census
    }

    public func queueStanding(of task: TaskRecord) async throws -> QueueStanding {
        let ahead =
            try await rows(
                """
                SELECT count(*)::bigint FROM tasks
                WHERE team_id = \(task.teamId) AND task_status IN ('pending', 'waiting') AND dispatch_target = 'agent'
                    AND target_pool = \(task.targetPool.rawValue) AND required_labels = \(StoredJSON.text(task.requiredLabels))
                    AND (created_at, id) < (\(task.createdAt), \(task.id))
                """
            ).first?.decode(Int.self) ?? 0
        // The team's latest completed tasks (by the status index), of which those of this workflow.
        let runs = try await rows(
            """
            SELECT started_at, completed_at FROM (
                SELECT workflow_id, started_at, completed_at FROM tasks WHERE team_id = \(task.teamId) AND task_status = 'completed'
                ORDER BY created_at DESC, id DESC LIMIT \(QueueStanding.sampleSize * 10)) recent
            WHERE workflow_id = \(task.workflowId) AND started_at IS NOT NULL LIMIT \(QueueStanding.sampleSize)
            """
        ).map { row -> Double in
            let (started, completed) = try row.decode((Date, Date).self)
            return max(0, completed.timeIntervalSince(started))
        }
        return QueueStanding(ahead: ahead, recentRunSeconds: runs)
    }
}
