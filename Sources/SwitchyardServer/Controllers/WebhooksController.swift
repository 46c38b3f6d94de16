import Foundation
import Hummingbird
import SwitchyardCore

/// `/webhooks` (api.md §2.8, management surface; owners and admins): create, list, detail with the secret,
/// update, delete, rotate the secret — and, beyond the documented API, the delivery log and redelivery.
struct WebhooksController {
    let storage: any SwitchyardStorage
    let box: SecretBox
    let policy: WebhookTargetPolicy
    let clock: any WallClock
    let sender: WebhookSender

    func addRoutes(to group: RouterGroup<SwitchyardRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.get("{webhookId}", use: detail)
        group.put("{webhookId}", use: update)
        group.delete("{webhookId}", use: delete)
        group.post("{webhookId}/rotate-secret", use: rotate)
        group.get("{webhookId}/deliveries", use: deliveries)
        group.get("{webhookId}/deliveries/{deliveryId}", use: delivery)
        group.post("{webhookId}/deliveries/{deliveryId}/redeliver", use: redeliver)
    }

    private func manager(_ context: SwitchyardRequestContext) throws -> UUID {
        let caller = try context.requireCaller()
        try caller.require(.manage, to: "manage webhooks")
        return try caller.requireTeam()
    }

    private func load(_ context: SwitchyardRequestContext) async throws -> Webhook {
        let teamId = try manager(context)
        guard let webhook = try await storage.webhook(id: try context.parameters.requireUUID("webhookId"), teamId: teamId) else {
            throw SwitchyardError.notFound("webhook not found")
        }
        return webhook
    }

    @Sendable func create(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        let fields = try JSONFields(body: try await JSONBody.read(request, context: context))
        let name = try fields.required("display_name") { key throws(SwitchyardError) in try fields.string(key, length: 1...255, trim: true) }
        let url = try fields.required("webhook_url") { key throws(SwitchyardError) in try fields.string(key) }
        _ = try policy.validate(url)
        let events = try fields.required("webhook_events") { key throws(SwitchyardError) in try Self.events(fields, key) }
        let status = try fields.enumeration("webhook_status", WebhookStatus.self) ?? .active
        let now = clock.now()
        let id = UUIDv7.make(at: now)
        let secret = WebhookSignature.makeSecret()
        try await storage.insertWebhook(
            Webhook(
                id: id, teamId: teamId, displayName: name, url: url, sealedSecret: try box.seal(secret, boundTo: id), events: events,
                status: status, createdAt: now, updatedAt: now))
        context.logger.info("webhook created", metadata: ["webhook_id": "\(id.lowercased)"])
        // The secret is also in the detail response (as documented); it is returned here so one call is enough.
        return JSONBody.response(["id": .uuid(id), "webhook_secret": .string(secret)], status: .created)
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        let page = try request.pageRequest
        let result = try await storage.webhooks(teamId: teamId, page: page)
        return JSONBody.response([
            "webhook_list": .array(result.items.map { Self.present($0, secret: nil) }),
            "page_meta": JSONBody.pageMeta(page, totalCount: result.totalCount),
        ])
    }

    @Sendable func detail(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let webhook = try await load(context)
        return JSONBody.response(Self.present(webhook, secret: try box.open(webhook.sealedSecret, boundTo: webhook.id)))
    }

    @Sendable func update(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        var webhook = try await load(context)
        let fields = try JSONFields(body: try await JSONBody.read(request, context: context))
        if let name = try fields.string("display_name", length: 1...255, trim: true) { webhook.displayName = name }
        if let url = try fields.string("webhook_url") {
            _ = try policy.validate(url)
            webhook.url = url
        }
        if fields.has("webhook_events") { webhook.events = try Self.events(fields, "webhook_events") ?? webhook.events }
        if let status = try fields.enumeration("webhook_status", WebhookStatus.self) { webhook.status = status }
        webhook.updatedAt = clock.now()
        guard try await storage.updateWebhook(webhook) else { throw SwitchyardError.notFound("webhook not found") }
        return JSONBody.response(["id": .uuid(webhook.id)])
    }

