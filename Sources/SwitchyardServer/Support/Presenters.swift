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

    /// `GET /r/tasks/{id}`; the list leaves out `task_error` and `parameters` (api.md §2.2 TaskSummary).
    static func task(_ task: TaskRecord, summary: Bool = false) -> JSONValue {
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
        ]
        if !summary {
            members["task_error"] = .string(task.error)
            members["parameters"] = .object(task.parameters)
        }
        return .object(members)
    }

    /// `GET /r/tasks/{id}/result` (api.md §2.2). Outputs and their download URLs arrive with the object-storage
    /// work; until then a completed task shows its recorded output and no URLs. `download_urls` is always an
    /// object, so the quickstart's `result.get("download_urls", {}).values()` never meets a null.
    static func result(_ task: TaskRecord, outputsExpiredAt: Date? = nil) -> JSONValue {
        var result: JSONValue = [
            "id": .uuid(task.id), "task_status": .string(task.status.rawValue),
            "task_output": task.status == .completed ? (task.output ?? .null) : .null, "download_url": .null, "download_urls": .object([:]),
            "expires_at": .null, "task_error": .string(task.status == .failed ? task.error : ""), "completed_at": .date(task.completedAt),
        ]
        if let outputsExpiredAt, case .object(var members) = result {
            members["outputs_expired_at"] = .date(outputsExpiredAt)
            members["outputs_message"] = .string("the outputs expired on \(RFC3339.format(outputsExpiredAt)) under this server's retention policy")
            result = .object(members)
        }
        return result
    }
}
