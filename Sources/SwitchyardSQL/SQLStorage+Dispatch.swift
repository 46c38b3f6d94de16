import Foundation
import SwitchyardCore

extension SQLColumns {
    static let agent = """
        team_id, agent_id, credential_id, agent_status, labels, region, community_opt_in, capacity, agent_version, tool, tool_version, \
        system_stats, gateway_id, sync_detail, sync_percent, sync_phase, model_report, connected_at, last_heartbeat_at, disconnected_at, \
        tasks_completed
        """
}

extension SQLStorage {
    public func dispatchableTasks(limit: Int) async throws -> [TaskRecord] {
        try await read(
            "SELECT \(raw: SQLColumns.taskSelection) FROM tasks WHERE task_status IN ('pending', 'waiting') ORDER BY created_at, id LIMIT \(limit)"
        ).map(TaskRecord.init(row:))
    }

    public func activeTasks() async throws -> [TaskRecord] {
        try await read("SELECT \(raw: SQLColumns.taskSelection) FROM tasks WHERE task_status IN ('queued', 'running') ORDER BY created_at, id")
            .map(TaskRecord.init(row:))
    }

    public func recordAttemptStopped(taskId: UUID, attemptId: UUID, stoppedAt: Date, gpuSeconds: Double?) async throws -> Bool {
        try await wrote(
            "UPDATE tasks SET stopped_at = \(stoppedAt), gpu_seconds = \(gpuSeconds) WHERE id = \(taskId) AND attempt_id = \(attemptId) RETURNING id")
    }

    public func appendProgress(taskId: UUID, attemptId: UUID, data: JSONValue, at date: Date) async throws -> Int? {
        try await transaction { transaction in
            guard
                try await !transaction.query(
                    """
                    SELECT 1 AS found FROM tasks WHERE id = \(taskId) AND attempt_id = \(attemptId) AND task_status = 'running' \(lock: .forUpdate)
                    """
                ).isEmpty
            else { return nil }
            let sequence = try await transaction.nextSequence(taskId: taskId)
            try await transaction.insertEvent(TaskEventRecord(taskId: taskId, sequence: sequence, kind: .progress, data: data, createdAt: date))
            return sequence
        }
    }

    public func appendAttemptNote(taskId: UUID, attemptId: UUID, message: String, at date: Date) async throws -> Int? {
        try await transaction { transaction in
            guard
                let row = try await transaction.query(
                    """
                    SELECT task_status FROM tasks
                    WHERE id = \(taskId) AND attempt_id = \(attemptId) AND task_status IN ('queued', 'running') \(lock: .forUpdate)
                    """
                ).first
            else { return nil }
            let status: TaskStatus = try row.value("task_status")
            let sequence = try await transaction.nextSequence(taskId: taskId)
            try await transaction.insertEvent(.statusChange(taskId: taskId, sequence: sequence, to: status, message: message, at: date))
            return sequence
        }
    }

    public func upsertAgents(_ agents: [AgentRecord]) async throws {
        guard !agents.isEmpty else { return }
        try await transaction { transaction in
            for agent in agents {
                _ = try await transaction.query(
                    """
                    INSERT INTO agents (\(raw: SQLColumns.agent))
                    VALUES (\(agent.teamId), \(agent.agentId), \(agent.credentialId), \(agent.status.rawValue), \(StoredJSON.text(agent.labels)),
                        \(agent.region), \(agent.communityOptIn), \(agent.capacity), \(agent.agentVersion), \(agent.tool), \(agent.toolVersion),
                        \(agent.systemStats.jsonString), \(agent.gatewayId), \(agent.syncDetail), \(agent.syncPercent), \(agent.syncPhase),
                        \(agent.modelReport?.jsonString), \(agent.connectedAt), \(agent.lastHeartbeatAt), \(agent.disconnectedAt),
                        \(agent.tasksCompleted))
                    ON CONFLICT (team_id, agent_id) DO UPDATE SET credential_id = excluded.credential_id, agent_status = excluded.agent_status,
                        labels = excluded.labels, region = excluded.region, community_opt_in = excluded.community_opt_in,
                        capacity = excluded.capacity, agent_version = excluded.agent_version, tool = excluded.tool,
                        tool_version = excluded.tool_version, system_stats = excluded.system_stats, gateway_id = excluded.gateway_id,
                        sync_detail = excluded.sync_detail, sync_percent = excluded.sync_percent, sync_phase = excluded.sync_phase,
                        model_report = excluded.model_report, connected_at = excluded.connected_at,
                        last_heartbeat_at = excluded.last_heartbeat_at, disconnected_at = excluded.disconnected_at,
                        tasks_completed = excluded.tasks_completed
                    """)
            }
        }
    }

    public func agents(teamId: UUID, includeDisconnected: Bool, page: PageRequest) async throws -> Page<AgentRecord> {
        var filter: SQLQuery = "team_id = \(teamId)"
        if !includeDisconnected { filter = "\(filter) AND disconnected_at IS NULL" }
        return try await self.page(
            SQLColumns.agent, from: "agents", where: filter, orderBy: "disconnected_at IS NOT NULL, agent_id", page, AgentRecord.init(row:))
    }

