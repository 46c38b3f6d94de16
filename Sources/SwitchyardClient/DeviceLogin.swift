import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchyardCore

/// What `switchyard login` keeps: the device key for the CLI, its companion agent key for `switchyard agent`.
public struct StoredLogin: Codable, Sendable, Equatable {
    public var server: String
    public var teamId: String
    public var deviceKey: String
    public var agentKey: String?
    public var pairedAt: Date

    enum CodingKeys: String, CodingKey {
        case server
        case teamId = "team_id"
        case deviceKey = "device_key"
        case agentKey = "agent_key"
        case pairedAt = "paired_at"
    }

    /// A login as `switchyard login` stores it.
    public init(server: String, teamId: String, deviceKey: String, agentKey: String?, pairedAt: Date) {
        self.server = server
        self.teamId = teamId
        self.deviceKey = deviceKey
        self.agentKey = agentKey
        self.pairedAt = pairedAt
    }

    /// `$SWITCHYARD_CREDENTIALS`, else `$XDG_CONFIG_HOME/switchyard/credentials.json`, else `~/.config/switchyard/credentials.json`.
    public static var defaultPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["SWITCHYARD_CREDENTIALS"], !path.isEmpty { return path }
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.config")
        return base + "/switchyard/credentials.json"
    }

    /// The stored login at `path`; nil when there is none.
    public static func load(from path: String = defaultPath) throws -> StoredLogin? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(StoredLogin.self, from: data)
    }

    /// Writes the file readable by its owner only (0600, directory 0700).
    public func save(to path: String = defaultPath) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self)
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        try data.write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }
}

/// The device-pairing flow of api.md §2.10 from the device's side.
public struct DeviceLogin: Sendable {
    public struct Started: Sendable, Equatable {
        public var deviceCode: String
        public var userCode: String
        public var verificationURI: String
        public var expiresIn: Int
        public var interval: Int
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case expired
        case server(status: Int, message: String)

        public var description: String {
            switch self {
            case .expired: "the pairing code expired before it was confirmed; run switchyard login again"
            case .server(let status, let message): "the server answered \(status): \(message)"
            }
        }
    }

    /// The server's origin, e.g. `http://127.0.0.1:8080`.
    public var server: String { api.server }
    /// The SDK's transport, tried once per call: a 429 here is the flow's `slow_down`, which this type handles.
    let api: SwitchyardClient

    /// Pairing with the server at `server` (its origin, with or without `/api/v1`).
    public init(server: String, client: HTTPClient = .shared) {
        api = SwitchyardClient(server: server, token: "", retry: .init(attempts: 1), httpClient: client)
    }

    /// `POST /desktop/pair/start`: the codes to show the person who approves this device.
    public func start() async throws -> Started {
        // The approval page shows this name, so the person approving can tell this machine from another.
        let name = String(String.UnicodeScalarView(ProcessInfo.processInfo.hostName.unicodeScalars.filter { $0.value >= 0x20 }).prefix(100))
        let json: JSONValue = name.isEmpty ? [:] : ["device_name": .string(name)]
        let body = try await post("/desktop/pair/start", json: json, expecting: [200])
        guard let deviceCode = body["device_code"]?.stringValue, let userCode = body["user_code"]?.stringValue,
            let uri = body["verification_uri"]?.stringValue
        else { throw Failure.server(status: 200, message: "the pairing answer lacks device_code or user_code") }
        return Started(
            deviceCode: deviceCode, userCode: userCode, verificationURI: uri, expiresIn: body["expires_in"]?.numberValue?.intValue ?? 300,
            interval: max(1, body["interval"]?.numberValue?.intValue ?? 2))
    }

    /// Polls until the pairing is confirmed (then returns the keys) or expires.
    public func waitForApproval(_ started: Started, now: @Sendable () -> Date = Date.init) async throws -> StoredLogin {
        let deadline = now().addingTimeInterval(TimeInterval(started.expiresIn))
        var interval = started.interval
        while now() < deadline {
            try await Task.sleep(for: .seconds(interval))
            let (status, body) = try await request("/desktop/pair/poll", json: ["device_code": .string(started.deviceCode)])
            if status == 404 { throw Failure.expired }
            // RFC 8628 slow_down: poll less often from now on, by what the server says.
            if status == 429, body["status"]?.stringValue == "slow_down" {
                interval = max(interval + 5, body["interval"]?.numberValue?.intValue ?? 0)
                continue
            }
            guard status == 200 else { throw Failure.server(status: status, message: body["error_message"]?.stringValue ?? "") }
            guard body["status"]?.stringValue == "approved" else { continue }
            guard let deviceKey = body["raw_key"]?.stringValue, let teamId = body["team_id"]?.stringValue else {
                throw Failure.server(status: 200, message: "the approved pairing lacks raw_key")
            }
            return StoredLogin(server: server, teamId: teamId, deviceKey: deviceKey, agentKey: body["agent_key"]?.stringValue, pairedAt: now())
        }
        throw Failure.expired
    }

    /// `POST /auth/device/revoke` with the stored device key (its companion agent key ends with it).
    public func revoke(deviceKey: String) async throws {
        _ = try await post("/auth/device/revoke", json: [:], expecting: [200], token: deviceKey)
    }

    private func post(_ path: String, json: JSONValue, expecting: Set<Int>, token: String? = nil) async throws -> JSONValue {
        let (status, body) = try await request(path, json: json, token: token)
        guard expecting.contains(status) else { throw Failure.server(status: status, message: body["error_message"]?.stringValue ?? "") }
        return body
    }

    private func request(_ path: String, json: JSONValue, token: String? = nil) async throws -> (Int, JSONValue) {
        let caller = token.map { SwitchyardClient(server: server, token: $0, retry: api.retry, httpClient: api.http) } ?? api
        let answer = try await caller.call(.POST, path, body: try SwitchyardClient.encode(json), timeout: .seconds(30))
        return (answer.status, (try? JSONValue.parse(answer.body.readableBytesView)) ?? [:])
    }
}
