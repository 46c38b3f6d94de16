/// Everything a save of a workflow records, and what each snapshot keeps (api.md §2.1 import/update body,
/// §3.8). The live `workflow_status` is not part of it: restoring an old version does not re-enable a
/// workflow someone disabled.
public struct WorkflowDefinition: Sendable, Equatable {
    public var slug: String
    public var displayName: String
    public var description: String
    public var toolType: ToolType
    /// `workflow_json`: the ComfyUI API graph or the Nerfstudio pipeline spec.
    public var graph: JSONValue
    public var parameters: [ParameterDefinition]
    public var requiredLabels: [String]
    /// Seconds after the agent's ACK; 0 means no timeout.
    public var taskTimeout: Int
    public var maxRetries: Int
    public var preferredGPU: String?
    public var defaultDispatchTarget: DispatchTarget
    /// 0 means no minimum.
    public var minVRAMGB: Int
    public var requiredModels: [String]
    /// `keep_previews`: whether ComfyUI's temp previews (PreviewImage) are kept as outputs, marked as previews.
    public var keepPreviews: Bool

    public init(
        slug: String, displayName: String, description: String = "", toolType: ToolType = .comfyui, graph: JSONValue,
        parameters: [ParameterDefinition] = [], requiredLabels: [String] = [], taskTimeout: Int = 0, maxRetries: Int = 0,
        preferredGPU: String? = nil, defaultDispatchTarget: DispatchTarget = .agent, minVRAMGB: Int = 0, requiredModels: [String] = [],
        keepPreviews: Bool = true
    ) {
        self.slug = slug
        self.displayName = displayName
        self.description = description
        self.toolType = toolType
        self.graph = graph
        self.parameters = parameters
        self.requiredLabels = requiredLabels
        self.taskTimeout = taskTimeout
        self.maxRetries = maxRetries
        self.preferredGPU = preferredGPU
        self.defaultDispatchTarget = defaultDispatchTarget
        self.minVRAMGB = minVRAMGB
        self.requiredModels = requiredModels
        self.keepPreviews = keepPreviews
    }

    public static let maximumTaskTimeout = 7 * 86_400
    public static let maximumRetries = 10

    /// The parameter with `key`, if defined.
    public func parameter(_ key: String) -> ParameterDefinition? {
        parameters.first { $0.key == key }
    }

