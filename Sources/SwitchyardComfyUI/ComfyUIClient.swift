import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// ComfyUI's HTTP API as recorded in `spec/comfyui-protocol.md`: the calls an executor needs, each returning what
/// the server said rather than throwing on a non-2xx answer (callers decide whose fault a refusal is). A thrown
/// error means the server could not be reached at all.
///
/// ```swift
/// let comfy = ComfyUIClient(baseURL: "http://127.0.0.1:8188")
/// let answer = try await comfy.postPrompt(graph, promptId: id, clientId: connection.clientId)
/// ```
public struct ComfyUIClient: Sendable {
    public let baseURL: String
    let http: HTTPClient

    public init(baseURL: String, http: HTTPClient = .shared) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = http
    }

    /// The WebSocket address for `clientId` (`ws://…/ws?clientId=…`).
    public func webSocketURL(clientId: String) -> String {
        let base = baseURL.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://")
        return "\(base)/ws?clientId=\(clientId)"
    }

    /// One HTTP answer: status, body and `Content-Type`.
    public struct Answer: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var contentType: String?
        /// Every header of the answer, in order.
        public var headers: [(String, String)] = []

        /// The body as JSON, nil when it is not.
        public var json: JSONValue? { try? JSONValue.parse(body) }
    }

    /// `GET /system_stats`: the readiness probe.
    public func systemStats(timeout: TimeAmount = .seconds(5)) async throws -> Answer {
        try await request(.GET, "/system_stats", timeout: timeout)
    }

    /// `GET /internal/folder_paths`: each model type's folders, `{"checkpoints": ["/…/models/checkpoints", …], …}`
    /// (current ComfyUI; older ones answer 404).
    public func folderPaths() async throws -> Answer {
        try await request(.GET, "/internal/folder_paths", timeout: .seconds(5))
    }

    /// `POST /prompt` with our own `prompt_id` and the WebSocket's `client_id`.
    public func postPrompt(_ graph: [String: JSONValue], promptId: String, clientId: String, extraData: [String: JSONValue] = [:]) async throws
        -> Answer
    {
        let body = JSONValue.object([
            "prompt": .object(graph), "client_id": .string(clientId), "prompt_id": .string(promptId), "extra_data": .object(extraData),
        ]).jsonString
        return try await request(.POST, "/prompt", body: Array(body.utf8), timeout: .seconds(30))
    }

    /// `POST /queue {"delete": [id]}`: removes a prompt that has not started; a no-op for any other.
    public func deleteFromQueue(_ promptId: String) async throws {
        _ = try await request(.POST, "/queue", body: Array(JSONValue.object(["delete": [.string(promptId)]]).jsonString.utf8), timeout: .seconds(10))
    }

    /// `POST /interrupt {"prompt_id": id}`: stops the prompt if it is the one running (at its next node boundary or
    /// progress tick); a no-op otherwise.
    public func interrupt(_ promptId: String) async throws {
        _ = try await request(
            .POST, "/interrupt", body: Array(JSONValue.object(["prompt_id": .string(promptId)]).jsonString.utf8), timeout: .seconds(10))
    }

    /// Where a prompt is in ComfyUI's queue.
    public enum QueuePlace: Sendable, Equatable {
        case running
        case pending
        case absent
    }

    /// `GET /queue`, looked up for one prompt.
    public func queuePlace(of promptId: String) async throws -> QueuePlace {
        let answer = try await request(.GET, "/queue", timeout: .seconds(10))
        guard let queue = answer.json else { return .absent }
        func contains(_ list: JSONValue?) -> Bool {
            (list?.arrayValue ?? []).contains { entry in entry.arrayValue?.dropFirst().first?.stringValue == promptId }
        }
        if contains(queue["queue_running"]) { return .running }
        if contains(queue["queue_pending"]) { return .pending }
        return .absent
    }

    /// A prompt ComfyUI holds or held, as `/queue` and `/history` list it: its id, the `extra_data` it was posted
    /// with, where it is, and (finished) when it ended.
    public struct ListedPrompt: Sendable, Equatable {
        public var promptId: String
        public var extraData: JSONValue
        public var place: QueuePlace
        /// The time of its last status message (nil while queued or running).
        public var finishedAt: Date?
    }

    /// `GET /queue` and `GET /history?max_items=N`: the prompts running and waiting, and the newest N finished.
    public func listPrompts(recentFinished: Int) async throws -> [ListedPrompt] {
        var listed: [ListedPrompt] = []
        let queue = try await request(.GET, "/queue", timeout: .seconds(10)).json
        for (key, place) in [("queue_running", QueuePlace.running), ("queue_pending", .pending)] {
            for entry in queue?[key]?.arrayValue ?? [] {
                guard let item = entry.arrayValue, item.count > 3, let promptId = item[1].stringValue else { continue }
                listed.append(ListedPrompt(promptId: promptId, extraData: item[3], place: place))
            }
        }
        let history = try await request(.GET, "/history?max_items=\(recentFinished)", timeout: .seconds(30)).json
        for (promptId, entry) in history?.objectValue ?? [:] {
            guard let item = entry["prompt"]?.arrayValue, item.count > 3 else { continue }
            let last = entry["status"]?["messages"]?.arrayValue?.last?.arrayValue?.dropFirst().first?["timestamp"]?.numberValue
            let finishedAt = last.flatMap { Double($0.description) }.map { Date(timeIntervalSince1970: $0 / 1000) }
            listed.append(ListedPrompt(promptId: promptId, extraData: item[3], place: .absent, finishedAt: finishedAt))
        }
        return listed
    }

    /// `GET /history/{id}`: the prompt's entry once it has finished, nil while it is pending or running (`{}`).
    public func history(_ promptId: String) async throws -> JSONValue? {
        let answer = try await request(.GET, "/history/\(Self.percentEncode(promptId))", timeout: .seconds(30))
        guard answer.status == 200, let entry = answer.json?[promptId], entry.objectValue != nil else { return nil }
        return entry
    }

    /// `GET /view` of one file a history lists.
    public func view(filename: String, subfolder: String, type: String, maximumSize: Int = 8 << 30) async throws -> Answer {
        let query = [("filename", filename), ("subfolder", subfolder), ("type", type)].map { "\($0)=\(Self.percentEncode($1))" }
            .joined(separator: "&")
        return try await request(.GET, "/view?\(query)", timeout: .seconds(300), maximumSize: maximumSize)
    }

    /// `POST /upload/image` (multipart: `image`, `subfolder`, `type=input`, `overwrite=true`).
    public func uploadImage(fileName: String, bytes: [UInt8], subfolder: String) async throws -> Answer {
        let form = MultipartForm(
            file: (field: "image", fileName: fileName, contentType: "application/octet-stream", bytes: bytes),
            fields: [("subfolder", subfolder), ("type", "input"), ("overwrite", "true")])
        return try await request(.POST, "/upload/image", body: form.body, contentType: form.contentType, timeout: .seconds(120))
    }

    public static func percentEncode(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    func request(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json", headers: [(String, String)] = [],
        timeout: TimeAmount, maximumSize: Int = 64 << 20
    ) async throws -> Answer {
        try await Self.request(
            http, method, path.hasPrefix("http://") || path.hasPrefix("https://") ? path : baseURL + path, body: body, contentType: contentType,
            headers: headers, timeout: timeout, maximumSize: maximumSize)
    }

    static func request(
        _ http: HTTPClient, _ method: HTTPMethod, _ url: String, body: [UInt8]?, contentType: String, headers: [(String, String)],
        timeout: TimeAmount, maximumSize: Int
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: timeout)
        let bytes = Array(buffer: try await response.body.collect(upTo: maximumSize))
        return Answer(
            status: Int(response.status.code), body: bytes, contentType: response.headers.first(name: "Content-Type"),
            headers: response.headers.map { ($0.name, $0.value) })
    }
}

/// A `multipart/form-data` body with one file and some text fields, as ComfyUI's and Comfy Cloud's upload endpoints
/// take it.
struct MultipartForm {
    let boundary = "switchyard-\(UUID().uuidString.lowercased())"
    let body: [UInt8]

    init(file: (field: String, fileName: String, contentType: String, bytes: [UInt8]), fields: [(String, String)]) {
        var body: [UInt8] = []
        body.reserveCapacity(file.bytes.count + 512)
        let safeName = file.fileName.replacingOccurrences(of: "\"", with: "_")
        body += Array(
            """
            --\(boundary)\r\nContent-Disposition: form-data; name="\(file.field)"; filename="\(safeName)"\r\nContent-Type: \(file.contentType)\r\n\r\n
            """.utf8)
        body += file.bytes
        body += Array("\r\n".utf8)
        for (name, value) in fields {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        self.body = body
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }
}
