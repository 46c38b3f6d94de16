import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// A typed client of Switchyard's HTTP API (the API Cyberun Cloud documents, docs/openapi.yaml).
///
/// ```swift
/// let client = SwitchyardClient(server: "http://127.0.0.1:8080", token: "sk-…")
/// let task = try await client.run(workflow: "invert", parameters: ["color": 16711680])
/// let finished = try await client.wait(for: task) { event in print(event.kind) }
/// ```
///
/// Every call throws ``SwitchyardAPIError`` for an answer other than the one it expects, carrying the server's
/// `error_message`. Answers of 429 and 503 are retried with backoff (``RetryPolicy``), honouring `Retry-After`.
public struct SwitchyardClient: Sendable {
    /// The server's origin, e.g. `http://127.0.0.1:8080` (without `/api/v1`).
    public let server: String
    /// An `sk-`, `dk-` or session token, sent as `Authorization: Bearer`.
    public let token: String
    /// Sent as `X-Team-ID` when set (session tokens need it on team-scoped routes; keys are bound to their team).
    public var teamId: String?
    public var retry: RetryPolicy
    let http: HTTPClient

    /// A client of the server at `server` (its origin, with or without `/api/v1`) acting with `token` (an `sk-`
    /// or `dk-` key, or a session), in team `teamId` where the call needs one (`X-Team-ID`).
    public init(server: String, token: String, teamId: String? = nil, retry: RetryPolicy = RetryPolicy(), httpClient: HTTPClient = .shared) {
        var origin = server
        while origin.hasSuffix("/") { origin.removeLast() }
        if origin.hasSuffix("/api/v1") { origin.removeLast("/api/v1".count) }
        self.server = origin
        self.token = token
        self.teamId = teamId
        self.retry = retry
        self.http = httpClient
    }

    /// How often and how patiently a call is repeated when the server answers 429 or 503.
    public struct RetryPolicy: Sendable {
        /// Tries in all (1: no retry).
        public var attempts: Int
        /// The first wait; each later one doubles, up to `maximumDelay`. A `Retry-After` header wins when present.
        public var initialDelay: Duration
        public var maximumDelay: Duration

        public init(attempts: Int = 5, initialDelay: Duration = .milliseconds(500), maximumDelay: Duration = .seconds(10)) {
            self.attempts = max(1, attempts)
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }
    }

    // MARK: - Requests