    @Sendable func delete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        guard try await storage.deleteWebhook(id: try context.parameters.requireUUID("webhookId"), teamId: teamId) else {
            throw SwitchyardError.notFound("webhook not found")
        }
        return Response(status: .noContent)
    }

    /// A new secret; the old one stops signing at once (the sender opens the stored secret for every attempt).
    @Sendable func rotate(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        var webhook = try await load(context)
        let secret = WebhookSignature.makeSecret()
        webhook.sealedSecret = try box.seal(secret, boundTo: webhook.id)
        webhook.updatedAt = clock.now()
        guard try await storage.updateWebhook(webhook) else { throw SwitchyardError.notFound("webhook not found") }
        context.logger.info("webhook secret rotated", metadata: ["webhook_id": "\(webhook.id.lowercased)"])
        return JSONBody.response(["webhook_secret": .string(secret)])
    }

    @Sendable func deliveries(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        let page = try request.pageRequest
        guard
            let result = try await storage.webhookDeliveries(
                webhookId: try context.parameters.requireUUID("webhookId"), teamId: teamId, page: page)
        else { throw SwitchyardError.notFound("webhook not found") }
        return JSONBody.response([
            "delivery_list": .array(result.items.map { Self.present($0, payload: false) }),
            "page_meta": JSONBody.pageMeta(page, totalCount: result.totalCount),
        ])
    }

    @Sendable func delivery(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        guard
            let delivery = try await storage.webhookDelivery(
                id: try context.parameters.requireUUID("deliveryId"), webhookId: try context.parameters.requireUUID("webhookId"), teamId: teamId)
        else { throw SwitchyardError.notFound("delivery not found") }
        return JSONBody.response(Self.present(delivery, payload: true))
    }

    /// Sends a delivered or dead delivery again, with the same `webhook-id` and body and a fresh retry schedule.
    @Sendable func redeliver(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        guard
            let delivery = try await storage.redeliver(
                id: try context.parameters.requireUUID("deliveryId"), webhookId: try context.parameters.requireUUID("webhookId"), teamId: teamId,
                at: clock.now())
        else { throw SwitchyardError.notFound("delivery not found") }
        sender.nudge()
        return JSONBody.response(Self.present(delivery, payload: false), status: .accepted)
    }

    static func events(_ fields: JSONFields, _ key: String) throws(SwitchyardError) -> [WebhookEvent]? {
        let allowed = WebhookEvent.allCases.map(\.rawValue).joined(separator: ", ")
        guard
            let names = try fields.stringArray(
                key, maxCount: WebhookEvent.allCases.count * 4, validate: { WebhookEvent(rawValue: $0) == nil ? "is not one of \(allowed)" : nil })
        else { return nil }
        guard !names.isEmpty else { throw .invalid("field \"\(key)\" must name at least one event (\(allowed))") }
        return WebhookEvent.allCases.filter { names.contains($0.rawValue) }
    }

    static func present(_ webhook: Webhook, secret: String?) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .uuid(webhook.id), "display_name": .string(webhook.displayName), "webhook_url": .string(webhook.url),
            "webhook_events": .array(webhook.events.map { .string($0.rawValue) }), "webhook_status": .string(webhook.status.rawValue),
            "created_at": .date(webhook.createdAt), "updated_at": .date(webhook.updatedAt), "last_delivered_at": .date(webhook.lastDeliveredAt),
        ]
        if let secret { object["webhook_secret"] = .string(secret) }
        return .object(object)
    }

    static func present(_ delivery: WebhookDelivery, payload: Bool) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .uuid(delivery.id), "webhook_id": .uuid(delivery.webhookId), "task_id": .uuid(delivery.taskId),
            "event_type": .string(delivery.event.rawValue), "delivery_status": .string(delivery.status.rawValue),
            "attempt_count": .integer(delivery.attemptCount), "created_at": .date(delivery.createdAt), "delivered_at": .date(delivery.deliveredAt),
            "next_attempt_at": .date(delivery.status == .pending ? delivery.nextAttemptAt : nil),
            "last_status_code": delivery.lastStatusCode.map { .integer($0) } ?? .null,
            "last_error": delivery.lastError.map(JSONValue.string) ?? .null,
            "attempts": .array(
                delivery.attempts.map { attempt in
                    [
                        "attempt_number": .integer(attempt.number), "attempted_at": .date(attempt.attemptedAt),
                        "status_code": attempt.statusCode.map { .integer($0) } ?? .null,
                        "latency_ms": .number(JSONNumber((attempt.latencyMilliseconds * 10).rounded() / 10)),
                        "error": attempt.error.map(JSONValue.string) ?? .null, "next_retry_at": .date(attempt.nextRetryAt),
                    ]
                }),
        ]
        if payload { object["payload"] = (try? JSONValue.parse(delivery.payload)) ?? .string(delivery.payload) }
        return .object(object)
    }
}
