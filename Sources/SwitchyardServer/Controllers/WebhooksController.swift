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

    @Sendable func create(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Created> {
        let teamId = try manager(context)
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
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
        return EditedResponse(status: .created, response: Created(id: id, webhookSecret: secret))
    }

    @Sendable func list(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<Detail> {
        let teamId = try manager(context)
        let page = try request.pageRequest
        let result = try await storage.webhooks(teamId: teamId, page: page)
        return Listing("webhook_list", result.items.map { Detail($0, secret: nil) }, page: page, totalCount: result.totalCount)
    }

    @Sendable func detail(_ request: Request, context: SwitchyardRequestContext) async throws -> Detail {
        let webhook = try await load(context)
        return Detail(webhook, secret: try box.open(webhook.sealedSecret, boundTo: webhook.id))
    }

    @Sendable func update(_ request: Request, context: SwitchyardRequestContext) async throws -> Identified {
        var webhook = try await load(context)
        let fields = try JSONFields(body: try await request.decode(as: JSONValue.self, context: context))
        if let name = try fields.string("display_name", length: 1...255, trim: true) { webhook.displayName = name }
        if let url = try fields.string("webhook_url") {
            _ = try policy.validate(url)
            webhook.url = url
        }
        if fields.has("webhook_events") { webhook.events = try Self.events(fields, "webhook_events") ?? webhook.events }
        if let status = try fields.enumeration("webhook_status", WebhookStatus.self) { webhook.status = status }
        webhook.updatedAt = clock.now()
        guard try await storage.updateWebhook(webhook) else { throw SwitchyardError.notFound("webhook not found") }
        return Identified(id: webhook.id)
    }

    @Sendable func delete(_ request: Request, context: SwitchyardRequestContext) async throws -> Response {
        let teamId = try manager(context)
        guard try await storage.deleteWebhook(id: try context.parameters.requireUUID("webhookId"), teamId: teamId) else {
            throw SwitchyardError.notFound("webhook not found")
        }
        return Response(status: .noContent)
    }

    /// A new secret; the old one stops signing at once (the sender opens the stored secret for every attempt).
    @Sendable func rotate(_ request: Request, context: SwitchyardRequestContext) async throws -> Rotated {
        var webhook = try await load(context)
        let secret = WebhookSignature.makeSecret()
        webhook.sealedSecret = try box.seal(secret, boundTo: webhook.id)
        webhook.updatedAt = clock.now()
        guard try await storage.updateWebhook(webhook) else { throw SwitchyardError.notFound("webhook not found") }
        context.logger.info("webhook secret rotated", metadata: ["webhook_id": "\(webhook.id.lowercased)"])
        return Rotated(webhookSecret: secret)
    }

    @Sendable func deliveries(_ request: Request, context: SwitchyardRequestContext) async throws -> Listing<Delivery> {
        let teamId = try manager(context)
        let page = try request.pageRequest
        guard
            let result = try await storage.webhookDeliveries(
                webhookId: try context.parameters.requireUUID("webhookId"), teamId: teamId, page: page)
        else { throw SwitchyardError.notFound("webhook not found") }
        return Listing("delivery_list", result.items.map { Delivery($0, payload: false) }, page: page, totalCount: result.totalCount)
    }

    @Sendable func delivery(_ request: Request, context: SwitchyardRequestContext) async throws -> Delivery {
        let teamId = try manager(context)
        guard
            let delivery = try await storage.webhookDelivery(
                id: try context.parameters.requireUUID("deliveryId"), webhookId: try context.parameters.requireUUID("webhookId"), teamId: teamId)
        else { throw SwitchyardError.notFound("delivery not found") }
        return Delivery(delivery, payload: true)
    }

    /// Sends a delivered or dead delivery again, with the same `webhook-id` and body and a fresh retry schedule.
    @Sendable func redeliver(_ request: Request, context: SwitchyardRequestContext) async throws -> EditedResponse<Delivery> {
        let teamId = try manager(context)
        guard
            let delivery = try await storage.redeliver(
                id: try context.parameters.requireUUID("deliveryId"), webhookId: try context.parameters.requireUUID("webhookId"), teamId: teamId,
                at: clock.now())
        else { throw SwitchyardError.notFound("delivery not found") }
        sender.nudge()
        return EditedResponse(status: .accepted, response: Delivery(delivery, payload: false))
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
}
