import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Comfy Cloud as `spec/comfy-cloud.md` and Comfy API v2 (`openapi-v2.yaml`) document it: the calls the control
/// plane's cloud runner needs, each answering what the service said (status and body) rather than throwing on a
/// refusal; a thrown error means the service could not be reached.
///
/// Comfy API v2 is used wherever it covers the need — assets for inputs, jobs (submit with an `Idempotency-Key`,
/// status, progress and outputs, cancel of one job), asset content for outputs — and the v1 surface only for what v2
/// lacks: `GET /api/user`, the cheapest documented check of a key (docs/decisions.md, "Comfy Cloud").
public struct ComfyCloudClient: Sendable {
    /// The default service (`cloud.comfyBaseURL`).
    public static let defaultBaseURL = "https://cloud.comfy.org"

    public let baseURL: String
    let apiKey: String
    /// Never follows redirects: a `302` to a signed storage URL is read and fetched without the key.
    let http: HTTPClient

    public init(baseURL: String, apiKey: String, http: HTTPClient = ComfyCloudClient.sharedHTTPClient) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.http = http
    }

    /// The process's HTTP client for the service (like `HTTPClient.shared`, never shut down): redirects are not
    /// followed, so the caller decides where the key goes.
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public typealias Answer = ComfyUIClient.Answer

    /// `GET /api/user` (v1, `X-API-Key`): `200 {"status": "active"|"waitlisted"}`, `401` for a key it refuses.
    public func user() async throws -> Answer {
        try await request(.GET, "/api/user", v1: true, timeout: .seconds(10))
    }

    /// `POST /api/v2/assets` (multipart `file`, `content_type`, `file_path`, `tags[]=input`): `201`/`200` with the
    /// asset (`id`, `hash`, …).
    public func uploadAsset(fileName: String, contentType: String, bytes: [UInt8], idempotencyKey: String) async throws -> Answer {
        let form = MultipartForm(
            file: (field: "file", fileName: fileName, contentType: contentType, bytes: bytes),
            fields: [("content_type", contentType), ("file_path", fileName), ("tags", "input")])
        return try await request(
            .POST, "/api/v2/assets", body: form.body, contentType: form.contentType, idempotencyKey: idempotencyKey, timeout: .seconds(300))
    }

    /// `POST /api/v2/jobs {"workflow": graph}` with a single-use `Idempotency-Key`: `201` with the job.
    public func submitJob(_ workflow: [String: JSONValue], idempotencyKey: String) async throws -> Answer {
        let body = JSONValue.object(["workflow": .object(workflow)]).jsonString
        return try await request(.POST, "/api/v2/jobs", body: Array(body.utf8), idempotencyKey: idempotencyKey, timeout: .seconds(60))
    }

    /// `GET /api/v2/jobs/{id}`: the authoritative view of a job (status, progress, outputs so far, error).
    public func job(_ id: String) async throws -> Answer {
        try await request(.GET, "/api/v2/jobs/\(ComfyUIClient.percentEncode(id))", timeout: .seconds(30))
    }

    /// `GET /api/v2/jobs/{id}/events` (SSE: `status`, `progress`, `preview`, `output`): hands each event to `handle`
    /// until it answers false or the stream ends (after the terminal `status`, or dropped). Answers the HTTP status:
    /// anything but 200 (`429 too_many_streams`, `501 not_implemented`) means no events came and polling must do.
    public func events(_ id: String, _ handle: (_ event: String, _ data: JSONValue) async throws -> Bool) async throws -> Int {
        var request = HTTPClientRequest(url: baseURL + "/api/v2/jobs/\(ComfyUIClient.percentEncode(id))/events")
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await http.execute(request, timeout: .hours(24))
        guard response.status == .ok else {
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        var parser = ServerSentEvents()
        for try await buffer in response.body {
            for event in parser.feed(buffer.readableBytesView) {
                guard let kind = event.kind, let data = try? JSONValue.parse(Array(event.data.utf8)) else { continue }
                guard try await handle(kind, data) else { return 200 }
            }
        }
        return 200
    }

    /// `POST /api/v2/jobs/{id}/cancel`: idempotent; stops this job only (v1's `/api/interrupt` stops every running job
    /// of the account).
    public func cancelJob(_ id: String) async throws -> Answer {
        try await request(.POST, "/api/v2/jobs/\(ComfyUIClient.percentEncode(id))/cancel", timeout: .seconds(30))
    }

    /// `GET /api/v2/assets/{id}/content`: the bytes (`200`), or a `302` whose `Location` is fetched here without the
    /// key — the signed URL carries its own authorisation, and the key must not reach the storage host.
    public func assetContent(_ id: String, maximumSize: Int) async throws -> Answer {
        let first = try await request(
            .GET, "/api/v2/assets/\(ComfyUIClient.percentEncode(id))/content", timeout: .seconds(300), maximumSize: maximumSize)
        guard (300..<400).contains(first.status), let location = first.location else { return first }
        let target = location.hasPrefix("/") ? baseURL + location : location
        return try await ComfyUIClient.request(
            http, .GET, target, body: nil, contentType: "", headers: [], timeout: .seconds(300), maximumSize: maximumSize)
    }

    private func request(
        _ method: HTTPMethod, _ path: String, v1: Bool = false, body: [UInt8]? = nil, contentType: String = "application/json",
        idempotencyKey: String? = nil, timeout: TimeAmount, maximumSize: Int = 16 << 20
    ) async throws -> Answer {
        var headers = [v1 ? ("X-API-Key", apiKey) : ("Authorization", "Bearer \(apiKey)"), ("Accept", "application/json")]
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        return try await ComfyUIClient.request(
            http, method, baseURL + path, body: body, contentType: contentType, headers: headers, timeout: timeout, maximumSize: maximumSize)
    }
}

extension ComfyUIClient.Answer {
    /// `Location` of a redirect.
    public var location: String? { headers.first { $0.0.lowercased() == "location" }?.1 }

    /// Seconds a `429`/`503` asks to wait (`Retry-After` in seconds), nil when it does not say.
    public var retryAfter: Double? {
        headers.first { $0.0.lowercased() == "retry-after" }.flatMap { Double($0.1.trimmingCharacters(in: .whitespaces)) }
    }

    /// The v2 error envelope's `error.code` and `error.message` (or v1's `{code, message}` / `{error: "…"}`).
    public var errorCode: String? { json?["error"]?["code"]?.stringValue ?? json?["code"]?.stringValue }
    public var errorMessage: String? {
        json?["error"]?["message"]?.stringValue ?? json?["message"]?.stringValue ?? json?["error"]?.stringValue
    }
}
