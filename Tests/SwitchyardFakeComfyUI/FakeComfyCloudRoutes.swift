import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardCore

/// The stand-in's routes (see `FakeComfyCloud`).
struct FakeComfyCloudRoutes: Sendable {
    let state: CloudState

    func add(to router: Router<BasicRequestContext>) {
        router.get("/api/user") { request, _ in
            try await answer(request, v1: true) { _ in
                json(["status": .string("active")])
            } waitlisted: {
                json(["status": .string("waitlisted")])
            }
        }
        router.post("/api/v2/assets") { request, context in try await answer(request) { _ in try await upload(request) } }
        router.post("/api/v2/jobs") { request, context in try await answer(request) { key in try await submit(request, key: key) } }
        router.get("/api/v2/jobs/{id}") { request, context in
            try await answer(request) { key in
                guard let id = context.parameters.get("id"), await state.jobs[id]?.key == key, let job = await state.jobJSON(id) else {
                    return error(.notFound, "not_found", "no such job")
                }
                return json(job)
            }
        }
        router.get("/api/v2/jobs/{id}/events") { request, context in
            try await answer(request) { key in
                guard let id = context.parameters.get("id"), await state.jobs[id]?.key == key else {
                    return error(.notFound, "not_found", "no such job")
                }
                return events(id, changes: await state.watch(id))
            }
        }
        router.post("/api/v2/jobs/{id}/cancel") { request, context in
            try await answer(request) { key in
                guard let id = context.parameters.get("id"), await state.jobs[id]?.key == key else {
                    return error(.notFound, "not_found", "no such job")
                }
                await cancel(id)
                return json(await state.jobJSON(id) ?? .null)
            }
        }
        router.get("/api/v2/assets/{id}/content") { request, context in
            try await answer(request) { _ in
                guard let id = context.parameters.get("id"), await state.assets[id] != nil else {
                    return error(.notFound, "not_found", "no such asset")
                }
                return Response(status: .found, headers: [.location: await state.signedURL(id)])
            }
        }
        // The storage host: signed URLs only, and never the API key.
        router.get("/storage/{id}") { request, context in
            await state.log("GET /storage")
            if request.headers[.authorization] != nil || request.headers[HTTPField.Name("X-API-Key")!] != nil {
                await state.storageSawCredentials()
                return error(.badRequest, "credentials_forwarded", "the API key was sent to the storage host")
            }
            guard let id = context.parameters.get("id"), let asset = await state.assets[id],
                request.uri.queryParameters["signature"].map(String.init) == (await state.signature(id))
            else { return error(.forbidden, "forbidden", "the signature does not match") }
            return Response(
                status: .ok, headers: [.contentType: asset.contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: asset.bytes)))
        }
    }

    /// Checks the key (v1 `X-API-Key`, v2 `Bearer`) and the `unavailable` fault, then answers with `body`.
    private func answer(
        _ request: Request, v1: Bool = false, _ body: (String) async throws -> Response, waitlisted: () -> Response = { Response(status: .forbidden) }
    ) async throws -> Response {
        await state.log("\(request.method.rawValue) \(request.uri.path)")
        if await state.takeUnavailable() { return error(.serviceUnavailable, "unavailable", "the service is unavailable") }
        let key: String?
        if v1 {
            key = request.headers[HTTPField.Name("X-API-Key")!]
        } else {
            key = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        }
        guard let key, let waitlistedAccount = await state.account(key) else { return error(.unauthorized, "unauthorized", "invalid API key") }
        if waitlistedAccount { return waitlisted() }
        return try await body(key)
    }

    private func upload(_ request: Request) async throws -> Response {
        guard let fields = try await FakeComfyUIRoutes.form(request, upTo: state.maximumUploadSize + (1 << 20))?.fields else {
            return error(.unprocessableContent, "invalid_request", "multipart/form-data expected")
        }
        guard let file = fields["file"], let type = fields["content_type"], let path = fields["file_path"] else {
            return error(.unprocessableContent, "invalid_request", "file, content_type and file_path are required")
        }
        guard file.count <= state.maximumUploadSize else { return error(.contentTooLarge, "too_large", "the file exceeds the upload limit") }
        let asset = await state.addAsset(
            bytes: file, contentType: String(decoding: type, as: UTF8.self), filePath: String(decoding: path, as: UTF8.self))
        return json(
            [
                "id": .string(asset.id), "hash": .null, "size_bytes": .number(JSONNumber(file.count)), "content_type": .string(asset.contentType),
                "file_path": .string(asset.filePath), "created_new": true, "created_at": .string(CloudState.timestamp(Date())),
                "url": .string(await state.signedURL(asset.id)), "url_expires_at": .string(CloudState.timestamp(Date().addingTimeInterval(3600))),
            ], status: .created)
    }

    private func submit(_ request: Request, key: String) async throws -> Response {
        if await state.fault == .noCredits { return error(.init(code: 402), "insufficient_credits", "not enough credits") }
        if await state.takeQueueFull() {
            var response = error(.tooManyRequests, "queue_full", "too many jobs queued")
            response.headers[.retryAfter] = "1"
            return response
        }
        let buffer = try await request.body.collect(upTo: 64 << 20)
        guard let body = try? JSONValue.parse(Array(buffer.readableBytesView)), case .object(var graph)? = body["workflow"] else {
            return error(.unprocessableContent, "invalid_workflow", "workflow must be an API-format graph")
        }
        if graph["nodes"] != nil, graph["links"] != nil { return error(.unprocessableContent, "workflow_format_ui", "UI-format workflow") }
        // Asset references become the names the files have on the worker.
        for (nodeId, node) in graph {
            guard case .object(var inputs)? = node["inputs"] else { continue }
            for (field, value) in inputs where value["__type"]?.stringValue == "core/ASSET" {
                guard let id = value["info"]?["id"]?.stringValue, let asset = await state.assets[id] else {
                    return error(.unprocessableContent, "missing_asset", "node \(nodeId) input \(field) references an unknown asset")
                }
                inputs[field] = .string(asset.comfyName)
            }
            var updated = node.objectValue ?? [:]
            updated["inputs"] = .object(inputs)
            graph[nodeId] = .object(updated)
        }
        guard await state.claim(request.headers[HTTPField.Name("Idempotency-Key")!]) else {
            return error(.unprocessableContent, "idempotency_key_reuse", "this Idempotency-Key was used before")
        }
        let id = UUID().uuidString.lowercased()
        // Known before the worker can start it: its first messages must find it.
        await state.addJob(CloudState.Job(id: id, key: key, nodesTotal: graph.count))
        var prompt = HTTPClientRequest(url: state.comfyBaseURL + "/prompt")
        prompt.method = .POST
        prompt.body = .bytes(
            ByteBuffer(
                string: JSONValue.object(["prompt": .object(graph), "prompt_id": .string(id), "client_id": .string(CloudState.socketId)]).jsonString))
        let response = try await HTTPClient.shared.execute(prompt, timeout: .seconds(30))
        let answer = try JSONValue.parse(Array(try await response.body.collect(upTo: 1 << 20).readableBytesView))
        guard response.status == .ok else {
            await state.removeJob(id)
            return error(
                .unprocessableContent, "invalid_workflow", answer["error"]?["message"]?.stringValue ?? "invalid workflow",
                details: ["node_errors": answer["node_errors"] ?? [:]])
        }
        return json(await state.jobJSON(id) ?? .null, status: .created)
    }

    /// The job's event stream: the snapshot now, then each change; it ends after the terminal `status`.
    private func events(_ id: String, changes: AsyncStream<Void>) -> Response {
        let state = self.state
        let body = ResponseBody { writer in
            var shown: (status: String?, progress: JSONValue?) = (nil, nil)
            func emit() async throws -> Bool {
                guard let job = await state.jobs[id] else { return true }
                let terminal = ["succeeded", "failed", "canceled", "expired"].contains(job.status)
                if job.progress != .null, job.progress != shown.progress, !terminal {
                    shown.progress = job.progress
                    try await writer.write(ByteBuffer(string: "event: progress\ndata: \(job.progress.jsonString)\n\n"))
                }
                if job.status != shown.status {
                    shown.status = job.status
                    let status: JSONValue = ["status": .string(job.status), "queue_position": (await state.jobJSON(id))?["queue_position"] ?? .null]
                    try await writer.write(ByteBuffer(string: "event: status\ndata: \(status.jsonString)\n\n"))
                }
                return terminal
            }
            if try await !emit() {
                for await _ in changes where try await emit() { break }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    private func cancel(_ id: String) async {
        guard let status = await state.jobs[id]?.status else { return }
        switch status {
        case "queued":
            // It may have just started on the worker: stopped there too.
            await state.engine.delete([id])
            await state.engine.interrupt(promptId: id)
            await state.update(id) { job in
                job.status = "canceled"
                job.completedAt = Date()
            }
        case "running":
            await state.update(id) { job in job.status = "canceling" }
            await state.engine.interrupt(promptId: id)
        default:
            break
        }
    }

    private func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: value.jsonString)))
    }

    private func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, details: JSONValue = .null) -> Response {
        json(["error": ["code": .string(code), "message": .string(message), "details": details]], status: status)
    }
}
