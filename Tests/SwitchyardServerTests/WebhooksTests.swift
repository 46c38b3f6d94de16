import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardClient
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardServer

@Suite("Webhooks")
struct WebhooksTests {
    @Test("signature vectors: Standard Webhooks' published example and Cyberun's hex HMAC of the raw body")
    func signatureVectors() {
        // The example of the Standard Webhooks specification (github.com/standard-webhooks/standard-webhooks).
        let standard = WebhookSignature.standard(
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
            body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(standard == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        // Python: hmac.new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body, sha256).hexdigest()
        let cyberun = WebhookSignature.cyberun(
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body: Array(#"{"event_type":"task.completed"}"#.utf8))
        #expect(cyberun == "sha256=9380d1f227849f5019b69576f7125f0e2710c016431fcaa1c5a2ed9305bbc44f")
        let secret = WebhookSignature.makeSecret()
        #expect(secret.hasPrefix("whsec_") && Data(base64Encoded: String(secret.dropFirst(6)))?.count == 32)
    }

    @Test("URL rules: https only; http and loopback only with allowInsecure; private networks only when allowed")
    func urlRules() throws {
        let strict = WebhookTargetPolicy()
        let local = WebhookTargetPolicy(allowInsecureLoopback: true)
        let privateOK = WebhookTargetPolicy(allowPrivateNetworks: true)
        let cases: [(String, WebhookTargetPolicy, Bool)] = [
            ("https://hooks.example.com/x", strict, true),
            ("http://hooks.example.com/x", strict, false),
            ("http://hooks.example.com/x", local, false),
            ("ftp://hooks.example.com/x", strict, false),
            ("https://user:pw@hooks.example.com/x", strict, false),
            ("https://127.0.0.1/x", strict, false),
            ("https://localhost/x", strict, false),
            ("http://127.0.0.1:9000/x", local, true),
            ("http://[::1]:9000/x", local, true),
            ("http://localhost:9000/x", local, true),
            ("https://10.1.2.3/x", strict, false),
            ("https://10.1.2.3/x", privateOK, true),
            ("https://192.168.1.10/x", strict, false),
            ("https://172.20.0.1/x", strict, false),
            ("https://169.254.169.254/latest/meta-data", strict, false),
            ("https://169.254.169.254/latest/meta-data", privateOK, true),
            ("https://[fd00::1]/x", strict, false),
            ("https://[::ffff:10.0.0.1]/x", strict, false),
            ("https://0.0.0.0/x", local, false),
            ("https://8.8.8.8/x", strict, true),
            ("https://" + String(repeating: "a", count: 2050) + ".com", strict, false),
        ]
        for (url, policy, accepted) in cases {
            let passed = (try? policy.validate(url)) != nil
            #expect(passed == accepted, "\(url)")
        }
        #expect(throws: SwitchyardError.self) { try strict.validate("http://example.com") }
    }

    @Test("create, list, detail, update, rotate, delete; bad input is a 400 naming the field", arguments: TestBackend.available)
    func crud(backend: TestBackend) async throws {
        try await TestApp.with(backend) { app, client in
            let session = try await app.ownerSession(client)
            let team = app.bootstrap.teamId
            let bad: [(String, String)] = [
                (#"{"webhook_url":"https://a.example.com","webhook_events":["task.failed"]}"#, "display_name"),
                (#"{"display_name":"x","webhook_url":"http://a.example.com","webhook_events":["task.failed"]}"#, "https://"),
                (#"{"display_name":"x","webhook_url":"https://a.example.com","webhook_events":[]}"#, "at least one"),
                (#"{"display_name":"x","webhook_url":"https://a.example.com","webhook_events":["task.running"]}"#, "task.running"),
                (#"{"display_name":"x","webhook_url":"https://10.0.0.5/h","webhook_events":["task.failed"]}"#, "private network"),
            ]
            for (body, needle) in bad {
                let response = try await app.call(client, .post, "/api/v1/webhooks", token: session, team: team, body: body)
                #expect(response.status == .badRequest, "\(body)")
                #expect(response.errorMessage?.contains(needle) == true, "\(response.errorMessage ?? "")")
            }
            let created = try await app.call(
                client, .post, "/api/v1/webhooks", token: session, team: team,
                body: #"{"display_name":"CI","webhook_url":"https://hooks.example.com/in","webhook_events":["task.completed","task.failed"]}"#)
            #expect(created.status == .created)
            let id = try #require(created.json()["id"]?.stringValue)
            let secret = try #require(created.json()["webhook_secret"]?.stringValue)
            #expect(secret.hasPrefix("whsec_"))

            let detail = try await app.call(client, .get, "/api/v1/webhooks/\(id)", token: session, team: team).json()
            #expect(detail["webhook_secret"]?.stringValue == secret)
            #expect(detail["webhook_status"]?.stringValue == "active")
            #expect(detail["webhook_events"]?.stringArray == ["task.completed", "task.failed"])
            let list = try await app.call(client, .get, "/api/v1/webhooks", token: session, team: team)
            #expect(!String(buffer: list.body).contains(secret))
            #expect((try list.json()["webhook_list"]?.arrayValue)?.count == 1)

            // Stored encrypted: neither the secret nor its base64 appears in the row.
            let stored = try #require(try await app.storage.webhook(id: UUID(uuidString: id)!, teamId: team))
            #expect(!stored.sealedSecret.contains(secret.dropFirst(6)) && stored.sealedSecret.hasPrefix("v1."))

            let updated = try await app.call(
                client, .put, "/api/v1/webhooks/\(id)", token: session, team: team,
                body: #"{"webhook_events":["task.cancelled"],"webhook_status":"disabled"}"#)
            #expect(updated.status == .ok)
            let after = try await app.call(client, .get, "/api/v1/webhooks/\(id)", token: session, team: team).json()
            #expect(after["webhook_events"]?.stringArray == ["task.cancelled"])
            #expect(after["webhook_status"]?.stringValue == "disabled")
            #expect(after["display_name"]?.stringValue == "CI")

            let rotated = try await app.call(client, .post, "/api/v1/webhooks/\(id)/rotate-secret", token: session, team: team).json()
            let newSecret = try #require(rotated["webhook_secret"]?.stringValue)
            #expect(newSecret != secret)
            #expect(
                try await app.call(client, .get, "/api/v1/webhooks/\(id)", token: session, team: team).json()["webhook_secret"]?.stringValue
                    == newSecret)

            let deleted = try await app.call(client, .delete, "/api/v1/webhooks/\(id)", token: session, team: team)
            #expect(deleted.status == .noContent)
            #expect(try await app.call(client, .get, "/api/v1/webhooks/\(id)", token: session, team: team).status == .notFound)
        }
    }

    /// Creates a webhook to the receiver for `events` and returns its id and secret.
    func createWebhook(_ app: TestApp, _ client: any TestClientProtocol, port: Int, events: String) async throws -> (id: String, secret: String) {
        let session = try await app.ownerSession(client)
        let response = try await app.call(
            client, .post, "/api/v1/webhooks", token: session, team: app.bootstrap.teamId,
            body: #"{"display_name":"receiver","webhook_url":"http://127.0.0.1:\#(port)/hook","webhook_events":[\#(events)]}"#)
        guard response.status == .created else { throw TestSupportError("create webhook: \(response.status) \(String(buffer: response.body))") }
        return (try #require(response.json()["id"]?.stringValue), try #require(response.json()["webhook_secret"]?.stringValue))
    }

    /// Runs a task (no agent: it waits) and cancels it, which ends it.
    func cancelledTask(_ app: TestApp, _ client: any TestClientProtocol) async throws -> UUID {
        let session = try await app.ownerSession(client)
        _ = try? await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
        let task = try await app.run(client)
        let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(task.lowercased)/cancel", token: app.bootstrap.integrationKey)
        guard cancel.status == .ok else { throw TestSupportError("cancel: \(cancel.status)") }
        return task
    }

    /// Sends what is due (the background sender is off in these tests, so this is the only sender) and returns the
    /// webhook's delivery log.
    func deliveryLog(_ app: TestApp, _ client: any TestClientProtocol, webhook: String) async throws -> [DeliveryInfo] {
        await app.built.webhookSender.drain()
        let session = try await app.ownerSession(client)
        let log = try await app.call(client, .get, "/api/v1/webhooks/\(webhook)/deliveries", token: session, team: app.bootstrap.teamId)
        return try log.decode(Page<DeliveryInfo>.self).items
    }

    /// Loopback targets allowed; the sender sends only when the test drains it.
    static let stepped: @Sendable (inout ServerConfiguration) -> Void = { configuration in
        configuration.webhooks.policy = WebhookTargetPolicy(allowInsecureLoopback: true)
        configuration.webhooks.sendsInBackground = false
    }

    func rotateSecret(_ app: TestApp, _ client: any TestClientProtocol, webhook: String) async throws -> String {
        let session = try await app.ownerSession(client)
        let response = try await app.call(client, .post, "/api/v1/webhooks/\(webhook)/rotate-secret", token: session, team: app.bootstrap.teamId)
        guard let secret = try response.json()["webhook_secret"]?.stringValue else { throw TestSupportError("rotate: \(response.status)") }
        return secret
    }

    static func attempts(_ delivery: DeliveryInfo?) -> [DeliveryInfo.Attempt] { delivery?.attempts ?? [] }

    @Test(
        "a receiver down, then up: retried immediately, after 5 s and 30 s, then delivered once more with the same webhook-id; the log shows each attempt",
        arguments: TestBackend.available)
    func retriesUntilDelivered(backend: TestBackend) async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { port in
            try await TestApp.with(backend, configure: Self.stepped) { app, client in
                let webhook = try await createWebhook(app, client, port: port, events: #""task.cancelled""#)
                receiver.answer(503)
                let start = app.clock.now()
                let task = try await cancelledTask(app, client)

                // The delivery exists before any attempt: it was written with the terminal state.
                var log = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(Self.attempts(log.first).count == 2)
                var delivery = try #require(log.first)
                #expect(delivery.taskId == task)
                #expect(delivery.status == "pending")
                #expect(delivery.lastStatusCode == 503)
                let first = Self.attempts(delivery)
                #expect(first.map { $0.statusCode } == [503, 503])
                #expect(first[0].nextRetryAt == start)
                #expect(first[1].nextRetryAt == start.addingTimeInterval(5))
                #expect(first[1].error == "answered 503")

                app.clock.advance(by: 5)
                log = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(Self.attempts(log.first).count == 3)
                #expect(Self.attempts(log.first).last?.nextRetryAt == start.addingTimeInterval(35))

                receiver.answer(200)
                app.clock.advance(by: 29)
                #expect(await app.built.webhookSender.drain() == 0)  // not due yet
                #expect(receiver.received.count == 3)
                app.clock.advance(by: 1)
                log = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(log.first?.status == "delivered")
                delivery = try #require(log.first)
                #expect(delivery.attemptCount == 4)
                #expect(Self.attempts(delivery).last?.statusCode == 200)
                #expect(Self.attempts(delivery).last?.nextRetryAt == nil)

                let received = receiver.received
                #expect(received.count == 4)
                let ids = Set(received.compactMap { $0.headers["webhook-id"] })
                #expect(ids == [delivery.id.lowercased])
                for request in received {
                    let id = try #require(request.headers["webhook-id"])
                    let timestamp = try #require(request.headers["webhook-timestamp"].flatMap(Int.init))
                    #expect(
                        request.headers["webhook-signature"]
                            == WebhookSignature.standard(secret: webhook.secret, id: id, timestamp: timestamp, body: request.body))
                    #expect(request.headers["x-webhook-signature-256"] == WebhookSignature.cyberun(secret: webhook.secret, body: request.body))
                    #expect(request.headers["content-type"] == "application/json")
                }
                let payload = try JSONValue.parse(received[0].body)
                #expect(payload["event_type"]?.stringValue == "task.cancelled")
                #expect(payload["task_id"]?.stringValue == task.lowercased)
                #expect(payload["task_status"]?.stringValue == "cancelled")
                #expect(payload["task_output"] == .null)
                #expect(payload["timestamp"]?.stringValue != nil)
                let session = try await app.ownerSession(client)
                let detail = try await app.call(client, .get, "/api/v1/webhooks/\(webhook.id)", token: session, team: app.bootstrap.teamId).json()
                #expect(detail["last_delivered_at"]?.stringValue != nil)
            }
        }
    }

    @Test(
        "after five failures the delivery is dead; redelivery sends it again with the same id and a fresh schedule", arguments: TestBackend.available)
    func deadThenRedelivered(backend: TestBackend) async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { port in
            try await TestApp.with(backend, configure: Self.stepped) { app, client in
                let webhook = try await createWebhook(app, client, port: port, events: #""task.cancelled""#)
                receiver.answer(500)
                _ = try await cancelledTask(app, client)
                let logStep = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(Self.attempts(logStep.first).count == 2)
                for (step, expected) in [(5.0, 3), (30.0, 4), (120.0, 5)] {
                    app.clock.advance(by: step)
                    let logStep = try await deliveryLog(app, client, webhook: webhook.id)
                    #expect(Self.attempts(logStep.first).count == expected)
                }
                var log = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(log.first?.status == "dead")
                let delivery = try #require(log.first)
                #expect(delivery.nextAttemptAt == nil)
                app.clock.advance(by: 3600)
                await app.built.webhookSender.drain()
                #expect(receiver.received.count == 5)

                let session = try await app.ownerSession(client)
                let deliveryId = delivery.id.lowercased
                receiver.answer(204)
                let redeliver = try await app.call(
                    client, .post, "/api/v1/webhooks/\(webhook.id)/deliveries/\(deliveryId)/redeliver", token: session, team: app.bootstrap.teamId)
                #expect(redeliver.status == .accepted)
                log = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(log.first?.status == "delivered")
                #expect(log.first?.attemptCount == 6)
                #expect(receiver.received.count == 6)
                #expect(receiver.received.last?.headers["webhook-id"] == deliveryId)
                let metrics = try MetricsTests.Scrape(app.built.metrics.registry.emitToString())
                for (outcome, count) in [("failed", 4.0), ("dead", 1), ("delivered", 1)] {
                    #expect(metrics.value("switchyard_webhook_attempts_total", ["outcome": outcome]) == count, "\(outcome)")
                }
                #expect(metrics.value("switchyard_webhook_attempt_duration_seconds_count") == 6)
                let again = try await app.call(
                    client, .post, "/api/v1/webhooks/\(webhook.id)/deliveries/\(deliveryId)/redeliver", token: session, team: app.bootstrap.teamId)
                #expect(again.status == .accepted)
                let single = try await app.call(
                    client, .get, "/api/v1/webhooks/\(webhook.id)/deliveries/\(deliveryId)", token: session, team: app.bootstrap.teamId
                ).json()
                #expect((single["payload"]?.objectValue)?["event_type"]?.stringValue == "task.cancelled")
            }
        }
    }

    @Test(
        "only subscribed, active webhooks get a delivery; the old secret stops signing once rotated", .timeLimit(.minutes(1)),
        arguments: TestBackend.available)
    func subscriptionsAndRotation(backend: TestBackend) async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { port in
            try await TestApp.with(backend, configure: { $0.webhooks.policy = WebhookTargetPolicy(allowInsecureLoopback: true) }) { app, client in
                let failedOnly = try await createWebhook(app, client, port: port, events: #""task.completed","task.failed""#)
                let cancelled = try await createWebhook(app, client, port: port, events: #""task.cancelled""#)
                let rotated = try await rotateSecret(app, client, webhook: cancelled.id)
                _ = try await cancelledTask(app, client)
                // The background sender, woken by the task's end, delivers without anyone draining.
                await receiver.waitForRequests(1)
                let untouched = try await app.storage.webhookDeliveries(
                    webhookId: UUID(uuidString: failedOnly.id)!, teamId: app.bootstrap.teamId, page: PageRequest())
                #expect(untouched?.totalCount == 0)
                let received = receiver.received
                #expect(received.count == 1)
                let header = received.first?.headers["x-webhook-signature-256"]
                let body = received.first?.body ?? []
                let signedWithNew = header == WebhookSignature.cyberun(secret: rotated, body: body)
                let signedWithOld = header == WebhookSignature.cyberun(secret: cancelled.secret, body: body)
                #expect(signedWithNew)
                #expect(!signedWithOld)
            }
        }
    }

    @Test("a redirect is not followed; it fails the attempt with a message")
    func redirectsFail() async throws {
        let receiver = WebhookReceiver()
        try await receiver.run { port in
            try await TestApp.with(.sqlite, configure: Self.stepped) { app, client in
                let webhook = try await createWebhook(app, client, port: port, events: #""task.cancelled""#)
                receiver.answer(301)
                _ = try await cancelledTask(app, client)
                let log = try await deliveryLog(app, client, webhook: webhook.id)
                #expect(Self.attempts(log.first).count == 2)
                #expect((Self.attempts(log.first).first?.error)?.contains("redirects are not followed") == true)
            }
        }
    }
}
