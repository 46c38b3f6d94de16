/// Structural checks on a workflow's runtime definition and the injection of parameter values into it
/// (api.md §2.1: ComfyUI `workflow_json[node_id].inputs[field] = value`; Nerfstudio: the value at `target_path`).
public enum DefinitionGraph {
    /// Checks that `graph` is a ComfyUI API-format graph: a non-empty object of node id → `{class_type, inputs}`,
    /// whose links (`["4", 0]`) point at nodes of the graph.
    public static func validateComfyUI(_ graph: JSONValue) throws(SwitchyardError) {
        guard case .object(let nodes) = graph else {
            throw .invalid(
                "field \"workflow_json\" must be a ComfyUI API-format graph (an object of node id → {class_type, inputs}), not \(graph.typeDescription)"
            )
        }
        guard !nodes.isEmpty else { throw .invalid("field \"workflow_json\" is an empty graph; it needs at least one node") }
        for nodeId in nodes.keys.sorted() {
            let node = nodes[nodeId]!
            let name = "workflow_json node \"\(nodeId)\""
            guard case .object(let members) = node else {
                throw .invalid(
                    "\(name) must be an object with class_type and inputs, not \(node.typeDescription) (is this the UI format? export with \"Save (API)\")"
                )
            }
            guard case .string(let classType)? = members["class_type"], !classType.isEmpty else {
                throw .invalid("\(name) has no \"class_type\" string (is this the UI format? export with \"Save (API)\")")
            }
            guard case .object(let inputs)? = members["inputs"] else {
                throw .invalid("\(name) (\(classType)) has no \"inputs\" object")
            }
            for field in inputs.keys.sorted() {
                if let source = link(inputs[field]!), nodes[source] == nil {
                    throw .invalid("\(name) input \"\(field)\" links to node \"\(source)\", which is not in the graph")
                }
            }
        }
    }

    /// A Nerfstudio pipeline spec is a JSON object; its shape is the runtime's business.
    public static func validateNerfstudio(_ spec: JSONValue) throws(SwitchyardError) {
        guard case .object = spec else {
            throw .invalid("field \"workflow_json\" must be a Nerfstudio pipeline spec (a JSON object), not \(spec.typeDescription)")
        }
        _ = try NerfstudioPipeline(spec)
    }

    /// The source node id when `value` is a ComfyUI link `[node_id, output_index]`.
    public static func link(_ value: JSONValue) -> String? {
        guard case .array(let pair) = value, pair.count == 2, case .string(let source) = pair[0], case .number(let index) = pair[1],
            index.intValue != nil
        else { return nil }
        return source
    }

    /// Checks that every parameter's injection target exists in the definition, that none sets a link, and that
    /// no two parameters share a target. Each failure names the parameter.
    public static func validateTargets(_ parameters: [ParameterDefinition], in graph: JSONValue, toolType: ToolType) throws(SwitchyardError) {
        var claimed: [String: String] = [:]
        for parameter in parameters {
            let named = "parameter \"\(parameter.key)\""
            let target: String
            switch toolType {
            case .comfyui:
                guard let nodeId = parameter.nodeId, let field = parameter.field else {
                    throw .invalid("\(named): comfyui parameters need \"node_id\" and \"field\"")
                }
                guard let node = graph[nodeId] else { throw .invalid("\(named): node_id \"\(nodeId)\" is not a node of workflow_json") }
                let classType = node["class_type"]?.stringValue ?? "?"
                guard let current = node["inputs"]?[field] else {
                    let known = (node["inputs"]?.objectValue?.keys.sorted() ?? []).joined(separator: ", ")
                    throw .invalid("\(named): node \"\(nodeId)\" (\(classType)) has no input \"\(field)\" (its inputs: \(known))")
                }
                if let source = link(current) {
                    throw .invalid(
                        "\(named): input \"\(field)\" of node \"\(nodeId)\" is linked to node \"\(source)\"; a parameter can only set a widget value"
                    )
                }
                target = "node \"\(nodeId)\" input \"\(field)\""
            case .nerfstudio:
                guard let path = parameter.targetPath else { throw .invalid("\(named): nerfstudio parameters need \"target_path\"") }
                if let problem = resolve(path: path, in: graph) { throw .invalid("\(named): target_path \"\(path)\" \(problem)") }
                target = "target_path \"\(path)\""
            }
            if let other = claimed.updateValue(parameter.key, forKey: target) {
                throw .invalid("\(named): \(target) is already set by parameter \"\(other)\"")
            }
        }
    }

    /// Returns nil when the dotted `path` names an existing value, else what is wrong.
    static func resolve(path: String, in spec: JSONValue) -> String? {
        var current = spec
        for segment in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            guard !segment.isEmpty else { return "has an empty segment" }
            switch current {
            case .object(let members):
                guard let next = members[segment] else { return "does not resolve: no key \"\(segment)\"" }
                current = next
            case .array(let elements):
                guard let index = Int(segment), elements.indices.contains(index) else {
                    return "does not resolve: \"\(segment)\" is not an index of an array of \(elements.count)"
                }
                current = elements[index]
            default:
                return "does not resolve: \"\(segment)\" goes inside \(current.typeDescription)"
            }
        }
        return nil
    }

    /// A copy of `definition` with each value set at its parameter's target. Targets were checked when the
    /// workflow was saved; values whose parameter is unknown are ignored (the run validation refused them).
    public static func inject(
        _ values: [String: JSONValue], parameters: [ParameterDefinition], into definition: JSONValue, toolType: ToolType
    ) -> JSONValue {
        var result = definition
        for parameter in parameters {
            guard let value = values[parameter.key] else { continue }
            switch toolType {
            case .comfyui:
                guard let nodeId = parameter.nodeId, let field = parameter.field else { continue }
                set(value, at: [nodeId, "inputs", field], in: &result)
            case .nerfstudio:
                guard let path = parameter.targetPath else { continue }
                set(value, at: path.split(separator: ".").map(String.init), in: &result)
            }
        }
        return result
    }

    private static func set(_ value: JSONValue, at path: ArraySlice<String>, in target: inout JSONValue) {
        guard let segment = path.first else {
            target = value
            return
        }
        switch target {
        case .object(var members):
            guard var child = members[segment] else { return }
            target = .null  // release the old storage so `members` is uniquely referenced
            set(value, at: path.dropFirst(), in: &child)
            members[segment] = child
            target = .object(members)
        case .array(var elements):
            guard let index = Int(segment), elements.indices.contains(index) else { return }
            target = .null
            set(value, at: path.dropFirst(), in: &elements[index])
            target = .array(elements)
        default:
            return
        }
    }

    private static func set(_ value: JSONValue, at path: [String], in target: inout JSONValue) {
        set(value, at: path[...], in: &target)
    }
}
