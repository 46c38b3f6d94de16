import Foundation
import SwitchyardCore

extension SQLColumns {
    static let webhook =
        "id, team_id, display_name, webhook_url, sealed_secret, webhook_events, webhook_status, created_at, updated_at, last_delivered_at"
    static let delivery = """
        id, webhook_id, team_id, task_id, event_type, payload, delivery_status, attempt_count, round_attempts, next_attempt_at, created_at, \
        delivered_at, last_status_code, last_error
        """
}

extension SQLStorage {
    public func insertWebhook(_ webhook: Webhook) async throws {
        try await mapConstraint("the webhook") {
            _ = try await write(
                """
                INSERT INTO webhooks (\(raw: SQLColumns.webhook))
                VALUES (\(webhook.id), \(webhook.teamId), \(webhook.displayName), \(webhook.url), \(webhook.sealedSecret), \(webhook.storedEvents),
                        \(webhook.status.rawValue), \(webhook.createdAt), \(webhook.updatedAt), \(webhook.lastDeliveredAt))
                """)
        }
    }

    public func webhook(id: UUID, teamId: UUID) async throws -> Webhook? {
        try await read("SELECT \(raw: SQLColumns.webhook) FROM webhooks WHERE id = \(id) AND team_id = \(teamId)").first.map(Webhook.init(row:))
    }

    public func webhooks(teamId: UUID, page: PageRequest) async throws -> Page<Webhook> {
        try await self.page(SQLColumns.webhook, from: "webhooks", where: "team_id = \(teamId)", page, Webhook.init(row:))
    }

    public func updateWebhook(_ webhook: Webhook) async throws -> Bool {
        try await wrote(
            """
            UPDATE webhooks SET display_name = \(webhook.displayName), webhook_url = \(webhook.url), sealed_secret = \(webhook.sealedSecret),
                webhook_events = \(webhook.storedEvents), webhook_status = \(webhook.status.rawValue), updated_at = \(webhook.updatedAt)
            WHERE id = \(webhook.id) AND team_id = \(webhook.teamId) RETURNING id
            """)
    }

    public func deleteWebhook(id: UUID, teamId: UUID) async throws -> Bool {
        try await wrote("DELETE FROM webhooks WHERE id = \(id) AND team_id = \(teamId) RETURNING id")
    }

