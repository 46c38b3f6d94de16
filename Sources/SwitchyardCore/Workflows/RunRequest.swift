/// A validated run request (api.md §2.1 `POST /r/workflows/{id}/run`): the parameter values after defaults,
/// the definition with those values injected, and the dispatch options.
public struct RunRequest: Sendable, Equatable {
    /// Every defined parameter that has a value: the caller's, or the default of an omitted optional one.
    public var parameters: [String: JSONValue]
    /// The workflow definition with `parameters` injected, as the agent will run it.
    public var injectedDefinition: JSONValue
    public var dispatchTarget: DispatchTarget
    public var targetPool: TargetPool
    /// Lowercased and trimmed; nil when omitted or empty.
    public var submitterRegion: String?
    /// `start_deadline`: seconds from submission within which an agent must start the task, or it fails as expired
    /// (Switchyard's addition; nil: it waits as long as it takes).
    public var startDeadline: Int?

    /// The longest `start_deadline` (seven days).
    public static let maximumStartDeadline = 7 * 24 * 3600

    /// Checks a run body against a workflow definition. Every rule of api.md §2.1 gives a 400 naming the
    /// parameter and the rule; all broken parameter rules are reported together. `fileKeyRule` checks `file`
    /// values (the caller's team is its business).
    ///
    /// ```swift
    /// let run = try RunRequest.validate(body: .object(["parameters": ["prompt": "a cat"]]), definition: workflow.definition,
    ///                                   fileKeyRule: { InputFileKey.violation($0, teamId: team) })
    /// ```
    public static func validate(
        body: JSONValue, definition: WorkflowDefinition, fileKeyRule: (String) -> String?
    ) throws(SwitchyardError) -> RunRequest {
        let fields = try JSONFields(body: body)
        var given: [String: JSONValue] = [:]
        if let raw = fields.value("parameters") {
            guard case .object(let object) = raw else {
                throw .invalid("field \"parameters\" must be an object of parameter key → value, not \(raw.typeDescription)")
            }
            guard object.count <= ParameterDefinition.maximumCount else {
                throw .invalid("field \"parameters\" has \(object.count) keys; the maximum is \(ParameterDefinition.maximumCount)")
            }
            given = object
        }

        var problems: [String] = []
        var values: [String: JSONValue] = [:]
        for key in given.keys.sorted() {
            guard let parameter = definition.parameter(key) else {
                let known = definition.parameters.map(\.key)
                let hint = known.isEmpty ? "this workflow takes no parameters" : "its parameters: \(known.joined(separator: ", "))"
                problems.append("parameter \"\(key)\" is not defined by workflow \"\(definition.slug)\" (\(hint))")
                continue
            }
            let value = given[key]!
            if let rule = parameter.violation(of: value, fileKeyRule: fileKeyRule) {
                problems.append("parameter \"\(key)\": \(rule)")
                continue
            }
            values[key] = value
        }
        for parameter in definition.parameters where given[parameter.key] == nil {
            if parameter.isRequired {
                problems.append("parameter \"\(parameter.key)\" is required (\(parameter.kind.rawValue))")
            } else if let defaultValue = parameter.defaultValue {
                values[parameter.key] = defaultValue
            }
        }
        if !problems.isEmpty {
            let shown = problems.prefix(10).joined(separator: "; ")
            throw .invalid(problems.count > 10 ? "\(shown); and \(problems.count - 10) more" : shown)
        }

        if let toolType = try fields.enumeration("tool_type", ToolType.self), toolType != definition.toolType {
            throw .invalid(
                "field \"tool_type\": workflow \"\(definition.slug)\" is a \(definition.toolType.rawValue) workflow, not \(toolType.rawValue)")
        }
        let dispatchTarget = try fields.enumeration("dispatch_target", DispatchTarget.self) ?? definition.defaultDispatchTarget
        let targetPool = try fields.enumeration("target_pool", TargetPool.self) ?? .team
        var region: String?
        if let raw = try fields.string("submitter_region") {
            let normalized = raw.trimmingWhitespace().lowercased()
            guard normalized.count <= 64 else {
                throw .invalid("field \"submitter_region\" is \(normalized.count) characters long; the maximum is 64")
            }
            region = normalized.isEmpty ? nil : normalized
        }
        let startDeadline = try fields.integer("start_deadline", range: 1...maximumStartDeadline)
        if startDeadline != nil, dispatchTarget != .agent {
            throw .invalid("field \"start_deadline\" applies to agent tasks only (dispatch_target is \(dispatchTarget.rawValue))")
        }
        return RunRequest(
            parameters: values,
            injectedDefinition: DefinitionGraph.inject(
                values, parameters: definition.parameters, into: definition.graph, toolType: definition.toolType),
            dispatchTarget: dispatchTarget, targetPool: targetPool, submitterRegion: region, startDeadline: startDeadline
        )
    }
}
