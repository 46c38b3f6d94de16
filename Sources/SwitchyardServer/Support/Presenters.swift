import Foundation
import SwitchyardCore

/// The API's JSON shapes of workflows, snapshots and tasks (api.md §2.1, §2.2), built as `JSONValue`s.
enum Presenters {
    /// A workflow (or one pinned version of it). `workflow_json` appears only on the management detail.
    static func workflow(_ workflow: Workflow, includeGraph: Bool) -> JSONValue {
        var members = workflow.definition.json(includeGraph: includeGraph)
        members["id"] = .uuid(workflow.id)
        members["version"] = .integer(workflow.version)
        members["workflow_status"] = .string(workflow.status.rawValue)
        members["created_at"] = .date(workflow.createdAt)
        members["updated_at"] = .date(workflow.updatedAt)
        return .object(members)
    }

    static func snapshot(_ snapshot: WorkflowSnapshot, includeGraph: Bool) -> JSONValue {
        var members = snapshot.definition.json(includeGraph: includeGraph)
        members["workflow_id"] = .uuid(snapshot.workflowId)
        members["version"] = .integer(snapshot.version)
        members["note"] = snapshot.note.map(JSONValue.string) ?? .null
        members["created_at"] = .date(snapshot.createdAt)
        return .object(members)
    }

    /// `GET /r/tasks/{id}`; the list leaves out `task_error` and `parameters` (api.md §2.2 TaskSummary). A waiting
    /// task's detail says where it stands: `queue_position` (1: next) and `estimated_start_at` (null when unknown).
    static func task(_ task: TaskRecord, summary: Bool = false, standing: (position: Int, estimatedStart: Date?)? = nil) -> JSONValue {
        var members: [String: JSONValue] = [
            "id": .uuid(task.id), "workflow_id": .uuid(task.workflowId), "workflow_version": .integer(task.workflowVersion),
            "task_status": .string(task.status.rawValue), "task_source": .string(task.source.rawValue), "created_at": .date(task.createdAt),
            "updated_at": .date(task.updatedAt), "started_at": .date(task.startedAt), "completed_at": .date(task.completedAt),
            "retry_count": .integer(task.retryCount), "max_retries": .integer(task.maxRetries),
            "agent_id": task.agentId.map(JSONValue.string) ?? .null,
            "agent_labels": .strings(task.agentLabels), "gateway_id": task.gatewayId.map(JSONValue.string) ?? .null,
            "gpu_type": task.gpuType.map(JSONValue.string) ?? .null, "dispatch_target": .string(task.dispatchTarget.rawValue),
            "target_pool": .string(task.targetPool.rawValue), "submitter_region": task.submitterRegion.map(JSONValue.string) ?? .null,
            "tool_type": .string(task.toolType.rawValue), "required_labels": .strings(task.requiredLabels),
            "start_deadline": .date(task.startDeadline),
        ]
        if !summary {
            members["task_error"] = .string(task.error)
            members["parameters"] = .object(task.parameters)
            members["queue_position"] = standing.map { .integer($0.position) } ?? .null
            members["estimated_start_at"] = .date(standing?.estimatedStart)
        }
        return .object(members)
    }

    /// `GET /r/tasks/{id}/result` (api.md §2.2): a completed task's `task_output`, a fresh presigned
    /// `download_url` for the primary output and `download_urls` for every output (`<node_id>.<kind>.<index>`),
    /// valid until `expires_at`. `download_urls` is always an object, so the quickstart's
    /// `result.get("download_urls", {}).values()` never meets a null. Outputs past retention are reported as expired
    /// instead of as URLs that would answer 404.
    static func result(
        _ task: TaskRecord, outputsExpiredAt: Date? = nil, sign: ((String) -> String)? = nil, urlsExpireAt: Date? = nil
    ) -> JSONValue {
        var members: [String: JSONValue] = [
            "id": .uuid(task.id), "task_status": .string(task.status.rawValue),
            "task_output": task.status == .completed ? (task.output ?? .null) : .null, "download_url": .null, "download_urls": .object([:]),
            "expires_at": .null, "task_error": .string(task.status == .failed ? task.error : ""), "completed_at": .date(task.completedAt),
        ]
        if task.status == .cancelled {
            members["stopped_at"] = .date(task.stoppedAt)
            members["gpu_seconds"] = task.gpuSeconds.map { .number(JSONNumber($0)) } ?? .null
        }
        if let outputsExpiredAt {
            members["outputs_expired_at"] = .date(outputsExpiredAt)
            members["outputs_message"] = .string("the outputs expired on \(RFC3339.format(outputsExpiredAt)) under this server's retention policy")
        } else if task.status == .completed, let sign, let output = task.output {
            if case .string(let primary)? = output["storage_key"] { members["download_url"] = .string(sign(primary)) }
            if case .object(let outputs)? = output["outputs"] {
                var urls: [String: JSONValue] = [:]
                for (outputId, file) in outputs {
                    if case .string(let key)? = file["storage_key"] { urls[outputId] = .string(sign(key)) }
                }
                members["download_urls"] = .object(urls)
            }
            members["expires_at"] = .date(urlsExpireAt)
        }
        return .object(members)
    }

    /// One agent of `GET /agents` (api.md §2.5).
    static func agent(_ agent: AgentRecord, runningTasks: [UUID], runningCount: Int) -> JSONValue {
        var stats = agent.systemStats
        if case .object(var members) = stats, case .array(let devices)? = members["gpu_devices"] {
            // The documented names beside the wire's: device_name and device_type.
            members["gpu_devices"] = .array(
                devices.map { device in
                    guard case .object(var fields) = device else { return device }
                    fields["device_name"] = fields["name"] ?? .null
                    fields["device_type"] = fields["device_type"] ?? "cuda"
                    return .object(fields)
                })
            stats = .object(members)
        }
        return [
            "agent_id": .string(agent.agentId), "agent_status": .string(agent.status.rawValue), "agent_labels": .strings(agent.labels),
            "last_heartbeat": .date(agent.lastHeartbeatAt), "agent_version": .string(agent.agentVersion), "tool": .string(agent.tool),
            "tool_version": agent.toolVersion.map(JSONValue.string) ?? .null,
            "comfyui_version": agent.tool == "comfyui" ? (agent.toolVersion.map(JSONValue.string) ?? .null) : .null,
            "gpu_capacity": .integer(agent.capacity), "running_count": .integer(runningCount),
            "running_tasks": .array(runningTasks.map { .uuid($0) }), "current_task_id": runningTasks.first.map { .uuid($0) } ?? .null,
            "region": agent.region.map(JSONValue.string) ?? .null, "community_opt_in": .bool(agent.communityOptIn),
            "gateway_id": .string(agent.gatewayId), "sync_detail": agent.syncDetail.map(JSONValue.string) ?? .null,
            "sync_percent": agent.syncPercent.map { .number(JSONNumber($0 * 100)) } ?? .null,
            "sync_phase": agent.syncPhase.map(JSONValue.string) ?? .null,
            // An agent that syncs: the models it holds, and those it could not take and why (an agent that does not:
            // null, its models are managed by hand).
            "models_held": agent.modelReport?["held"] ?? .null, "models_broken": agent.modelReport?["broken"] ?? .null,
            "connected_at": .date(agent.connectedAt),
            "disconnected_at": .date(agent.disconnectedAt), "tasks_completed": .integer(agent.tasksCompleted), "system_stats": stats,
        ]
    }
}
