/// The runtime a workflow's definition is written for (api.md §2.1 `tool_type`).
public enum ToolType: String, Sendable, CaseIterable, Codable {
    /// A ComfyUI API-format graph: node id → `{class_type, inputs}`.
    case comfyui
    /// A Nerfstudio 3DGS pipeline spec (a JSON object addressed by dotted `target_path`s).
    case nerfstudio
}

/// Where a task runs (api.md §2.1 `dispatch_target`).
public enum DispatchTarget: String, Sendable, CaseIterable, Codable {
    /// A team's own (BYOC) agent.
    case agent
    /// ComfyUI Cloud, with the team's configured API key.
    case comfyCloud = "comfy_cloud"
}

/// Which agents may take a task (api.md §2.1 `target_pool`).
public enum TargetPool: String, Sendable, CaseIterable, Codable {
    /// Agents of the submitting team.
    case team
    /// Any agent that opted in to the community pool.
    case community
}

/// Whether a workflow accepts new runs (api.md §2.1 `workflow_status`).
public enum WorkflowStatus: String, Sendable, CaseIterable, Codable {
    case active
    case disabled
}