    /// One answer: its status, headers and body.
    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// Sends a request to `/api/v1<path>` and returns the answer, whatever its status, after retrying 429 and 503.
    func call(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: ByteBuffer? = nil, headers: [(String, String)] = [],
        timeout: TimeAmount = .seconds(60)
    ) async throws -> Answer {
        var delay = retry.initialDelay
        var attempt = 1
        while true {
            var request = HTTPClientRequest(url: server + "/api/v1" + path + Self.queryString(query))
            request.method = method
            if !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            request.headers.add(name: "Accept", value: "application/json")
            request.headers.add(name: "User-Agent", value: "switchyard-client")
            if let teamId { request.headers.add(name: "X-Team-ID", value: teamId) }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(body)
            }
            for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
            let response = try await http.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 64 << 20)
            let status = Int(response.status.code)
            guard status == 429 || status == 503, attempt < retry.attempts else {
                return Answer(status: status, headers: response.headers, body: bytes)
            }
            let advised = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds($0) }
            try await Task.sleep(for: min(advised ?? delay, retry.maximumDelay))
            delay = min(delay * 2, retry.maximumDelay)
            attempt += 1
        }
    }

    /// Sends a request and decodes the answer when its status is one of `expecting`; throws ``SwitchyardAPIError``
    /// otherwise.
    func send<Response: Decodable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json body: (any Encodable & Sendable)? = nil,
        headers: [(String, String)] = [], expecting: Set<Int> = [200], as type: Response.Type = Response.self
    ) async throws -> Response {
        let answer = try await call(method, path, query: query, body: try body.map(Self.encode), headers: headers)
        guard expecting.contains(answer.status) else { throw SwitchyardAPIError(answer) }
        do {
            return try Self.decoder.decode(Response.self, from: Data(answer.body.readableBytesView))
        } catch {
            throw SwitchyardAPIError(
                status: answer.status, message: "the answer to \(method) \(path) is not what this client reads: \(error)",
                requestId: answer.headers.first(name: "X-Request-ID"))
        }
    }

    /// Sends a request whose answer body does not matter (204, or `{"is_success": true}`).
    func perform(
        _ method: HTTPMethod, _ path: String, json body: (any Encodable & Sendable)? = nil, expecting: Set<Int> = [200, 204]
    ) async throws {
        let answer = try await call(method, path, body: try body.map(Self.encode))
        guard expecting.contains(answer.status) else { throw SwitchyardAPIError(answer) }
    }

    /// Signs in with an e-mail address and password (`POST /auth/login`) and answers a client that acts with the
    /// session in `teamId`.
    public static func signIn(
        server: String, emailAddress: String, password: String, teamId: String, httpClient: HTTPClient = .shared
    ) async throws -> SwitchyardClient {
        let anonymous = SwitchyardClient(server: server, token: "", httpClient: httpClient)
        struct Session: Decodable { let access_token: String }
        let body: JSONValue = ["email_address": .string(emailAddress), "password": .string(password)]
        let session: Session = try await anonymous.send(.POST, "/auth/login", json: body)
        return SwitchyardClient(server: server, token: session.access_token, teamId: teamId, httpClient: httpClient)
    }

    /// A value as the API writes it (snake_case members, RFC 3339 dates), indented, with a final newline: what the
    /// CLI prints with `--json`.
    public static func json(_ value: some Encodable) throws -> String {
        String(decoding: try encoder(pretty: true).encode(value), as: UTF8.self) + "\n"
    }

    /// Decodes an API answer as the client does (RFC 3339 dates, the models' own member names): for answers fetched
    /// another way, such as an in-process test client's.
    public static func decode<T: Decodable>(_ type: T.Type = T.self, from bytes: some Sequence<UInt8>) throws -> T {
        try decoder.decode(type, from: Data(bytes))
    }

    static func encode(_ value: any Encodable) throws -> ByteBuffer {
        ByteBuffer(bytes: try encoder(pretty: false).encode(value))
    }

    /// The API's JSON: sorted keys, RFC 3339 dates; indented for people when `pretty`.
    private static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }

    /// The API's dates are RFC 3339 with or without fractional seconds.
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not an RFC 3339 date")
            }
            return date
        }
        return decoder
    }()

    static func queryString(_ query: [(String, String)]) -> String {
        guard !query.isEmpty else { return "" }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return "?"
            + query.map { name, value in
                "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
            }.joined(separator: "&")
    }

    /// A path segment as the server reads it: a slug, an id or `slug@version`.
    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// An answer the client did not expect: the HTTP status and the server's `error_message`.
public struct SwitchyardAPIError: Error, CustomStringConvertible, Sendable, Equatable {
    public let status: Int
    /// The server's `error_message` (or a description of what went wrong when the body had none).
    public let message: String
    /// `X-Request-ID` of the answer, for the server's logs.
    public let requestId: String?

    /// An error as the server would answer it.
    public init(status: Int, message: String, requestId: String? = nil) {
        self.status = status
        self.message = message
        self.requestId = requestId
    }

    init(_ answer: SwitchyardClient.Answer) {
        let body = try? JSONValue.parse(answer.body.readableBytesView)
        let message = body?["error_message"]?.stringValue ?? String(buffer: answer.body).prefix(300).description
        self.init(
            status: answer.status, message: message.isEmpty ? "HTTP \(answer.status)" : message,
            requestId: answer.headers.first(name: "X-Request-ID"))
    }

    /// 401 and 403: the key is wrong, revoked, or not allowed to do this.
    public var isAuthorization: Bool { status == 401 || status == 403 }
    public var isNotFound: Bool { status == 404 }

    public var description: String { "\(message) (HTTP \(status))" }
}
