import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// `/api/v1/mcp` over its wire (JSON-RPC on Streamable HTTP), against a live `serve` with an agent on the fake
/// ComfyUI. `scripts/mcp-check.sh` drives the same server with the official MCP Python client in CI.
@Suite("MCP server")
struct MCPServerTests {
    /// One POST of a JSON-RPC message; the status, the content type and the body.
    static func post(_ server: String, key: String, _ message: JSONValue) async throws -> (status: Int, type: String, body: String) {
        var request = HTTPClientRequest(url: server + "/api/v1/mcp")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json, text/event-stream")
        request.body = .bytes(ByteBuffer(string: message.jsonString))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers.first(name: "Content-Type") ?? "", String(buffer: body))
    }

    static func call(_ id: Int, _ tool: String, _ arguments: JSONValue, meta: JSONValue? = nil) -> JSONValue {
        var params: [String: JSONValue] = ["name": .string(tool), "arguments": arguments]
        if let meta { params["_meta"] = meta }
        return ["jsonrpc": "2.0", "id": .number(JSONNumber(id)), "method": "tools/call", "params": .object(params)]
    }

    @Test("sk- only; initialize, tools/list; a run validated with the REST rules and messages; wait_for_task streams progress, then the result")
    func tools() async throws {
        try await ClientSDKTests.withServer { app, _, owner, caller in
            _ = try await owner.importWorkflow(try ClientSDKTests.exampleWorkflow)
            let server = caller.server
            let key = app.bootstrap.integrationKey
            let initialize: JSONValue = [
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": ["protocolVersion": "2025-06-18", "capabilities": [:], "clientInfo": ["name": "test", "version": "1"]],
            ]
            for refused in [app.bootstrap.agentKey, owner.token] {
                #expect(try await Self.post(server, key: refused, initialize).status == 401)
            }
            let initialized = try JSONValue.parse(try await Self.post(server, key: key, initialize).body)
            #expect(initialized["result"]?["protocolVersion"] == "2025-06-18" && initialized["result"]?["serverInfo"]?["name"] == "cyberun-cloud")
            let notified = try await Self.post(server, key: key, ["jsonrpc": "2.0", "method": "notifications/initialized"])
            #expect(notified.status == 202 && notified.body.isEmpty)

            let listed = try JSONValue.parse(try await Self.post(server, key: key, ["jsonrpc": "2.0", "id": 2, "method": "tools/list"]).body)
            let names = listed["result"]?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(
                Set(names) == [
                    "list_workflows", "get_workflow", "run_workflow_by_slug", "get_task", "wait_for_task", "list_tasks", "cancel_task",
                    "get_task_result", "create_upload", "list_agents",
                ])

            let workflow = try JSONValue.parse(try await Self.post(server, key: key, Self.call(3, "get_workflow", ["workflow_slug": "invert"])).body)
            let schema = workflow["result"]?["structuredContent"]?["parameters_schema"]
            #expect(schema?["properties"]?["color"]?["maximum"] == 16_777_215 && schema?["properties"]?["color"]?["type"] == "number")

            let refusedRun = try JSONValue.parse(
                try await Self.post(
                    server, key: key, Self.call(4, "run_workflow_by_slug", ["workflow_slug": "invert", "parameters": ["color": 99_999_999]])
                )
                .body)
            #expect(refusedRun["result"]?["isError"] == true)
            let refusal = refusedRun["result"]?["content"]?.arrayValue?.first?["text"]?.stringValue
            #expect(refusal == #"HTTP 400: parameter "color": 99999999 is above max 16777215"#)

            let run = try JSONValue.parse(
                try await Self.post(server, key: key, Self.call(5, "run_workflow_by_slug", ["workflow_slug": "invert", "parameters": ["width": 64]]))
                    .body)
            let taskId = try #require(run["result"]?["structuredContent"]?["task_id"]?.stringValue, "\(run)")

            let waited = try await Self.post(
                server, key: key, Self.call(6, "wait_for_task", ["task_id": .string(taskId)], meta: ["progressToken": "p1"]))
            #expect(waited.type.hasPrefix("text/event-stream"))
            let messages = waited.body.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { try? JSONValue.parse(String($0.dropFirst(6))) }
            let final = try #require(messages.last ?? nil)
            #expect(messages.dropLast().allSatisfy { $0?["method"] == "notifications/progress" && $0?["params"]?["progressToken"] == "p1" })
            #expect(messages.count >= 2 && final["id"] == 6)
            let finished = final["result"]?["structuredContent"]
            #expect(finished?["task_status"] == "completed" && finished?["result"]?["download_urls"]?["3.images.0"]?.stringValue != nil, "\(final)")

            let other = try JSONValue.parse(
                try await Self.post(server, key: key, Self.call(7, "get_task", ["task_id": .string(UUID().uuidString)])).body)
            #expect(other["result"]?["isError"] == true && other["result"]?["content"]?.arrayValue?.first?["text"] == "HTTP 404: task not found")
            let missing = try JSONValue.parse(try await Self.post(server, key: key, Self.call(8, "get_task", [:])).body)
            #expect(missing["result"]?["content"]?.arrayValue?.first?["text"] == #"argument "task_id" is required"#)
            let unknown = try JSONValue.parse(try await Self.post(server, key: key, Self.call(9, "no_such_tool", [:])).body)
            #expect(unknown["error"]?["code"] == -32602)
            for malformed: JSONValue in [
                ["jsonrpc": "1.0", "id": 1, "method": "ping"], ["jsonrpc": "2.0", "id": [1], "method": "ping"],
                ["jsonrpc": "2.0", "id": 1, "method": 5], ["jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]], [1, 2],
            ] {
                let answer = try await Self.post(server, key: key, malformed)
                let code = try JSONValue.parse(answer.body)["error"]?["code"]
                #expect(answer.status == 400 && code == -32600, "\(malformed)")
            }
        }
    }
}
