import Foundation
import Hummingbird
import SwitchyardCore

extension WebhooksController {
    /// A new webhook: its id and signing secret.
    struct Created: ResponseEncodable {
        let id: UUID
        let webhookSecret: String
    }

    struct Rotated: ResponseEncodable {
        let webhookSecret: String
    }

    /// A webhook (api.md §2.8); `webhook_secret` only in the detail.
    struct Detail: ResponseEncodable, Sendable {
        let id: UUID
        let displayName: String
        let webhookUrl: String
        let webhookEvents: [String]
        let webhookStatus: String
        let createdAt: Date
        let updatedAt: Date
        @Nullable var lastDeliveredAt: Date?
        var webhookSecret: String?

        init(_ webhook: Webhook, secret: String?) {
            self.id = webhook.id
            self.displayName = webhook.displayName
            self.webhookUrl = webhook.url
            self.webhookEvents = webhook.events.map(\.rawValue)
            self.webhookStatus = webhook.status.rawValue
            self.createdAt = webhook.createdAt
            self.updatedAt = webhook.updatedAt
            self.lastDeliveredAt = webhook.lastDeliveredAt
            self.webhookSecret = secret
        }
    }

    /// One delivery of the log, with its attempts; `payload` (the body as sent) only in the detail.
    struct Delivery: ResponseEncodable, Sendable {
        struct Attempt: Encodable, Sendable {
            let attemptNumber: Int
            let attemptedAt: Date
            @Nullable var statusCode: Int?
            /// Milliseconds to a tenth.
            let latencyMs: Double
            @Nullable var error: String?
            @Nullable var nextRetryAt: Date?
        }

        let id: UUID
        let webhookId: UUID
        let taskId: UUID
        let eventType: String
        let deliveryStatus: String
        let attemptCount: Int
        let createdAt: Date
        @Nullable var deliveredAt: Date?
        @Nullable var nextAttemptAt: Date?
        @Nullable var lastStatusCode: Int?
        @Nullable var lastError: String?
        let attempts: [Attempt]
        var payload: JSONValue?

        init(_ delivery: WebhookDelivery, payload: Bool) {
            self.id = delivery.id
            self.webhookId = delivery.webhookId
            self.taskId = delivery.taskId
            self.eventType = delivery.event.rawValue
            self.deliveryStatus = delivery.status.rawValue
            self.attemptCount = delivery.attemptCount
            self.createdAt = delivery.createdAt
            self.deliveredAt = delivery.deliveredAt
            self.nextAttemptAt = delivery.status == .pending ? delivery.nextAttemptAt : nil
            self.lastStatusCode = delivery.lastStatusCode
            self.lastError = delivery.lastError
            self.attempts = delivery.attempts.map { attempt in
                Attempt(
                    attemptNumber: attempt.number, attemptedAt: attempt.attemptedAt, statusCode: attempt.statusCode,
                    latencyMs: (attempt.latencyMilliseconds * 10).rounded() / 10, error: attempt.error, nextRetryAt: attempt.nextRetryAt)
            }
            if payload { self.payload = (try? JSONValue.parse(delivery.payload)) ?? .string(delivery.payload) }
        }
    }
}
