import Foundation
import HTTPTypes
import SwitchyardCore

/// One `tools/call` on behalf of the caller: its key, its request context, and what `wait_for_task` watches.
struct MCPCall: Sendable {
    let api: InProcessAPI
    let authorization: String
    let context: SwitchyardRequestContext
    let storage: any SwitchyardStorage
    let hub: TaskEventHub
    let rereadInterval: Duration

    /// Calls a runtime route and turns its answer into a tool result: the JSON as text and as structured content,
    /// or the route's `error_message` with `isError` (a tool's failure is the model's to read, not a protocol error).
    func result(
        _ method: HTTPRequest.Method, _ path: String, body: JSONValue? = nil, headers: HTTPFields = [:], shape: (JSONValue) -> JSONValue = { $0 }
    ) async -> JSONValue {
        do {
            let (status, answer) = try await api.call(method, path, body: body, headers: headers, authorization: authorization, context: context)
            guard (200..<300).contains(status) else {
                return MCPTools.failure("HTTP \(status): \(answer["error_message"]?.stringValue ?? "the request failed")")
            }
            return MCPTools.success(shape(answer))
        } catch {
            return MCPTools.failure("the request failed: \(error)")
        }
    }
}

/// A tool: its name, description and input schema (what `tools/list` shows) and what a call does.
struct MCPTool: Sendable {
    let name: String
    let summary: String
    let properties: [String: JSONValue]
    let required: [String]
    let perform: @Sendable (MCPCall, JSONValue, (@Sendable (Double, String?) -> Void)?) async -> JSONValue

    var description: JSONValue {
        [
            "name": .string(name), "description": .string(summary),
            "inputSchema": [
                "type": "object", "properties": .object(properties), "required": .array(required.map(JSONValue.string)),
                "additionalProperties": false,
            ],
        ]
    }

    func run(_ call: MCPCall, _ arguments: JSONValue, _ progress: (@Sendable (Double, String?) -> Void)?) async -> JSONValue {
        // The schema's required members, checked before the route sees anything (a clear message naming the argument).
        for key in required where arguments[key] == nil || arguments[key] == .null {
            return MCPTools.failure("argument \"\(key)\" is required")
        }
        return await perform(call, arguments, progress)
    }
}

enum MCPTools {
    static let all: [MCPTool] = [
        listWorkflows, getWorkflow, runWorkflowBySlug, getTask, waitForTask, listTasks, cancelTask, getTaskResult, createUpload, listAgents,
    ]

    static func success(_ value: JSONValue) -> JSONValue {
        ["content": [["type": "text", "text": .string(value.jsonString)]], "structuredContent": value, "isError": false]
    }

    static func failure(_ message: String) -> JSONValue {
        ["content": [["type": "text", "text": .string(message)]], "isError": true]
    }

