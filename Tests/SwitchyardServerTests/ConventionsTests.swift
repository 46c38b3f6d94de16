import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing
import Yams

@testable import SwitchyardServer

@Suite("API conventions")
struct ConventionsTests {
    @Test("unknown routes are 404 and known paths with another method are 405 with Allow, both as JSON")
    func notFoundAndMethodNotAllowed() async throws {
        try await TestApp.with(.sqlite) { _, client in
            let missing = try await client.execute(uri: "/api/v1/nothing-here", method: .get)
            #expect(missing.status == .notFound)
            #expect(missing.errorMessage == "no route for GET /api/v1/nothing-here")
            #expect(missing.headers[.contentType]?.hasPrefix("application/json") == true)

            let wrongMethod = try await client.execute(uri: "/api/v1/credentials/\(UUID().uuidString)", method: .get)
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers[.allow] == "DELETE")
            #expect(wrongMethod.errorMessage?.contains("allowed: DELETE") == true)

            // A literal segment wins over a capture, as in the router: GET /models/presign is refused for
            // /models/presign's methods, not offered /models/{id}'s GET.
            for (method, path, allowed) in [
                (HTTPRequest.Method.get, "/api/v1/models/presign", "POST"), (.get, "/api/v1/workflows/import", "POST"),
                (.get, "/api/v1/invitations/accept", "POST"), (.put, "/api/v1/r/tasks", "GET, HEAD"),
            ] {
                let refused = try await client.execute(uri: path, method: method)
                #expect(
                    refused.status == .methodNotAllowed && refused.headers[.allow] == allowed, "\(method) \(path): \(refused.headers[.allow] ?? "")")
            }
        }
    }

    @Test("HEAD is answered wherever GET is: same status and headers, no body")
    func head() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let key = app.bootstrap.integrationKey
            let get = try await app.call(client, .get, "/api/v1/r/tasks", token: key)
            let head = try await app.call(client, .head, "/api/v1/r/tasks", token: key)
            #expect(head.status == .ok && get.status == .ok)
            #expect(head.body.readableBytes == 0)
            #expect(head.headers[.contentType] == get.headers[.contentType])
            #expect(head.headers[.contentLength] == String(get.body.readableBytes), "\(head.headers)")
            #expect(try await app.call(client, .head, "/healthz", token: nil).status == .ok)
            let unauthorized = try await app.call(client, .head, "/api/v1/r/tasks", token: nil)
            #expect(unauthorized.status == .unauthorized && unauthorized.body.readableBytes == 0)
            #expect(try await app.call(client, .head, "/api/v1/nothing-here", token: key).status == .notFound)
        }
    }

    @Test("while the database is known to be down, API requests are 503 with Retry-After at once; health checks still answer")
    func databaseDown() async throws {
        let router = Router(context: SwitchyardRequestContext.self)
        router.add(middleware: ErrorMiddleware(routes: { RouteTable([]) }, reachable: { false }))
        router.get("api/v1/r/tasks") { _, _ in "never reached" }
        router.get("healthz") { _, _ in "ok" }
        try await Application(router: router).test(.router) { client in
            let refused = try await client.execute(uri: "/api/v1/r/tasks", method: .get)
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[.retryAfter] == "2")
            #expect(refused.errorMessage?.contains("database is unavailable") == true)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }

    @Test("an oversized body is 413 with an error body")
    func oversizedBody() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let body = ByteBuffer(repeating: UInt8(ascii: " "), count: app.environment.configuration.maxBodySize + 1)
            let response = try await client.execute(uri: "/api/v1/auth/login", method: .post, body: body)
            #expect(response.status == .contentTooLarge)
            #expect(response.errorMessage == "request body is too large")
        }
    }

    @Test("every response carries a request id; a caller's plain id is echoed, an odd one replaced")
    func requestIDs() async throws {
        try await TestApp.with(.sqlite) { _, client in
            let generated = try await client.execute(uri: "/healthz", method: .get)
            #expect(generated.headers[HTTPField.Name("X-Request-ID")!]?.count == 36)
            let echoed = try await client.execute(uri: "/healthz", method: .get, headers: [HTTPField.Name("X-Request-ID")!: "trace-42"])
            #expect(echoed.headers[HTTPField.Name("X-Request-ID")!] == "trace-42")
            let replaced = try await client.execute(uri: "/healthz", method: .get, headers: [HTTPField.Name("X-Request-ID")!: "bad id\n"])
            #expect(replaced.headers[HTTPField.Name("X-Request-ID")!] != "bad id\n")
        }
    }

    @Test("an unexpected failure is an opaque 500 naming only the request id; /readyz reports the database")
    func internalErrors() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
            try await app.storage.close()
            let response = try await client.execute(uri: "/api/v1/users/me", method: .get, headers: authHeaders(session))
            #expect(response.status == .internalServerError)
            let body = try response.json()
            let requestID = try #require(body["request_id"]?.stringValue)
            #expect(body["error_message"]?.stringValue == "internal server error (request id \(requestID))")
            #expect(response.headers[HTTPField.Name("X-Request-ID")!] == requestID)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(ready.errorMessage?.contains("sqlite") == true)
        }
    }

    @Test(
        "pagination: out-of-range values are 400, a page past the end is empty with the total",
        arguments: [
            ("current_page=0", 400), ("current_page=-3", 400), ("current_page=abc", 400), ("per_page=0", 400), ("per_page=101", 400),
            ("per_page=1", 200), ("per_page=100", 200), ("current_page=50&per_page=1", 200),
        ]
    )
    func pagination(query: String, status: Int) async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let response = try await client.execute(
                uri: "/api/v1/credentials?\(query)", method: .get, headers: authHeaders(session, team: app.bootstrap.teamId))
            #expect(Int(response.status.code) == status)
            if status == 200 {
                let meta = try #require(try response.json()["page_meta"]?.objectValue?.compactMapValues(\.intValue))
                #expect(meta["total_count"] == 2)
                let items = try #require(try response.json()["credentials"]?.arrayValue)
                #expect(items.count == max(0, min(meta["per_page"]!, 2 - (meta["current_page"]! - 1) * meta["per_page"]!)))
            } else {
                #expect(response.errorMessage?.contains(query.split(separator: "=")[0]) == true)
            }
        }
    }

    @Test("docs/openapi.yaml is YAML that parses, describes every route and nothing else, and is served as YAML and as JSON")
    func openAPIComplete() async throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOf: repository.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        let parsed = try jsonValue(fromYAML: try #require(try Yams.load(yaml: document)))
        #expect(parsed["openapi"]?.stringValue == "3.1.0")
        let paths = try #require(parsed["paths"]?.objectValue)
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]
        let documentedRoutes = Set(
            paths.flatMap { path, item in (item.objectValue ?? [:]).keys.filter(methods.contains).map { "\($0.uppercased()) \(path)" } })
        try await TestApp.with(.sqlite) { app, client in
            let documented = documentedRoutes
            let registered = Set(app.built.routes.entries.map { "\($0.method) \($0.path)" })
            #expect(registered.count > 5)
            let undocumented = registered.subtracting(documented)
            #expect(undocumented.isEmpty, "routes missing from docs/openapi.yaml: \(undocumented.sorted())")
            let stale = documented.subtracting(registered)
            #expect(stale.isEmpty, "docs/openapi.yaml lists routes that do not exist: \(stale.sorted())")
            let served = try await client.execute(uri: "/api/v1/openapi.yaml", method: .get)
            #expect(served.status == .ok)
            #expect(String(buffer: served.body) == document)
            let json = try await client.execute(uri: "/api/v1/openapi.json", method: .get)
            #expect(json.status == .ok && json.headers[.contentType] == "application/json")
            #expect(try json.json() == parsed)
        }
    }
}

