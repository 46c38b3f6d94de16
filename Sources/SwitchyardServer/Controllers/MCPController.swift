import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardCore
import Synchronization

/// `/api/v1/mcp` (api.md §2.12): a Model Context Protocol server over Streamable HTTP, for `sk-` keys only, scoped
/// to the key's team. One endpoint: POST carries JSON-RPC messages (answered as JSON, or as an event stream when a
/// `wait_for_task` call asked for progress notifications); DELETE ends a session; GET answers 405 (no
/// server-initiated stream is offered, as the transport allows).
///
/// The tools call the runtime API in-process through the router (``InProcessAPI``), with the caller's own key, so
/// a tool validates, authorizes and answers exactly as the endpoint it stands for — the same rules, the same
/// messages — and a new rule on an endpoint reaches its tool without being written twice.
struct MCPController {
    let api: InProcessAPI
    let storage: any SwitchyardStorage
    let hub: TaskEventHub
    let clock: any WallClock
    /// How often `wait_for_task` re-reads the task without a wake-up (replicas that notify each other: a safety net).
    let rereadInterval: Duration

    /// Newest first; `initialize` answers the client's version when it is one of these, else the newest.
    static let protocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post(use: post)
        group.delete(use: delete)
    }

    /// Sessions hold nothing on the server (every call carries the key), so ending one is always a success.
    @Sendable func delete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        Response(status: .noContent)
    }

    @Sendable func post(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard let message = try? JSONValue.parse(buffer.readableBytesView) else {
            return Self.json(Self.error(id: .null, code: -32700, "parse error: the body is not JSON"), status: .badRequest)
        }
        if let violation = Self.violation(message) {
            return Self.json(Self.error(id: .null, code: -32600, "invalid request: \(violation)"), status: .badRequest)
        }
        // Notifications and responses need no answer.
        guard let id = message["id"], id != .null, let method = message["method"]?.stringValue else {
            return Response(status: .accepted)
        }
        let params = message["params"] ?? [:]
        switch method {
        case "initialize":
            let asked = params["protocolVersion"]?.stringValue ?? ""
            let version = Self.protocolVersions.contains(asked) ? asked : Self.protocolVersions[0]
            let result: JSONValue = [
                "protocolVersion": .string(version),
                "capabilities": ["tools": ["listChanged": true]],
                "serverInfo": ["name": "cyberun-cloud", "title": "Cyberun Cloud", "version": .string(SwitchyardVersion.current)],
                "instructions": """
                Runs the team's registered workflows on its GPU agents. list_workflows, then get_workflow for a workflow's \
                parameters; run_workflow_by_slug submits a task; wait_for_task follows it (with progress notifications) until \
                it ends; get_task_result gives download URLs. Files for file parameters: create_upload, PUT the bytes to its \
                upload_url with its upload_headers, pass the file_key.
                """,
            ]
            var headers = HTTPFields()
            headers[HTTPField.Name("Mcp-Session-Id")!] = UUID().uuidString.lowercased()
            return Self.json(Self.result(id: id, result), headers: headers)
        case "ping":
            return Self.json(Self.result(id: id, [:]))
        case "tools/list":
            return Self.json(Self.result(id: id, ["tools": .array(MCPTools.all.map(\.description))]))
        case "tools/call":
            guard let name = params["name"]?.stringValue, let tool = MCPTools.all.first(where: { $0.name == name }) else {
                let name = params["name"]?.stringValue ?? ""
                return Self.json(Self.error(id: id, code: -32602, "unknown tool \"\(name)\"; tools/list names them"))
            }
            let arguments = params["arguments"] ?? [:]
            let call = MCPCall(
                api: api, authorization: request.headers[.authorization] ?? "", context: context, storage: storage, hub: hub,
                rereadInterval: rereadInterval)
            if tool.name == "wait_for_task", let token = params["_meta"]?["progressToken"], token != .null {
                return progressStream(id: id, token: token, call: call, arguments: arguments)
            }
            return Self.json(Self.result(id: id, await tool.run(call, arguments, nil)))
        default:
            return Self.json(Self.error(id: id, code: -32601, "method \"\(method)\" is not offered by this server (it serves tools)"))
        }
    }

    /// The answer as an event stream: progress notifications while the task runs, then the result.
    private func progressStream(id: JSONValue, token: JSONValue, call: MCPCall, arguments: JSONValue) -> Response {
        let body = ResponseBody { writer in
            let (stream, continuation) = AsyncStream<JSONValue>.makeStream()
            let work = Task {
                let result = await MCPTools.waitForTask.run(call, arguments) { progress, message in
                    var params: [String: JSONValue] = ["progressToken": token, "progress": .number(JSONNumber(progress)), "total": 100]
                    if let message { params["message"] = .string(message) }
                    continuation.yield(["jsonrpc": "2.0", "method": "notifications/progress", "params": .object(params)])
                }
                continuation.yield(Self.result(id: id, result))
                continuation.finish()
            }
            defer { work.cancel() }
            for await message in stream {
                try await writer.write(ByteBuffer(string: "event: message\ndata: \(message.jsonString)\n\n"))
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// What makes a body other than one JSON-RPC 2.0 message: an object with `"jsonrpc": "2.0"`, an `id` that is a
    /// string, an integer or null, a string `method`, an object `params`.
    static func violation(_ message: JSONValue) -> String? {
        guard case .object = message, message["jsonrpc"] == "2.0" else {
            return "one JSON-RPC 2.0 message (an object with \"jsonrpc\": \"2.0\") per POST"
        }
        switch message["id"] {
        case nil, .null?, .string?: break
        case .number(let number)? where number.intValue != nil: break
        default: return "\"id\" must be a string, an integer or null"
        }
        if let method = message["method"], method.stringValue == nil { return "\"method\" must be a string" }
        if let params = message["params"], case .object = params {} else if message["params"] != nil { return "\"params\" must be an object" }
        return nil
    }

    static func result(id: JSONValue, _ result: JSONValue) -> JSONValue {
        ["jsonrpc": "2.0", "id": id, "result": result]
    }

    static func error(id: JSONValue, code: Int, _ message: String) -> JSONValue {
        ["jsonrpc": "2.0", "id": id, "error": ["code": .number(JSONNumber(code)), "message": .string(message)]]
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        var buffer = ByteBuffer(bytes: value.serialized())
        buffer.writeInteger(UInt8(ascii: "\n"))
        return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
    }
}

/// The API's own routes called in-process: a request built here goes through the router (its authentication, its
/// validation, its error middleware) and its answer is read back, without a socket. Set once the router is built.
final class InProcessAPI: Sendable {
    private let responder = Mutex<(any HTTPResponder<SwitchyardRequestContext>)?>(nil)

    func install(_ responder: some HTTPResponder<SwitchyardRequestContext>) {
        self.responder.withLock { $0 = responder }
    }

    /// `method path` with `body`, authorized as `authorization`; the status and the JSON answer (`{}` when empty).
    func call(
        _ method: HTTPRequest.Method, _ path: String, body: JSONValue? = nil, headers: HTTPFields = [:], authorization: String,
        context: SwitchyardRequestContext
    ) async throws -> (status: Int, body: JSONValue) {
        guard let responder = responder.withLock({ $0 }) else { throw SwitchyardError.unavailable("the API is not built yet") }
        var head = HTTPRequest(method: method, scheme: "http", authority: "localhost", path: "/api/v1" + path)
        head.headerFields[.authorization] = authorization
        head.headerFields[.contentType] = "application/json"
        for field in headers { head.headerFields[field.name] = field.value }
        let request = Request(head: head, body: .init(buffer: body.map { ByteBuffer(bytes: $0.serialized()) } ?? ByteBuffer()))
        let inner = SwitchyardRequestContext(source: .init(channel: context.channel, logger: context.logger))
        let response = try await responder.respond(to: request, context: inner)
        let sink = Sink()
        try await response.body.write(Collector(sink: sink))
        let bytes = sink.bytes.withLock { $0 }
        let answer = bytes.isEmpty ? [:] : (try? JSONValue.parse(bytes)) ?? [:]
        return (Int(response.status.code), answer)
    }

    private final class Sink: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    private struct Collector: ResponseBodyWriter {
        let sink: Sink
        mutating func write(_ buffer: ByteBuffer) async throws {
            sink.bytes.withLock { $0 += buffer.readableBytesView }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}