    /// A path segment from an argument (a slug, `slug@version`, an id): percent-encoded, so it stays one segment.
    static func segment(_ value: JSONValue?) -> String {
        let text = value?.stringValue ?? ""
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func query(_ arguments: JSONValue, _ names: [String]) -> String {
        let pairs = names.compactMap { name -> String? in
            guard let value = arguments[name], value != .null else { return nil }
            let text = value.stringValue ?? value.jsonString
            return "\(name)=\(text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text)"
        }
        return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
    }

    static let page: [String: JSONValue] = [
        "current_page": ["type": "integer", "minimum": 1, "description": "Page number (default 1)."],
        "per_page": ["type": "integer", "minimum": 1, "maximum": 100, "description": "Items per page (default 20)."],
    ]
    static let taskId: [String: JSONValue] = ["task_id": ["type": "string", "description": "The task's id (a UUID)."]]

    static let listWorkflows = MCPTool(
        name: "list_workflows", summary: "The team's workflows: slug, name, version, status and parameters.", properties: page, required: []
    ) { call, arguments, _ in
        await call.result(.get, "/r/workflows" + query(arguments, ["current_page", "per_page"]))
    }

    static let getWorkflow = MCPTool(
        name: "get_workflow",
        summary:
            "One workflow by slug (or slug@version): its typed parameters, and parameters_schema, a JSON Schema of the parameters object run_workflow_by_slug takes.",
        properties: ["workflow_slug": ["type": "string", "description": "The workflow's slug, or slug@version."]], required: ["workflow_slug"]
    ) { call, arguments, _ in
        await call.result(.get, "/r/workflows/slug/\(segment(arguments["workflow_slug"]))") { workflow in
            guard case .object(var members) = workflow else { return workflow }
            members["parameters_schema"] = parametersSchema(workflow["parameters"]?.arrayValue ?? [])
            return .object(members)
        }
    }

    static let runWorkflowBySlug = MCPTool(
        name: "run_workflow_by_slug",
        summary:
            "Submit a task: run the workflow with these parameters (checked with the same rules and messages as POST /r/workflows/slug/{slug}/run). Answers the task_id.",
        properties: [
            "workflow_slug": ["type": "string", "description": "The workflow's slug, or slug@version."],
            "parameters": ["type": "object", "description": "Parameter values by key (get_workflow's parameters_schema)."],
            "start_deadline": ["type": "integer", "minimum": 1, "description": "Seconds the task may wait for an agent before it fails as expired."],
            "idempotency_key": ["type": "string", "description": "The same key and body again answer the same task instead of a new one."],
        ],
        required: ["workflow_slug"]
    ) { call, arguments, _ in
        var body: [String: JSONValue] = ["parameters": arguments["parameters"] ?? [:]]
        if let deadline = arguments["start_deadline"], deadline != .null { body["start_deadline"] = deadline }
        var headers = HTTPFields()
        if let key = arguments["idempotency_key"]?.stringValue { headers[HTTPField.Name("Idempotency-Key")!] = key }
        return await call.result(.post, "/r/workflows/slug/\(segment(arguments["workflow_slug"]))/run", body: .object(body), headers: headers)
    }

    static let getTask = MCPTool(
        name: "get_task", summary: "A task's status, error, parameters and, while it waits, its queue position.", properties: taskId,
        required: ["task_id"]
    ) { call, arguments, _ in
        await call.result(.get, "/r/tasks/\(segment(arguments["task_id"]))")
    }

    static let listTasks = MCPTool(
        name: "list_tasks", summary: "The team's tasks, newest first, optionally of one status.",
        properties: page.merging([
            "status": [
                "type": "string", "enum": .array(TaskStatus.allCases.map { .string($0.rawValue) }), "description": "Only tasks in this status.",
            ]
        ]) { $1 }, required: []
    ) { call, arguments, _ in
        await call.result(.get, "/r/tasks" + query(arguments, ["status", "current_page", "per_page"]))
    }

    static let cancelTask = MCPTool(
        name: "cancel_task", summary: "Cancel a task (a running one is interrupted; a finished one is left as it is).", properties: taskId,
        required: ["task_id"]
    ) { call, arguments, _ in
        await call.result(.post, "/r/tasks/\(segment(arguments["task_id"]))/cancel")
    }

    static let getTaskResult = MCPTool(
        name: "get_task_result", summary: "A completed task's outputs with presigned download URLs (valid for an hour).", properties: taskId,
        required: ["task_id"]
    ) { call, arguments, _ in
        await call.result(.get, "/r/tasks/\(segment(arguments["task_id"]))/result")
    }

    static let createUpload = MCPTool(
        name: "create_upload",
        summary:
            "Where to upload an input file: PUT its bytes to upload_url with upload_headers, then pass file_key as the file parameter's value.",
        properties: [
            "file_name": ["type": "string"], "file_size": ["type": "integer", "minimum": 1, "description": "Bytes."],
            "content_type": ["type": "string", "description": "e.g. image/png"],
        ],
        required: ["file_name", "file_size", "content_type"]
    ) { call, arguments, _ in
        await call.result(.post, "/r/files/presign", body: arguments)
    }

    static let listAgents = MCPTool(
        name: "list_agents", summary: "The team's agents: status, labels, running tasks, ComfyUI version, model sync.", properties: page,
        required: []
    ) { call, arguments, _ in
        await call.result(.get, "/r/agents" + query(arguments, ["current_page", "per_page"]))
    }

    /// A JSON Schema of a run's `parameters` object from the workflow's parameter definitions.
    static func parametersSchema(_ parameters: [JSONValue]) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        var required: [JSONValue] = []
        for parameter in parameters {
            guard let key = parameter["key"]?.stringValue else { continue }
            var schema: [String: JSONValue] = [:]
            switch parameter["type"]?.stringValue {
            case "number":
                schema["type"] = "number"
                if let minimum = parameter["min"] { schema["minimum"] = minimum }
                if let maximum = parameter["max"] { schema["maximum"] = maximum }
            case "boolean": schema["type"] = "boolean"
            case "select": schema["enum"] = parameter["options"] ?? []
            case "file":
                schema["type"] = "string"
                schema["description"] = "a file_key from create_upload"
            default: schema["type"] = "string"
            }
            if let description = parameter["description"]?.stringValue, schema["description"] == nil { schema["description"] = .string(description) }
            if let value = parameter["default"] { schema["default"] = value }
            if parameter["required"] == true { required.append(.string(key)) }
            properties[key] = .object(schema)
        }
        return ["type": "object", "properties": .object(properties), "required": .array(required), "additionalProperties": false]
    }
}