    /// Reads an import or update body. With `base` (an update), absent fields keep the base's values; without
    /// it (an import), `workflow_slug`, `display_name` and `workflow_json` are required. The result is checked as
    /// a whole: the definition's structure, each parameter, and each parameter's target in the definition.
    public static func parse(_ fields: JSONFields, base: WorkflowDefinition?) throws(SwitchyardError) -> WorkflowDefinition {
        func pick<T>(_ value: T?, _ keep: (WorkflowDefinition) -> T, required key: String) throws(SwitchyardError) -> T {
            if let value { return value }
            if let base { return keep(base) }
            throw .invalid("field \"\(key)\" is required")
        }
        let slug = try pick(try fields.string("workflow_slug"), \.slug, required: "workflow_slug")
        if let rule = WorkflowReference.slugRule(slug) { throw .invalid("field \"workflow_slug\": \"\(slug)\" \(rule)") }
        let toolType = try fields.enumeration("tool_type", ToolType.self) ?? base?.toolType ?? .comfyui
        var definition = WorkflowDefinition(
            slug: slug,
            displayName: try pick(try fields.string("display_name", length: 1...255, trim: true), \.displayName, required: "display_name"),
            description: try fields.string("description", length: 0...2000) ?? base?.description ?? "",
            toolType: toolType,
            graph: try pick(fields.value("workflow_json"), \.graph, required: "workflow_json"),
            requiredLabels: try fields.stringArray("required_labels", maxCount: 32, validate: labelRule) ?? base?.requiredLabels ?? [],
            taskTimeout: try fields.integer("task_timeout", range: 0...maximumTaskTimeout) ?? base?.taskTimeout ?? 0,
            maxRetries: try fields.integer("max_retries", range: 0...maximumRetries) ?? base?.maxRetries ?? 0,
            preferredGPU: fields.members["preferred_gpu"] == nil ? base?.preferredGPU : try fields.string("preferred_gpu", length: 1...100),
            defaultDispatchTarget: try fields.enumeration("default_dispatch_target", DispatchTarget.self) ?? base?.defaultDispatchTarget ?? .agent,
            minVRAMGB: try fields.integer("min_vram_gb", range: 0...2048) ?? base?.minVRAMGB ?? 0,
            requiredModels: try fields.stringArray("required_models", maxCount: 100, validate: modelPathRule) ?? base?.requiredModels ?? [],
            keepPreviews: try fields.bool("keep_previews") ?? base?.keepPreviews ?? true
        )
        if let raw = try fields.array("parameters", maxCount: ParameterDefinition.maximumCount) {
            var parameters: [ParameterDefinition] = []
            var seen: Set<String> = []
            for (position, value) in raw.enumerated() {
                let parameter = try ParameterDefinition.parse(value, position: position, toolType: toolType)
                guard seen.insert(parameter.key).inserted else {
                    throw .invalid("parameter \"\(parameter.key)\" is defined twice (parameters[\(position)]); keys must be unique")
                }
                parameters.append(parameter)
            }
            definition.parameters = parameters
        } else if let base {
            guard base.toolType == toolType || base.parameters.isEmpty else {
                throw .invalid("field \"tool_type\": changing it to \(toolType.rawValue) needs a new \"parameters\" array for that runtime")
            }
            definition.parameters = base.parameters
        }
        switch toolType {
        case .comfyui: try DefinitionGraph.validateComfyUI(definition.graph)
        case .nerfstudio: try DefinitionGraph.validateNerfstudio(definition.graph)
        }
        try DefinitionGraph.validateTargets(definition.parameters, in: definition.graph, toolType: toolType)
        return definition
    }

    /// Agent labels: 1–64 characters without whitespace or commas.
    static func labelRule(_ label: String) -> String? {
        guard !label.isEmpty, label.count <= 64 else { return "must be 1–64 characters" }
        guard !label.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0 == "," }) else {
            return "must not contain whitespace or commas"
        }
        return nil
    }

    /// `<model_type>/<file>`, relative, without `..`.
    static func modelPathRule(_ path: String) -> String? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard path.utf8.count <= 500, segments.count >= 2, segments.allSatisfy({ !$0.isEmpty && $0 != ".." && $0 != "." }) else {
            return "is not a model path like checkpoints/sdxl-base.safetensors"
        }
        return nil
    }

    /// The definition as the management API shows it, `workflow_json` included unless `includeGraph` is false.
    public func json(includeGraph: Bool = true) -> [String: JSONValue] {
        var members: [String: JSONValue] = [
            "workflow_slug": .string(slug), "display_name": .string(displayName), "description": .string(description),
            "tool_type": .string(toolType.rawValue), "parameters": .array(parameters.map(\.json)),
            "required_labels": .array(requiredLabels.map(JSONValue.string)), "task_timeout": .number(JSONNumber(taskTimeout)),
            "max_retries": .number(JSONNumber(maxRetries)), "preferred_gpu": preferredGPU.map(JSONValue.string) ?? .null,
            "default_dispatch_target": .string(defaultDispatchTarget.rawValue), "min_vram_gb": .number(JSONNumber(minVRAMGB)),
            "required_models": .array(requiredModels.map(JSONValue.string)), "keep_previews": .bool(keepPreviews),
        ]
        if includeGraph { members["workflow_json"] = graph }
        return members
    }

    /// The stored form (the same shape as an import body, so storing and reading back is `parse`).
    public var storedJSON: String { JSONValue.object(json()).jsonString }

    /// Reads a definition stored with `storedJSON`.
    public static func decodeStored(_ text: String) throws -> WorkflowDefinition {
        try parse(JSONFields(body: try JSONValue.parse(text)), base: nil)
    }
}