    public func webhookDeliveries(webhookId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WebhookDelivery>? {
        guard try await webhook(id: webhookId, teamId: teamId) != nil else { return nil }
        let deliveries = try await self.page(
            SQLColumns.delivery, from: "webhook_deliveries", where: "webhook_id = \(webhookId)", page, WebhookDelivery.init(row:))
        return Page(items: try await withAttempts(deliveries.items), totalCount: deliveries.totalCount)
    }

    public func webhookDelivery(id: UUID, webhookId: UUID, teamId: UUID) async throws -> WebhookDelivery? {
        let deliveries = try await read(
            "SELECT \(raw: SQLColumns.delivery) FROM webhook_deliveries WHERE id = \(id) AND webhook_id = \(webhookId) AND team_id = \(teamId)"
        ).map(WebhookDelivery.init(row:))
        return try await withAttempts(deliveries).first
    }

    private func withAttempts(_ deliveries: [WebhookDelivery]) async throws -> [WebhookDelivery] {
        guard !deliveries.isEmpty else { return deliveries }
        let rows = try await read(
            """
            SELECT delivery_id, attempt_number, attempted_at, status_code, latency_ms, attempt_error, next_retry_at
            FROM webhook_attempts WHERE delivery_id IN \(list: deliveries.map(\.id)) ORDER BY attempt_number
            """)
        var byDelivery: [UUID: [WebhookAttempt]] = [:]
        for row in rows {
            let attempt = WebhookAttempt(
                deliveryId: try row.uuid("delivery_id"), number: try row.int("attempt_number"), attemptedAt: try row.date("attempted_at"),
                statusCode: try row.optionalInt("status_code"), latencyMilliseconds: try row.double("latency_ms"),
                error: try row.optionalString("attempt_error"), nextRetryAt: try row.optionalDate("next_retry_at"))
            byDelivery[attempt.deliveryId, default: []].append(attempt)
        }
        return deliveries.map { delivery in
            var delivery = delivery
            delivery.attempts = byDelivery[delivery.id] ?? []
            return delivery
        }
    }

    public func redeliver(id: UUID, webhookId: UUID, teamId: UUID, at date: Date) async throws -> WebhookDelivery? {
        let found = try await transaction { transaction -> Bool in
            guard
                let row = try await transaction.query(
                    """
                    SELECT delivery_status FROM webhook_deliveries WHERE id = \(id) AND webhook_id = \(webhookId) AND team_id = \(teamId)
                    \(lock: .forUpdate)
                    """
                ).first
            else { return false }
            guard try row.string("delivery_status") != WebhookDeliveryStatus.pending.rawValue else {
                throw SwitchyardError.conflict("delivery \(id.lowercased) is still pending; it is retried on its schedule")
            }
            _ = try await transaction.query(
                """
                UPDATE webhook_deliveries SET delivery_status = 'pending', round_attempts = 0, next_attempt_at = \(date), claim_token = NULL
                WHERE id = \(id)
                """)
            return true
        }
        return found ? try await webhookDelivery(id: id, webhookId: webhookId, teamId: teamId) : nil
    }

    /// Leases due deliveries in one statement; on PostgreSQL, rows another replica holds are skipped.
    public func claimDueDeliveries(at date: Date, leaseUntil: Date, limit: Int) async throws -> [ClaimedDelivery] {
        let token = UUID()
        return try await write(
            """
            UPDATE webhook_deliveries SET next_attempt_at = \(leaseUntil), claim_token = \(token)
            WHERE id IN (
                SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                WHERE d.delivery_status = 'pending' AND d.next_attempt_at <= \(date) AND w.webhook_status = 'active'
                ORDER BY d.next_attempt_at LIMIT \(limit) \(lock: .forUpdateSkipLocked(of: "d")))
            RETURNING \(raw: SQLColumns.delivery),
                (SELECT webhook_url FROM webhooks w WHERE w.id = webhook_deliveries.webhook_id) AS webhook_url,
                (SELECT sealed_secret FROM webhooks w WHERE w.id = webhook_deliveries.webhook_id) AS sealed_secret
            """
        ).map { row in
            ClaimedDelivery(
                delivery: try WebhookDelivery(row: row), url: try row.string("webhook_url"), sealedSecret: try row.string("sealed_secret"),
                claimToken: token)
        }
    }

    public func recordDeliveryAttempt(_ attempt: WebhookAttempt, claimToken: UUID) async throws -> Bool {
        let status: WebhookDeliveryStatus = attempt.succeeded ? .delivered : attempt.nextRetryAt == nil ? .dead : .pending
        let nextAttempt = attempt.succeeded ? nil : attempt.nextRetryAt
        let deliveredAt = attempt.succeeded ? attempt.attemptedAt : nil
        return try await transaction { transaction in
            guard
                let row = try await transaction.query(
                    """
                    UPDATE webhook_deliveries SET delivery_status = \(status.rawValue), attempt_count = attempt_count + 1,
                        round_attempts = round_attempts + 1, next_attempt_at = \(nextAttempt), claim_token = NULL, delivered_at = \(deliveredAt),
                        last_status_code = \(attempt.statusCode), last_error = \(attempt.error)
                    WHERE id = \(attempt.deliveryId) AND claim_token = \(claimToken) RETURNING webhook_id, attempt_count
                    """
                ).first
            else { return false }
            _ = try await transaction.query(
                """
                INSERT INTO webhook_attempts (delivery_id, attempt_number, attempted_at, status_code, latency_ms, attempt_error, next_retry_at)
                VALUES (\(attempt.deliveryId), \(try row.int("attempt_count")), \(attempt.attemptedAt), \(attempt.statusCode),
                        \(attempt.latencyMilliseconds), \(attempt.error), \(nextAttempt))
                """)
            if attempt.succeeded {
                _ = try await transaction.query(
                    "UPDATE webhooks SET last_delivered_at = \(attempt.attemptedAt) WHERE id = \(try row.uuid("webhook_id"))")
            }
            return true
        }
    }

    public func nextDeliveryDue() async throws -> Date? {
        try await read("SELECT MIN(next_attempt_at) AS due FROM webhook_deliveries WHERE delivery_status = 'pending'").first?
            .optionalDate("due")
    }
}

extension SQLExecutor {
    /// Writes the outbox rows for a task that just ended: one per active webhook of its team subscribed to the
    /// event. Runs inside the transaction that wrote the terminal state.
    public func enqueueWebhookDeliveries(for task: TaskRecord, at date: Date) async throws {
        guard let event = WebhookEvent(terminal: task.status) else { return }
        let webhooks = try await query(
            """
            SELECT id FROM webhooks
            WHERE team_id = \(task.teamId) AND webhook_status = 'active' AND webhook_events LIKE \(Webhook.storedEventPattern(event))
            """)
        guard !webhooks.isEmpty else { return }
        let payload = WebhookPayload.make(for: task, event: event).jsonString
        for row in webhooks {
            _ = try await query(
                """
                INSERT INTO webhook_deliveries (id, webhook_id, team_id, task_id, event_type, payload, delivery_status, attempt_count,
                    round_attempts, next_attempt_at, created_at)
                VALUES (\(UUIDv7.make(at: date)), \(try row.uuid("id")), \(task.teamId), \(task.id), \(event.rawValue), \(payload), 'pending', 0, 0,
                        \(date), \(date))
                """)
        }
    }
}

extension Webhook {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), displayName: try row.string("display_name"),
            url: try row.string("webhook_url"), sealedSecret: try row.string("sealed_secret"),
            events: try Webhook.events(stored: try row.string("webhook_events")), status: try row.value("webhook_status"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), lastDeliveredAt: try row.optionalDate("last_delivered_at"))
    }
}

extension WebhookDelivery {
    init(row: SQLRow) throws {
        self.init(
            id: try row.uuid("id"), webhookId: try row.uuid("webhook_id"), teamId: try row.uuid("team_id"), taskId: try row.uuid("task_id"),
            event: try row.value("event_type"), payload: try row.string("payload"), status: try row.value("delivery_status"),
            attemptCount: try row.int("attempt_count"), roundAttempts: try row.int("round_attempts"),
            nextAttemptAt: try row.optionalDate("next_attempt_at"), createdAt: try row.date("created_at"),
            deliveredAt: try row.optionalDate("delivered_at"), lastStatusCode: try row.optionalInt("last_status_code"),
            lastError: try row.optionalString("last_error"))
    }
}