extension MCPTools {
    /// Follows a task until it ends (or `timeout_seconds` pass) and answers it as `get_task` would, with its result
    /// when it completed. Woken by the task's events (the same hub the SSE stream waits on), not by polling; progress
    /// goes to `progress` (0–100, with the current node) when the caller asked for notifications.
    static let waitForTask = MCPTool(
        name: "wait_for_task",
        summary:
            "Wait until a task completes, fails or is cancelled (at most timeout_seconds, default 120), with progress notifications when the call carries a progressToken. Answers the task, and its outputs' download URLs when it completed.",
        properties: taskId.merging(["timeout_seconds": ["type": "integer", "minimum": 1, "maximum": 900]]) { $1 }, required: ["task_id"]
    ) { call, arguments, progress in
        let path = "/r/tasks/\(segment(arguments["task_id"]))"
        let timeout = min(900, max(1, arguments["timeout_seconds"]?.numberValue?.intValue ?? 120))
        let deadline = ContinuousClock.now + .seconds(timeout)
        var lastProgress = -1.0
        var progressVersion = 0
        var signal: EventSignal?
        var subscribed: UUID?
        defer { if let subscribed, let signal { call.hub.unsubscribe(subscribed, signal) } }
        while true {
            let answer: (status: Int, body: JSONValue)
            do {
                answer = try await call.api.call(.get, path, authorization: call.authorization, context: call.context)
            } catch {
                return failure("the request failed: \(error)")
            }
            guard answer.status == 200, let id = answer.body["id"]?.stringValue.flatMap(UUID.init(uuidString:)) else {
                return failure("HTTP \(answer.status): \(answer.body["error_message"]?.stringValue ?? "the request failed")")
            }
            if signal == nil {
                signal = call.hub.subscribe(id)
                subscribed = id
                continue  // read once more after subscribing, so no change between the read and the subscription is missed
            }
            let status = answer.body["task_status"]?.stringValue ?? ""
            guard case .object(var members) = answer.body else { return failure("the task's answer is not an object") }
            if TaskStatus(rawValue: status)?.isTerminal == true {
                if status == "completed" {
                    let result = try? await call.api.call(.get, path + "/result", authorization: call.authorization, context: call.context)
                    members["result"] = result?.body ?? .null
                }
                progress?(100, status)
                return success(.object(members))
            }
            if let progress {
                if let tick = call.hub.progress(of: id, after: progressVersion) {
                    progressVersion = tick.version
                    let value = (tick.data["progress"]?.numberValue.flatMap { Double($0.description) } ?? 0) * 100
                    if value > lastProgress {
                        lastProgress = value
                        progress(value, tick.data["current_node"]?.stringValue.map { "running node \($0)" } ?? status)
                    }
                } else if lastProgress < 0 {
                    lastProgress = 0
                    progress(0, status)
                }
            }
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else {
                members["wait_timed_out"] = true
                return success(.object(members))
            }
            await signal?.wait(timeout: min(left, call.rereadInterval))
        }
    }
}