    // MARK: Replica leases

    public func heartbeatReplica(gatewayId: String, at date: Date) async throws {
        _ = try await write(
            """
            INSERT INTO replicas (gateway_id, heartbeat_at) VALUES (\(gatewayId), \(date))
            ON CONFLICT (gateway_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
            """)
    }

    public func liveReplicas(since: Date) async throws -> Set<String> {
        Set(try await read("SELECT gateway_id FROM replicas WHERE heartbeat_at >= \(since)").map { try $0.string("gateway_id") })
    }

    public func takeOverAttempt(taskId: UUID, attemptId: UUID, from: String, to: String) async throws -> Bool {
        try await wrote(
            """
            UPDATE tasks SET gateway_id = \(to)
            WHERE id = \(taskId) AND attempt_id = \(attemptId) AND gateway_id = \(from) AND task_status IN ('queued', 'running')
            RETURNING id
            """)
    }

    public func disconnectAgents(notOn live: Set<String>, at date: Date) async throws -> Int {
        let elsewhere: SQLQuery = live.isEmpty ? "" : "AND gateway_id NOT IN \(list: live.sorted())"
        return try await write("UPDATE agents SET disconnected_at = \(date) WHERE disconnected_at IS NULL \(elsewhere) RETURNING agent_id").count
    }

    public func tasksPastStartDeadline(at date: Date, limit: Int) async throws -> [UUID] {
        try await read(
            """
            SELECT id FROM tasks WHERE start_deadline IS NOT NULL AND start_deadline <= \(date) AND task_status IN ('pending', 'waiting')
            ORDER BY start_deadline LIMIT \(limit)
            """
        ).map { try $0.uuid("id") }
    }

    public func backlog(teamId: UUID) async throws -> Int {
        try await count("SELECT COUNT(*) AS total FROM tasks WHERE team_id = \(teamId) AND task_status IN ('pending', 'waiting')")
    }

    public func taskCensus() async throws -> TaskCensus {
        let rows = try await read(
            """
            SELECT task_status, COUNT(*) AS total, MIN(created_at) AS oldest FROM tasks
            WHERE task_status IN ('pending', 'waiting', 'queued', 'running') GROUP BY task_status
            """)
        var census = TaskCensus(counts: [:], oldestWaitingSince: nil)
        for row in rows {
            guard let status = TaskStatus(rawValue: try row.string("task_status")) else { continue }
            census.counts[status] = try row.int("total")
            if status == .pending || status == .waiting, let oldest = try row.optionalDate("oldest") {
                census.oldestWaitingSince = min(census.oldestWaitingSince ?? oldest, oldest)
            }
        }
        return census
    }

    public func queueStanding(of task: TaskRecord) async throws -> QueueStanding {
        let ahead = try await count(
            """
            SELECT COUNT(*) AS total FROM tasks
            WHERE team_id = \(task.teamId) AND task_status IN ('pending', 'waiting') AND dispatch_target = 'agent'
                AND target_pool = \(task.targetPool.rawValue) AND required_labels = \(StoredJSON.text(task.requiredLabels))
                AND (created_at, id) < (\(task.createdAt), \(task.id))
            """)
        // The team's latest completed tasks (by the status index), of which those of this workflow.
        let runs = try await read(
            """
            SELECT started_at, completed_at FROM (
                SELECT workflow_id, started_at, completed_at FROM tasks WHERE team_id = \(task.teamId) AND task_status = 'completed'
                ORDER BY created_at DESC, id DESC LIMIT \(QueueStanding.sampleSize * 10)) recent
            WHERE workflow_id = \(task.workflowId) AND started_at IS NOT NULL LIMIT \(QueueStanding.sampleSize)
            """
        ).compactMap { row -> Double? in
            guard let started = try row.optionalDate("started_at"), let completed = try row.optionalDate("completed_at") else { return nil }
            return max(0, completed.timeIntervalSince(started))
        }
        return QueueStanding(ahead: ahead, recentRunSeconds: runs)
    }
}

extension AgentRecord {
    init(row: SQLRow) throws {
        self.init(
            teamId: try row.uuid("team_id"), agentId: try row.string("agent_id"), credentialId: try row.uuid("credential_id"),
            status: try row.value("agent_status"), labels: try StoredJSON.strings(try row.string("labels")),
            region: try row.optionalString("region"), communityOptIn: try row.bool("community_opt_in"), capacity: try row.int("capacity"),
            agentVersion: try row.string("agent_version"), tool: try row.string("tool"), toolVersion: try row.optionalString("tool_version"),
            systemStats: try JSONValue.parse(try row.string("system_stats")), gatewayId: try row.string("gateway_id"),
            syncDetail: try row.optionalString("sync_detail"), syncPercent: try row.optionalDouble("sync_percent"),
            syncPhase: try row.optionalString("sync_phase"), modelReport: try row.optionalString("model_report").map { try JSONValue.parse($0) },
            connectedAt: try row.date("connected_at"), lastHeartbeatAt: try row.date("last_heartbeat_at"),
            disconnectedAt: try row.optionalDate("disconnected_at"), tasksCompleted: try row.int("tasks_completed"))
    }
}
