import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchyardClient
import SwitchyardCore

/// A recorded ComfyUI API graph from Tests/Fixtures/comfyui, as JSON text.
public func recordedGraphText(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/comfyui/\(name).json")
    return try String(contentsOf: url, encoding: .utf8)
}

/// The import body of the docs' text-to-image workflow (api.md §2.1 example parameters) on the recorded
/// txt2img graph, plus a LoadImage node for the file parameter.
public func textToImageImport(
    slug: String = "text-to-image", displayName: String = "Text to image", description: String = "SD 1.5 txt2img", extra: String = ""
) throws -> String {
    let graph = try recordedGraphText("c1_txt2img_missing_checkpoint").trimmingCharacters(in: .whitespacesAndNewlines)
    let withLoader = String(graph.dropLast()) + #", "10": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}}}"#
    return """
        {"workflow_slug":"\(slug)","display_name":"\(displayName)","description":"\(description)","tool_type":"comfyui",
         "required_labels":["gpu","sd15"],"task_timeout":300,"max_retries":2,"preferred_gpu":"RTX_4090","min_vram_gb":8,
         "required_models":["checkpoints/v1-5-pruned-emaonly.safetensors"],
         "workflow_json":\(withLoader),
         "parameters":[
           {"key":"prompt","node_id":"6","field":"text","type":"string","label":"Positive Prompt","required":true},
           {"key":"width","node_id":"5","field":"width","type":"number","label":"Width","min":64,"max":2048,"default":512},
           {"key":"sampler","node_id":"3","field":"sampler_name","type":"select","label":"Sampler","options":["euler","euler_ancestral","dpmpp_2m"],"default":"euler"},
           {"key":"steps","node_id":"3","field":"steps","type":"number","min":1,"max":150,"default":20},
           {"key":"input_image","node_id":"10","field":"image","type":"file","label":"Input Image","accept":["image/*"]}
         ]\(extra)}
        """
}

