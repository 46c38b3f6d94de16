import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import SwitchyardCore

/// The fake's HTTP routes and WebSocket upgrade, each also under `/api` as ComfyUI serves them.
struct FakeComfyUIRoutes: Sendable {
    let engine: Engine

    func upgrade(_ request: HTTPRequest) async -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        guard await engine.available, let path = request.path, let components = URLComponents(string: path),
            components.path == "/ws" || components.path == "/api/ws"
        else { return .dontUpgrade }
        let clientId =
            components.queryItems?.first { $0.name == "clientId" }?.value ?? UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let engine = self.engine
        return .upgrade([:]) { inbound, outbound, _ in
            let frames = await engine.connect(clientId: clientId)
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await frame in frames {
                        switch frame {
                        case .text(let text): try? await outbound.writeTextMessage(text)
                        case .binary(let bytes): try? await outbound.writeBinaryMessage(ByteBuffer(bytes: bytes))
                        }
                    }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
                // Feature flags and anything else a client sends are read and ignored.
                do { for try await _ in inbound.messages(maxSize: 1 << 20) {} } catch {}
                await engine.disconnect(clientId: clientId)
                group.cancelAll()
            }
        }
    }

    func add(to router: Router<BasicRequestContext>) {
        // Internal routes have no /api twin in ComfyUI.
        router.get("/internal/folder_paths") { _, _ in
            try await guardAvailable {
                guard let root = engine.options.modelsRoot else { return Response(status: .notFound) }
                let types = ["checkpoints", "loras", "vae", "controlnet", "embeddings", "upscale_models", "diffusion_models", "text_encoders"]
                return json(.object(Dictionary(uniqueKeysWithValues: types.map { ($0, JSONValue.array([.string("\(root)/\($0)")])) })))
            }
        }
        for prefix in ["", "/api"] {
            router.get("\(prefix)/system_stats") { _, _ in
                try await guardAvailable { json(engine.options.cpuOnly ? Self.cpuSystemStats : Self.systemStats) }
            }
            router.post("\(prefix)/prompt") { request, context in try await guardAvailable { try await postPrompt(request, context) } }
            router.get("\(prefix)/prompt") { _, _ in
                try await guardAvailable { json(["exec_info": ["queue_remaining": .number(JSONNumber(await engine.queueRemaining))]]) }
            }
            router.get("\(prefix)/queue") { _, _ in try await guardAvailable { json(await engine.queueJSON) } }
            router.post("\(prefix)/queue") { request, context in
                try await guardAvailable {
                    let body = try await parse(request, context)
                    await engine.log("POST /queue \(body.jsonString)")
                    if case .array(let ids)? = body["delete"] { await engine.delete(ids.compactMap(\.stringValue)) }
                    if body["clear"] == .bool(true) { await engine.clearQueue() }
                    return Response(status: .ok)
                }
            }
            router.post("\(prefix)/interrupt") { request, context in
                try await guardAvailable {
                    let buffer = try await request.body.collect(upTo: 1 << 20)
                    let body = buffer.readableBytes == 0 ? JSONValue.object([:]) : ((try? JSONValue.parse(Array(buffer.readableBytesView))) ?? [:])
                    await engine.log("POST /interrupt \(body.jsonString)")
                    await engine.interrupt(promptId: body["prompt_id"]?.stringValue)
                    return Response(status: .ok)
                }
            }
            router.post("\(prefix)/free") { _, _ in try await guardAvailable { Response(status: .ok) } }
            // `GET /history?max_items=N`: every entry (the newest N), as ComfyUI answers it.
            router.get("\(prefix)/history") { request, _ in
                try await guardAvailable {
                    let all = await engine.history
                    guard let limit = request.uri.queryParameters["max_items"].flatMap({ Int($0) }), limit < all.count else {
                        return json(.object(all))
                    }
                    func number(_ entry: JSONValue) -> Double { entry["prompt"]?.arrayValue?.first?.numberValue?.doubleValue ?? 0 }
                    let newest = all.sorted { (left: (key: String, value: JSONValue), right: (key: String, value: JSONValue)) in
                        number(left.value) < number(right.value)
                    }.suffix(limit)
                    return json(.object(Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })))
                }
            }
            router.get("\(prefix)/history/{id}") { _, context in
                try await guardAvailable {
                    let id = context.parameters.get("id") ?? ""
                    guard let entry = await engine.historyEntry(id) else { return json([:]) }
                    return json([id: entry])
                }
            }
            router.get("\(prefix)/view") { request, _ in
                try await guardAvailable {
                    let query = request.uri.queryParameters
                    let name = query["filename"].map(String.init) ?? ""
                    guard await engine.fault != .outputFilesMissing,
                        let bytes = await engine.files[
                            Engine.fileKey(query["type"].map(String.init) ?? "output", query["subfolder"].map(String.init) ?? "", name)]
                    else { return Response(status: .notFound) }
                    return Response(
                        status: .ok,
                        headers: [.contentType: Self.contentType(of: name), .contentDisposition: "filename=\"\(name)\""],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
                }
            }
            router.post("\(prefix)/upload/image") { request, context in try await guardAvailable { try await upload(request, context) } }
        }
    }

    private func guardAvailable(_ body: () async throws -> Response) async throws -> Response {
        guard await engine.available else { return Response(status: .serviceUnavailable) }
        return try await body()
    }

    private func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: value.jsonString)))
    }

    private func parse(_ request: Request, _ context: BasicRequestContext) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: 64 << 20)
        return try JSONValue.parse(Array(buffer.readableBytesView))
    }

    private func postPrompt(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 64 << 20)
        guard let body = try? JSONValue.parse(Array(buffer.readableBytesView)) else {
            return Response(
                status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "500 Internal Server Error\n\nServer got itself in trouble")))
        }
        await engine.log("POST /prompt \(body["prompt_id"]?.stringValue ?? "")")
        if await engine.fault == .promptServerError {
            return Response(
                status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "500 Internal Server Error\n\nServer got itself in trouble")))
        }
        func error(_ type: String, _ message: String, details: String = "", nodeErrors: JSONValue = [:]) -> Response {
            json(
                [
                    "error": ["type": .string(type), "message": .string(message), "details": .string(details), "extra_info": [:]],
                    "node_errors": nodeErrors,
                ], status: .badRequest)
        }
        guard case .object(let graph)? = body["prompt"] else { return error("no_prompt", "No prompt provided", details: "No prompt provided") }
        for id in graph.keys.sorted() {
            let classType = graph[id]?["class_type"]?.stringValue ?? ""
            guard Engine.knownClasses.contains(classType) else {
                return error("invalid_prompt", "Cannot execute because node \(classType) does not exist.", details: "Node ID '#\(id)'")
            }
        }
        let outputs = graph.keys.filter { Engine.outputClasses.contains(graph[$0]?["class_type"]?.stringValue ?? "") }.sorted()
        guard !outputs.isEmpty else { return error("prompt_no_outputs", "Prompt has no outputs") }

        // Validation per node, then per output: an output fails when it depends on a failing node.
        var nodeProblems: [String: [JSONValue]] = [:]
        for id in graph.keys.sorted() {
            let inputs = graph[id]?["inputs"] ?? [:]
            switch graph[id]?["class_type"]?.stringValue ?? "" {
            case "LoadImage":
                let image = inputs["image"]?.stringValue ?? ""
                if !(await engine.hasInput(image)) {
                    nodeProblems[id, default: []].append(
                        [
                            "type": "custom_validation_failed", "message": "Custom validation failed for node",
                            "details": .string("image - Invalid image file: \(image)"), "extra_info": [:],
                        ])
                }
            case "CheckpointLoaderSimple":
                let name = inputs["ckpt_name"]?.stringValue ?? ""
                nodeProblems[id, default: []].append(
                    [
                        "type": "value_not_in_list", "message": "Value not in list", "details": .string("ckpt_name: '\(name)' not in []"),
                        "extra_info": ["input_name": "ckpt_name", "received_value": .string(name)],
                    ])
            default: break
            }
        }
        var nodeErrors: [String: JSONValue] = [:]
        var valid: [String] = []
        for output in outputs {
            let failing = Engine.executionOrder(graph, outputs: [output]).filter { nodeProblems[$0] != nil }
            if failing.isEmpty {
                valid.append(output)
                continue
            }
            for node in failing {
                var dependents =
                    (nodeErrors[node]?["dependent_outputs"]).flatMap { value -> [JSONValue]? in
                        if case .array(let list) = value { list } else { nil }
                    } ?? []
                dependents.append(.string(output))
                nodeErrors[node] = [
                    "errors": .array(nodeProblems[node]!), "dependent_outputs": .array(dependents),
                    "class_type": graph[node]?["class_type"] ?? .null,
                ]
            }
        }
        guard !valid.isEmpty else {
            let first = nodeErrors.keys.sorted().first.flatMap { nodeProblems[$0]?.first?["details"]?.stringValue } ?? ""
            return error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details: first, nodeErrors: .object(nodeErrors))
        }
        let promptId = body["prompt_id"]?.stringValue ?? UUID().uuidString.lowercased()
        let explicit = body["number"]?.numberValue.flatMap { Double($0.description) }
        let number = await engine.makeNumber(front: body["front"] == .bool(true), explicit: explicit)
        var extra: [String: JSONValue] = [:]
        if case .object(let given)? = body["extra_data"] { extra = given }
        if let clientId = body["client_id"] { extra["client_id"] = clientId }
        await engine.enqueue(
            Engine.Prompt(
                id: promptId, number: number, graph: graph, clientId: body["client_id"]?.stringValue, extraData: .object(extra), outputs: valid))
        return json(["prompt_id": .string(promptId), "number": .number(JSONNumber(number)), "node_errors": .object(nodeErrors)])
    }

    /// `multipart/form-data` with `image` (a file), `overwrite`, `type`, `subfolder`.
    private func upload(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let form = try await Self.form(request, upTo: 100 << 20) else { return Response(status: .badRequest) }
        let fields = form.fields
        guard let image = fields["image"], let fileName = form.fileNames["image"], !fileName.isEmpty else { return Response(status: .badRequest) }
        let subfolder = fields["subfolder"].map { String(decoding: $0, as: UTF8.self) } ?? ""
        guard !subfolder.split(separator: "/").contains("..") else { return Response(status: .badRequest) }
        let type = fields["type"].map { String(decoding: $0, as: UTF8.self) } ?? "input"
        let overwrite = fields["overwrite"].map { ["true", "1"].contains(String(decoding: $0, as: UTF8.self)) } ?? false
        let stored = await engine.upload(name: fileName, subfolder: subfolder, type: type, bytes: image, overwrite: overwrite)
        return json(["name": .string(stored), "subfolder": .string(subfolder), "type": .string(type)])
    }

    /// A `multipart/form-data` body's fields (name → bytes) and the file names its file fields give; nil when the
    /// request is not a form.
    static func form(_ request: Request, upTo limit: Int) async throws -> (fields: [String: [UInt8]], fileNames: [String: String])? {
        guard let contentType = request.headers[.contentType], let boundaryRange = contentType.range(of: "boundary=") else { return nil }
        let boundary = String(contentType[boundaryRange.upperBound...]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let body = Array(try await request.body.collect(upTo: limit).readableBytesView)
        var fields: [String: [UInt8]] = [:]
        var fileNames: [String: String] = [:]
        for part in split(body, by: Array("--\(boundary)".utf8)) {
            guard let headerEnd = find(Array("\r\n\r\n".utf8), in: part, from: 0) else { continue }
            let headers = String(decoding: part[..<headerEnd], as: UTF8.self)
            var content = Array(part[(headerEnd + 4)...])
            if content.suffix(2) == [13, 10] { content.removeLast(2) }
            guard let nameRange = headers.range(of: " name=\"") else { continue }
            let name = String(headers[nameRange.upperBound...].prefix { $0 != "\"" })
            if let fileRange = headers.range(of: "filename=\"") { fileNames[name] = String(headers[fileRange.upperBound...].prefix { $0 != "\"" }) }
            fields[name] = content
        }
        return (fields, fileNames)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0] && Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }

    static func split(_ body: [UInt8], by delimiter: [UInt8]) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var position = 0
        while let start = find(delimiter, in: body, from: position) {
            let from = start + delimiter.count
            guard let next = find(delimiter, in: body, from: from) else { break }
            var part = Array(body[from..<next])
            if part.prefix(2) == [13, 10] { part.removeFirst(2) }
            parts.append(part)
            position = next
        }
        return parts
    }

    static func contentType(of name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "webp": "image/webp"
        case "gif": "image/gif"
        case "mp4": "video/mp4"
        case "flac": "audio/flac"
        case "glb": "model/gltf-binary"
        case "txt": "text/plain"
        default: "application/octet-stream"
        }
    }

    /// As a real ComfyUI 0.3.64 started with `--cpu` answers (recorded on this project's CI machine).
    static let cpuSystemStats: JSONValue = [
        "system": [
            "os": "posix", "ram_total": 25_276_510_208, "ram_free": 24_438_345_728, "comfyui_version": "0.3.64", "python_version": "3.11.7",
            "pytorch_version": "2.13.0+cpu", "embedded_python": false, "argv": ["main.py", "--cpu"],
        ],
        "devices": [
            [
                "name": "cpu", "type": "cpu", "index": .null, "vram_total": 25_276_510_208, "vram_free": 24_438_345_728,
                "torch_vram_total": 25_276_510_208, "torch_vram_free": 2_443_834_572,
            ]
        ],
    ]

    static let systemStats: JSONValue = [
        "system": [
            "os": "posix", "ram_total": 25_276_514_304, "ram_free": 20_000_000_000, "comfyui_version": "0.3.64", "python_version": "3.11.7",
            "pytorch_version": "2.5.1+cu124", "embedded_python": false, "argv": ["main.py"],
        ],
        "devices": [
            [
                "name": "cuda:0 NVIDIA Fake GPU : cudaMallocAsync", "type": "cuda", "index": 0, "vram_total": 25_769_803_776,
                "vram_free": 22_548_578_304, "torch_vram_total": 0, "torch_vram_free": 0,
            ]
        ],
    ]
}
