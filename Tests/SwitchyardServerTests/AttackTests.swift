import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import SwitchyardCore
import SwitchyardObjectStore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

/// Attack classes (issue 15, item 7): what an attacker with a valid credential of another team, a forged token or
/// a crafted object key would try.
@Suite("Attack classes")
struct AttackTests {
    /// A second team with an owner, that owner's `dk-` key (management routes) and an `sk-` key (runtime routes).
    static func intruder(_ app: TestApp) async throws -> (device: String, integration: String) {
        let now = app.clock.now()
        let user = User(
            id: UUIDv7.make(at: now), emailAddress: "intruder-\(UUID().uuidString.prefix(8))@example.com", displayName: "Intruder",
            passwordHash: "x", createdAt: now, updatedAt: now)
        try await app.storage.insertUser(user)
        let team = Team(id: UUIDv7.make(at: now), displayName: "Intruders", createdAt: now, updatedAt: now)
        try await app.storage.insertTeam(team, owner: Membership(teamId: team.id, userId: user.id, role: .owner, createdAt: now))
        let device = try await app.insertKey(.device, teamId: team.id, userId: user.id)
        let integration = try await app.insertKey(.integration, teamId: team.id)
        return (device.secret, integration.secret)
    }

    @Test(
        "another team's models, webhooks (detail, deliveries, redeliver), task events, results, cancel and agents answer exactly like missing ones",
        arguments: TestBackend.available)
    func crossTeam(backend: TestBackend) async throws {
        try await TestApp.with(backend, configure: WebhooksTests.stepped) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            // Team A's resources: a model, a webhook with a delivery, a task with events.
            _ = try await app.uploadModel(client, token: session, bytes: Array("weights".utf8))
            let models = try await app.call(client, .get, "/api/v1/models", token: session, team: team).json()
            let modelId = try #require((models["model_list"]?.arrayValue)?.first?["id"]?.stringValue)
            let webhook = try await app.call(
                client, .post, "/api/v1/webhooks", token: session, team: team,
                body: #"{"display_name":"A","webhook_url":"http://127.0.0.1:9/hook","webhook_events":["task.cancelled"]}"#)
            let webhookId = try #require(try webhook.json()["id"]?.stringValue)
            _ = try? await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let task = try await app.run(client)
            let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(task.lowercased)/cancel", token: app.bootstrap.integrationKey)
            #expect(cancel.status == .ok)
            let deliveries = try await app.call(client, .get, "/api/v1/webhooks/\(webhookId)/deliveries", token: session, team: team).json()
            let deliveryId = try #require((deliveries["delivery_list"]?.arrayValue)?.first?["id"]?.stringValue)

            let intruder = try await Self.intruder(app)
            let missing = UUID().lowercased
            let probes: [(HTTPRequest.Method, String, String, String?)] = [
                (.get, "/api/v1/models/\(modelId)", intruder.device, nil),
                (.put, "/api/v1/models/\(modelId)", intruder.device, #"{"display_name":"mine"}"#),
                (.delete, "/api/v1/models/\(modelId)", intruder.device, nil),
                (.get, "/api/v1/webhooks/\(webhookId)", intruder.device, nil),
                (.put, "/api/v1/webhooks/\(webhookId)", intruder.device, #"{"webhook_status":"disabled"}"#),
                (.post, "/api/v1/webhooks/\(webhookId)/rotate-secret", intruder.device, nil),
                (.get, "/api/v1/webhooks/\(webhookId)/deliveries", intruder.device, nil),
                (.get, "/api/v1/webhooks/\(webhookId)/deliveries/\(deliveryId)", intruder.device, nil),
                (.post, "/api/v1/webhooks/\(webhookId)/deliveries/\(deliveryId)/redeliver", intruder.device, nil),
                (.get, "/api/v1/r/tasks/\(task.lowercased)", intruder.integration, nil),
                (.get, "/api/v1/r/tasks/\(task.lowercased)/events", intruder.integration, nil),
                (.get, "/api/v1/r/tasks/\(task.lowercased)/result", intruder.integration, nil),
                (.post, "/api/v1/r/tasks/\(task.lowercased)/cancel", intruder.integration, nil),
            ]
            for (method, path, token, body) in probes {
                let theirs = try await app.call(client, method, path, token: token, body: body)
                let ids = [modelId, webhookId, deliveryId, task.lowercased]
                var missingPath = path
                for id in ids { missingPath = missingPath.replacingOccurrences(of: id, with: missing) }
                let absent = try await app.call(client, method, missingPath, token: token, body: body)
                #expect(theirs.status == .notFound, "\(method) \(path)")
                #expect(theirs.status == absent.status, "\(method) \(path)")
                var message = theirs.errorMessage ?? ""
                for id in ids { message = message.replacingOccurrences(of: id, with: missing) }
                #expect(message == absent.errorMessage ?? "", "\(method) \(path): \(message) vs \(absent.errorMessage ?? "")")
            }
            // Lists show nothing of team A.
            for (path, token, field) in [
                ("/api/v1/models", intruder.device, "model_list"), ("/api/v1/webhooks", intruder.device, "webhook_list"),
                ("/api/v1/r/tasks", intruder.integration, "task_list"), ("/api/v1/r/agents", intruder.integration, "agent_list"),
            ] {
                let list = try await app.call(client, .get, path, token: token).json()
                #expect((list[field]?.arrayValue)?.isEmpty == true, "\(path)")
            }
            // And A's things are untouched.
            #expect(try await app.call(client, .get, "/api/v1/models/\(modelId)", token: session, team: team).status == .ok)
            let still = try await app.call(client, .get, "/api/v1/webhooks/\(webhookId)", token: session, team: team).json()
            #expect(still["webhook_status"]?.stringValue == "active")
        }
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    @Test("forged session tokens are refused: alg none, a tampered payload, another key's signature, another algorithm, an expired one")
    func forgedTokens() async throws {
        try await TestApp.with(.sqlite) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: session).status == .ok)
            let parts = session.split(separator: ".")
            try #require(parts.count == 3)
            let payload = try #require(Self.decodeBase64URL(parts[1]))
            var claims = try #require(try JSONValue.parse(payload).objectValue)

            let noneHeader = Self.base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
            let unsigned = "\(noneHeader).\(parts[1])."
            // Another user id in the payload, the original signature kept.
            claims["sub"] = .string(UUID().lowercased)
            let tamperedPayload = Self.base64URL(Data(JSONValue.object(claims).serialized()))
            let tampered = "\(parts[0]).\(tamperedPayload).\(parts[2])"
            // A well-formed HS256 token signed with a key that is not the server's.
            let signingInput = "\(parts[0]).\(parts[1])"
            let otherKey = SymmetricKey(size: .bits256)
            let foreignSignature = Self.base64URL(Data(HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: otherKey)))
            let foreign = "\(signingInput).\(foreignSignature)"
            // The same claims under HS512 / RS256 headers with the original signature.
            let hs512 = "\(Self.base64URL(Data(#"{"alg":"HS512","typ":"JWT"}"#.utf8))).\(parts[1]).\(parts[2])"
            let rs256 = "\(Self.base64URL(Data(#"{"alg":"RS256","typ":"JWT"}"#.utf8))).\(parts[1]).\(parts[2])"
            for forged in [unsigned, "\(noneHeader).\(parts[1])", tampered, foreign, hs512, rs256, session + "x"] {
                let answer = try await app.call(client, .get, "/api/v1/credentials", token: forged, team: team)
                #expect(answer.status == .unauthorized, "\(forged.prefix(40))…")
            }
            // The genuine token, once its lifetime has passed.
            app.clock.advance(by: 13 * 3600)
            #expect(try await app.call(client, .get, "/api/v1/users/me", token: session).status == .unauthorized)
        }
    }

    @Test("object keys with ../, %2e%2e or NUL never reach a file outside the bucket on the embedded store, signed or not")
    func objectKeyTraversal() async throws {
        try await TestApp.with(.sqlite, live: true) { app, _ in
            let access = try #require(app.bootstrap.objectStore)
            let origin = try #require(S3Origin(access.endpoint))
            let store = S3Client(
                configuration: S3Configuration(origin: origin, bucket: access.bucket, region: access.region, credentials: access.credentials))
            let secretsKey = try String(
                contentsOfFile: (app.environment.configuration.dataDirectory as NSString).appendingPathComponent("secrets.key"), encoding: .utf8
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            let port = app.environment.configuration.embeddedS3Port
            for key in ["../secrets.key", "../../secrets.key", "%2e%2e/secrets.key", "..%2fsecrets.key", "a/../../secrets.key", "x\u{0}y"] {
                let url = store.presignedGet(key: key, expires: 300, now: app.clock.now())
                let path = String(url.drop(while: { $0 != "/" }).dropFirst(2).drop(while: { $0 != "/" }))
                let connection = try await RawConnection(
                    port: port, sending: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
                let answer = try await connection.untilClosed()
                #expect(answer.hasPrefix("HTTP/1.1 4"), "\(key): \(answer.prefix(60))")
                #expect(!answer.contains(secretsKey), "\(key)")
            }
        }
    }
}