extension TestApp {
    /// Sends a request with a bearer token (and `X-Team-ID` when `team` is set).
    public func call(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, token: String?, team: UUID? = nil, body: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = authHeaders(token, team: team)
        headers.append(contentsOf: extra)
        if body != nil { headers[.contentType] = "application/json" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    /// Imports a workflow as the bootstrap owner and returns its id.
    public func importWorkflow(_ client: any TestClientProtocol, session: String, body: String) async throws -> UUID {
        let response = try await call(client, .post, "/api/v1/workflows/import", token: session, team: bootstrap.teamId, body: body)
        guard response.status == .created || response.status == .ok else {
            throw TestSupportError("import failed: \(response.status) \(String(buffer: response.body))")
        }
        return try response.decode(Created.self).id
    }

    /// A second team with its own owner and `sk-` key, for isolation tests.
    public func otherTeam() async throws -> (teamId: UUID, integrationKey: String) {
        let now = clock.now()
        let user = User(
            id: UUIDv7.make(at: now), emailAddress: "other-\(UUID().uuidString.prefix(8))@example.com", displayName: "Other", passwordHash: "x",
            createdAt: now, updatedAt: now)
        try await storage.insertUser(user)
        let team = Team(id: UUIDv7.make(at: now), displayName: "Other team", createdAt: now, updatedAt: now)
        try await storage.insertTeam(team, owner: Membership(teamId: team.id, userId: user.id, role: .owner, createdAt: now))
        let key = try await insertKey(.integration, teamId: team.id)
        return (team.id, key.secret)
    }

    /// A user of the bootstrap team with `role`, and their `dk-` key (which acts with that role).
    public func member(role: TeamRole) async throws -> String {
        let now = clock.now()
        let user = User(
            id: UUIDv7.make(at: now), emailAddress: "\(role.rawValue)-\(UUID().uuidString.prefix(8))@example.com", displayName: role.rawValue,
            passwordHash: "x", createdAt: now, updatedAt: now)
        try await storage.insertUser(user)
        try await storage.insertMembership(Membership(teamId: bootstrap.teamId, userId: user.id, role: role, createdAt: now))
        return try await insertKey(.device, userId: user.id).secret
    }
}

extension TestApp {
    /// Uploads `bytes` the documented way (presign, then PUT with `upload_headers`) and returns the `file_key`.
    public func upload(
        _ client: any TestClientProtocol, token: String, team: UUID? = nil, fileName: String = "photo.png", contentType: String = "image/png",
        bytes: [UInt8] = Array("not really a png".utf8)
    ) async throws -> String {
        let presign = try await call(
            client, .post, "/api/v1/r/files/presign", token: token, team: team,
            body: #"{"file_name":"\#(fileName)","file_size":\#(bytes.count),"content_type":"\#(contentType)"}"#)
        guard presign.status == .ok else { throw TestSupportError("presign failed: \(presign.status) \(String(buffer: presign.body))") }
        let upload = try presign.decode(PresignedUpload.self)
        let status = try await put(upload.uploadURL, headers: upload.uploadHeaders, body: bytes)
        guard status == 200 else { throw TestSupportError("upload PUT answered \(status)") }
        return upload.fileKey
    }

    /// A PUT to a presigned URL as a plain HTTP client sends it; returns the status.
    /// Uploads a model file the documented way (presign, PUT with `upload_headers`) and registers it with its
    /// `model_path` and `file_hash`, so agents sync it; its id.
    public func registerSyncedModel(
        _ client: any TestClientProtocol, session: String, bytes: [UInt8], type: String, path: String, name: String = "M"
    ) async throws -> String {
        let presign = try await call(
            client, .post, "/api/v1/models/presign", token: session, team: bootstrap.teamId,
            body: #"{"file_name":"m.safetensors","file_size":\#(bytes.count),"model_type":"\#(type)","model_path":"\#(path)"}"#
        ).decode(PresignedModelUpload.self)
        guard try await put(presign.uploadURL, headers: presign.uploadHeaders, body: bytes) == 200 else {
            throw TestSupportError("the model upload failed: \(presign)")
        }
        let key = presign.storageKey
        let hash = "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        let registered = try await call(
            client, .post, "/api/v1/models", token: session, team: bootstrap.teamId,
            body: #"{"display_name":"\#(name)","model_type":"\#(type)","storage_key":"\#(key)","model_path":"\#(path)","file_hash":"\#(hash)"}"#)
        guard registered.status == .created else {
            throw TestSupportError("the model registration failed: \(registered.status) \(String(buffer: registered.body))")
        }
        return try registered.decode(Created.self).id.lowercased
    }

    /// The body of a GET of `url`.
    public func get(_ url: String) async throws -> [UInt8] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        return Array(try await response.body.collect(upTo: 64 << 20).readableBytesView)
    }

    /// This team's agents as `GET /r/agents` lists them.
    public func agents(_ client: any TestClientProtocol) async throws -> [AgentInfo] {
        try await call(client, .get, "/api/v1/r/agents", token: bootstrap.integrationKey).decode(Page<AgentInfo>.self).items
    }

    /// This team's agent `agentId` as `GET /r/agents` shows it.
    public func agent(_ client: any TestClientProtocol, _ agentId: String) async throws -> AgentInfo {
        let listed = try await agents(client)
        guard let agent = listed.first(where: { $0.agentId == agentId }) else {
            throw TestSupportError("agent \(agentId) is not listed: \(listed.map(\.agentId))")
        }
        return agent
    }

    public func put(_ url: String, headers: [String: String], body: [UInt8]) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .PUT
        for (name, value) in headers where name.lowercased() != "content-length" { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }
}

extension TestApp {
    /// The import body of the recorded trivial graph (EmptyImage → ImageInvert → SaveImage) with a `color` number
    /// parameter, an optional `photo` file parameter on a LoadImage node, and the given labels and limits.
    public static func invertImport(
        slug: String = "invert", labels: [String] = ["gpu", "comfyui"], timeout: Int = 300, maxRetries: Int = 2, withFile: Bool = false,
        minVRAMGB: Int = 0, requiredModels: [String] = []
    ) throws -> String {
        var graph = try recordedGraphText("a_empty_invert_save").trimmingCharacters(in: .whitespacesAndNewlines)
        var parameters = #"{"key":"color","node_id":"1","field":"color","type":"number","min":0,"max":16777215,"default":16744448}"#
        if withFile {
            graph = String(graph.dropLast()) + #", "4": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}}}"#
            parameters += #", {"key":"photo","node_id":"4","field":"image","type":"file","accept":["image/*"]}"#
        }
        let labelList = labels.map { "\"\($0)\"" }.joined(separator: ",")
        return """
            {"workflow_slug":"\(slug)","display_name":"Invert","tool_type":"comfyui","required_labels":[\(labelList)],
             "task_timeout":\(timeout),"max_retries":\(maxRetries),"min_vram_gb":\(minVRAMGB),"workflow_json":\(graph),
             "required_models":[\(requiredModels.map { "\"\($0)\"" }.joined(separator: ","))],
             "parameters":[\(parameters)]}
            """
    }

    /// Runs the workflow `slug` with the bootstrap `sk-` key and returns the task id.
    public func run(_ client: any TestClientProtocol, slug: String = "invert", body: String = "{}") async throws -> UUID {
        let response = try await call(client, .post, "/api/v1/r/workflows/slug/\(slug)/run", token: bootstrap.integrationKey, body: body)
        guard response.status == .accepted else { throw TestSupportError("run failed: \(response.status) \(String(buffer: response.body))") }
        return try response.decode(RunAccepted.self).taskId
    }

    /// The task as `GET /r/tasks/{id}` shows it.
    public func task(_ client: any TestClientProtocol, _ id: UUID) async throws -> TaskInfo {
        try await call(client, .get, "/api/v1/r/tasks/\(id.lowercased)", token: bootstrap.integrationKey).decode(TaskInfo.self)
    }

    /// The task's answer as sent, for tests about the wire format (timestamps, nulls).
    public func taskJSON(_ client: any TestClientProtocol, _ id: UUID) async throws -> JSONValue {
        try await call(client, .get, "/api/v1/r/tasks/\(id.lowercased)", token: bootstrap.integrationKey).json()
    }

    /// Reads the task each time it changes on this replica (its events, not a timer) until `done` accepts it;
    /// gives up after `timeout`, naming where the task stood.
    public func waitForTask(
        _ client: any TestClientProtocol, _ id: UUID, within timeout: Duration = .seconds(30), _ done: @escaping @Sendable (TaskInfo) -> Bool
    ) async throws -> TaskInfo {
        try await follow(id, within: timeout, read: { try await self.task(client, id) }, until: done)
    }

    /// Reads `read` each time task `id` changes on this replica until `done` accepts what it read; gives up after
    /// `timeout`, naming the last reading. A task that got there without its followers being told fails too: the
    /// server's streams would not have seen that change either.
    public func follow<T: Sendable>(
        _ id: UUID, within timeout: Duration = .seconds(30), read: @escaping @Sendable () async throws -> T,
        until done: @escaping @Sendable (T) -> Bool
    ) async throws -> T {
        try await built.followTask(id) { nextChange in
            let deadline = ContinuousClock.now + timeout
            var told = true
            while true {
                let value = try await read()
                if done(value) {
                    guard told else { throw TestSupportError("task \(id) changed without its followers being told: \(value)") }
                    return value
                }
                let left = deadline - ContinuousClock.now
                guard left > .zero else { throw TestSupportError("task \(id) did not get there in \(timeout): \(value)") }
                told = await nextChange(left)
            }
        }
    }
}

extension TestApp {
    /// Follows the task's SSE stream live over a real socket (the live test server on `port`): after each chunk,
    /// `step` sees everything read so far; reading stops at the terminal event or when the stream ends.
    public func followEvents(port: Int, _ taskId: UUID, _ step: (String) async throws -> Void = { _ in }) async throws -> String {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/r/tasks/\(taskId.lowercased)/events")
        request.headers.add(name: "Authorization", value: "Bearer \(bootstrap.integrationKey)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var text = ""
        for try await chunk in response.body {
            text += String(buffer: chunk)
            try await step(text)
            if ["completed", "failed", "cancelled"].contains(where: { text.contains("event: \($0)\n") }) { break }
        }
        return text
    }
}

/// The instant an API timestamp names, read with Foundation's `ISO8601DateFormatter` rather than the server's own
/// code; nil unless it is exactly `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), the API's format.
public func apiInstant(_ value: JSONValue?) -> Date? {
    guard let text = value?.stringValue, text.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/) != nil else { return nil }
    return ISO8601DateFormatter().date(from: text)
}