@Suite("Start-up and configuration")
struct StartupTests {
    @Test(
        "the session-signing secret and the embedded store's secret key are stored sealed with the secrets key; a value stored in clear by an older version is sealed in place and stays the same secret",
        arguments: TestBackend.available)
    func sealedSettings(backend: TestBackend) async throws {
        try await TestEnvironment.with(backend) { environment in
            let legacy = Data((0..<64).map { UInt8($0) }).base64EncodedString()
            try await environment.withStorage { storage in
                _ = try await storage.settingInsertingIfAbsent(SettingKey.sessionSigningSecret, value: legacy)
                let built = try await buildApplication(configuration: environment.configuration, storage: storage, logger: testLogger)
                try await built.application.test(.router) { _ in }
                let box = try SecretBox.load(configuration: environment.configuration)
                let session = try #require(try await storage.setting(SettingKey.sessionSigningSecret))
                #expect(session.hasPrefix("v1.") && !session.contains(legacy))
                #expect(try box.open(session, boundTo: SecretBox.binding(forSetting: SettingKey.sessionSigningSecret)) == legacy)
                let s3 = try #require(try await storage.setting(SettingKey.embeddedS3SecretAccessKey))
                let s3Secret = try #require(built.objectStore?.access.credentials.secretAccessKey)
                #expect(s3.hasPrefix("v1.") && !s3.contains(s3Secret))
                #expect(try box.open(s3, boundTo: SecretBox.binding(forSetting: SettingKey.embeddedS3SecretAccessKey)) == s3Secret)
                // A sealed value does not open as another setting.
                #expect(throws: (any Error).self) { try box.open(s3, boundTo: SecretBox.binding(forSetting: SettingKey.sessionSigningSecret)) }
            }
            // A restart reads the sealed values back: the same store key.
            try await environment.withStorage { storage in
                let again = try await buildApplication(configuration: environment.configuration, storage: storage, logger: testLogger)
                try await again.application.test(.router) { _ in }
                let s3 = try #require(try await storage.setting(SettingKey.embeddedS3SecretAccessKey))
                let box = try SecretBox.load(configuration: environment.configuration)
                #expect(
                    try box.open(s3, boundTo: SecretBox.binding(forSetting: SettingKey.embeddedS3SecretAccessKey))
                        == again.objectStore?.access.credentials.secretAccessKey)
            }
        }
    }

    @Test("a data directory and SQLite files that exist with wide permissions are narrowed to 0700 / 0600 at start; new files are the owner's only")
    func dataPermissions() async throws {
        try await TestEnvironment.with(.sqlite) { environment in
            let configuration = environment.configuration
            let manager = FileManager.default
            try manager.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: configuration.dataDirectory)
            #expect(manager.createFile(atPath: configuration.sqlitePath, contents: nil, attributes: [.posixPermissions: 0o644]))
            try await environment.withStorage { storage in
                try await buildApplication(configuration: configuration, storage: storage, logger: testLogger).application.test(.router) { _ in }
                let mode = { (path: String) in (try? manager.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue }
                #expect(mode(configuration.dataDirectory) == 0o700)
                #expect(mode(configuration.sqlitePath) == 0o600)
                #expect(mode(configuration.sqlitePath + "-wal") == 0o600)
                #expect(mode(configuration.bootstrapFilePath) == 0o600)
                let secretsKey = (configuration.dataDirectory as NSString).appendingPathComponent("secrets.key")
                #expect(mode(secretsKey) == 0o600)
            }
        }
    }

    @Test("first start bootstraps once and writes bootstrap.json (0600); a restart keeps everything", arguments: TestBackend.available)
    func restartPersistence(backend: TestBackend) async throws {
        try await TestEnvironment.with(backend) { environment in
            let first: BootstrapResult = try await environment.withStorage { storage in
                let printed = PrintedSecrets()
                let built = try await buildApplication(configuration: environment.configuration, storage: storage, logger: testLogger) {
                    printed.record($0)
                }
                try await built.application.test(.router) { _ in }
                let result = try #require(built.bootstrap)
                #expect(printed.results == [result])
                return result
            }
            let path = environment.configuration.bootstrapFilePath
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            let file = try #require(try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path))).stringDictionary)
            #expect(
                Set(file.keys) == [
                    "email_address", "password", "team_id", "integration_key", "agent_key", "s3_endpoint", "s3_bucket", "s3_region",
                    "s3_access_key_id", "s3_secret_access_key",
                ])
            #expect(file["integration_key"] == first.integrationKey)
            #expect(file["s3_secret_access_key"] == first.objectStore?.credentials.secretAccessKey && file["s3_bucket"] == "switchyard")
            #expect(file["team_id"] == first.teamId.lowercased)

            // Restarted with the embedded store on another port: the file follows it.
            var movedConfiguration = environment.configuration
            movedConfiguration.embeddedS3Port = 18_071
            let moved = movedConfiguration
            try await environment.withStorage { storage in
                let printed = PrintedSecrets()
                let built = try await buildApplication(configuration: moved, storage: storage, logger: testLogger) {
                    printed.record($0)
                }
                try await built.application.test(.router) { _ in }
                #expect(built.bootstrap == nil)
                #expect(printed.results.isEmpty)
                #expect(built.objectStore?.access.credentials == first.objectStore?.credentials, "the store's key pair survives restarts")
                let refreshed = try #require(
                    try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path))).stringDictionary)
                #expect(refreshed["s3_endpoint"] == built.objectStore?.access.endpoint && refreshed["s3_endpoint"]?.hasSuffix(":18071") == true)
                #expect(refreshed["password"] == file["password"] && refreshed["agent_key"] == file["agent_key"])
                let caller = try await built.authenticator.authenticate(
                    authorization: "Bearer \(first.integrationKey)", teamHeader: nil, surface: .runtime)
                #expect(caller.teamId == first.teamId)
                try await built.application.test(.router) { client in
                    let login = try await client.execute(
                        uri: "/api/v1/auth/login", method: .post,
                        body: ByteBuffer(string: #"{"email_address":"\#(first.emailAddress)","password":"\#(first.password)"}"#))
                    #expect(login.status == .ok)
                }
            }
        }
    }

    @Test("configuration: flags beat environment beat file beat defaults; bad values fail with the key named")
    func configurationPrecedence() throws {
        let env = EnvironmentVariablesProvider(
            environmentVariables: ["SWITCHYARD_HTTP_PORT": "9000", "SWITCHYARD_DATABASE_URL": "postgres://u:p@db/x", "SWITCHYARD_LOG_LEVEL": "debug"]
        ).prefixKeys(with: "switchyard")
        let file = InMemoryProvider(values: ["http.port": 7000, "http.host": "0.0.0.0", "data.dir": "/srv/sy"])
        let flags = InMemoryProvider(values: ["log.level": "error"])
        let configuration = try ServerConfiguration(reader: ConfigReader(providers: [flags, env, file]))
        #expect(configuration.port == 9000)
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.dataDirectory == "/srv/sy")
        #expect(configuration.databaseURL == "postgres://u:p@db/x")
        #expect(configuration.logLevel == "error")
        #expect(configuration.adminEmail == "admin@localhost")
        #expect(configuration.cacheTTL == 1)
        #expect(try ServerConfiguration(reader: ConfigReader(provider: InMemoryProvider(values: ["cache.ttl": 0]))).cacheTTL == 0)

        let cases: [([String: String], String)] = [
            (["SWITCHYARD_HTTP_PORT": "eighty"], "http.port: \"eighty\" is not an integer"),
            (["SWITCHYARD_HTTP_PORT": "70000"], "http.port: 70000 is outside 0–65535"),
            (["SWITCHYARD_DATABASE_URL": "mysql://x"], "database.url must start with postgres:// (omit it for the embedded SQLite database)"),
            (["SWITCHYARD_DATABASE_MIGRATE": "maybe"], "database.migrate: \"maybe\" is not true or false"),
            (["SWITCHYARD_AUTH_BCRYPT_COST": "3"], "auth.bcryptCost: 3 is outside 4–31"),
            (["SWITCHYARD_CACHE_TTL": "301"], "cache.ttl: 301 is outside 0–300 seconds"),
            (["SWITCHYARD_CACHE_TTL": "-1"], "cache.ttl: -1 is outside 0–300 seconds"),
            (["SWITCHYARD_S3_BUCKET": "Bad_Bucket"], #"s3.bucket: "Bad_Bucket" is not a valid bucket name (3–63 of a-z 0-9 . -)"#),
            (["SWITCHYARD_S3_PUBLIC_ENDPOINT": "ftp://x"], #"s3.publicEndpoint: "ftp://x" is not an http(s)://host[:port] origin"#),
            (["SWITCHYARD_S3_EMBEDDED_PORT": "70000"], "s3.embeddedPort: 70000 is outside 0–65535"),
            (["SWITCHYARD_UPLOADS_MAX_FILE_SIZE": "0"], "uploads.maxFileSize: 0 is outside 1–5368709120 bytes (S3's single-PUT limit)"),
            (["SWITCHYARD_UPLOADS_PRESIGN_TTL": "30"], "uploads.presignTtl: 30 is outside 60–604800 seconds"),
            (["SWITCHYARD_RETENTION_INPUTS": "-1"], "retention.inputs: -1 is negative (0 keeps forever)"),
            (["SWITCHYARD_RETENTION_INTERVAL": "5"], "retention.interval: 5 is outside 10–86400 seconds"),
            (["SWITCHYARD_S3_ENDPOINT": "s3.example.com"], #"s3.endpoint: "s3.example.com" is not an http(s)://host[:port] origin"#),
            (["SWITCHYARD_S3_ENDPOINT": "https://s3.example.com"], "s3.endpoint is set, so s3.accessKey and s3.secretKey are required"),
        ]
        for (variables, message) in cases {
            let reader = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: variables).prefixKeys(with: "switchyard"))
            #expect(throws: ServerConfiguration.Invalid.self) { try ServerConfiguration(reader: reader) }
            do {
                _ = try ServerConfiguration(reader: reader)
            } catch let error as ServerConfiguration.Invalid {
                #expect(error.description == message)
            }
        }
    }
}

/// Collects what the bootstrap callback was given.
final class PrintedSecrets: @unchecked Sendable {
    // Safe: only touched under `lock`.
    private let lock = NSLock()
    private var stored: [BootstrapResult] = []
    func record(_ result: BootstrapResult) { lock.withLock { stored.append(result) } }
    var results: [BootstrapResult] { lock.withLock { stored } }
}
