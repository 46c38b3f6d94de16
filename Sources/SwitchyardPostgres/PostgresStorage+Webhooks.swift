import Foundation
import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    static let webhookColumns =
        "id, team_id, display_name, webhook_url, sealed_secret, webhook_events, webhook_status, created_at, updated_at, last_delivered_at"
    static let deliveryColumns = """
        id, webhook_id, team_id, task_id, event_type, payload, delivery_status, attempt_count, round_attempts, next_attempt_at, created_at,
        delivered_at, last_status_code, last_error
        """

    public func insertWebhook(_ webhook: Webhook) async throws {
        try await mapConstraint("the webhook") {
            _ = try await rows(
                """
                INSERT INTO webhooks (\(unescaped: Self.webhookColumns))
                VALUES (\(webhook.id), \(webhook.teamId), \(webhook.displayName), \(webhook.url), \(webhook.sealedSecret), \(webhook.storedEvents),
                        \(webhook.status.rawValue), \(webhook.createdAt), \(webhook.updatedAt), \(webhook.lastDeliveredAt))
                """)
        }
    }

    public func webhook(id: UUID, teamId: UUID) async throws -> Webhook? {
        try await rows("SELECT \(unescaped: Self.webhookColumns) FROM webhooks WHERE id = \(id) AND team_id = \(teamId)")
            .first.map(Self.decodeWebhook)
    }

    public func webhooks(teamId: UUID, page: PageRequest) async throws -> Page<Webhook> {
        let total = try await rows("SELECT COUNT(*) FROM webhooks WHERE team_id = \(teamId)").first?.decode(Int.self) ?? 0
        let items = try await rows(
            """
            SELECT \(unescaped: Self.webhookColumns) FROM webhooks WHERE team_id = \(teamId)
            ORDER BY created_at DESC, id DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeWebhook)
        return Page(items: items, totalCount: total)
    }

    public func updateWebhook(_ webhook: Webhook) async throws -> Bool {
        !(try await rows(
            """
            UPDATE webhooks SET display_name = \(webhook.displayName), webhook_url = \(webhook.url), sealed_secret = \(webhook.sealedSecret),
                webhook_events = \(webhook.storedEvents), webhook_status = \(webhook.status.rawValue), updated_at = \(webhook.updatedAt)
            WHERE id = \(webhook.id) AND team_id = \(webhook.teamId) RETURNING id
            """
        ).isEmpty)
    }

    public func deleteWebhook(id: UUID, teamId: UUID) async throws -> Bool {
        !(try await rows("DELETE FROM webhooks WHERE id = \(id) AND team_id = \(teamId) RETURNING id").isEmpty)
    }

    public func webhookDeliveries(webhookId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WebhookDelivery>? {
        guard try await webhook(id: webhookId, teamId: teamId) != nil else { return nil }
        let total = try await rows("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = \(webhookId)").first?.decode(Int.self) ?? 0
        var deliveries = try await rows(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries WHERE webhook_id = \(webhookId)
            ORDER BY created_at DESC, id DESC LIMIT \(page.perPage) OFFSET \(page.offset)
            """
        ).map(Self.decodeDelivery)
        try await attachAttempts(&deliveries)
        return Page(items: deliveries, totalCount: total)
    }

    public func webhookDelivery(id: UUID, webhookId: UUID, teamId: UUID) async throws -> WebhookDelivery? {
        var deliveries = try await rows(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries
            WHERE id = \(id) AND webhook_id = \(webhookId) AND team_id = \(teamId)
            """
        ).map(Self.decodeDelivery)
        try await attachAttempts(&deliveries)
        return deliveries.first
    }

    private func attachAttempts(_ deliveries: inout [WebhookDelivery]) async throws {
        guard !deliveries.isEmpty else { return }
        let ids = deliveries.map(\.id)
        let rows = try await rows(
            """
            SELECT delivery_id, attempt_number, attempted_at, status_code, latency_ms, attempt_error, next_retry_at
            FROM webhook_attempts WHERE delivery_id = ANY(\(ids)) ORDER BY attempt_number
            """)
        var byDelivery: [UUID: [WebhookAttempt]] = [:]
        for row in rows {
            let (deliveryId, number, attemptedAt, statusCode, latency, error, nextRetry) = try row.decode(
                (UUID, Int, Date, Int?, Double, String?, Date?).self)
            byDelivery[deliveryId, default: []].append(
                WebhookAttempt(
                    deliveryId: deliveryId, number: number, attemptedAt: attemptedAt, statusCode: statusCode, latencyMilliseconds: latency,
                    error: error, nextRetryAt: nextRetry))
        }
        for index in deliveries.indices { deliveries[index].attempts = byDelivery[deliveries[index].id] ?? [] }
    }

    public func redeliver(id: UUID, webhookId: UUID, teamId: UUID, at date: Date) async throws -> WebhookDelivery? {
        let logger = self.logger
        let found = try await transaction { connection -> Bool in
            guard
                let status = try await connection.query(
                    "SELECT delivery_status FROM webhook_deliveries WHERE id = \(id) AND webhook_id = \(webhookId) AND team_id = \(teamId) FOR UPDATE",
                    logger: logger
                ).collect().first?.decode(String.self)
            else { return false }
            guard status != WebhookDeliveryStatus.pending.rawValue else {
                throw SwitchyardError.conflict("delivery \(id.lowercased) is still pending; it is retried on its schedule")
            }
            try await connection.query(
                """
                UPDATE webhook_deliveries SET delivery_status = 'pending', round_attempts = 0, next_attempt_at = \(date), claim_token = NULL
                WHERE id = \(id)
                """,
                logger: logger)
            return true
        }
        return found ? try await webhookDelivery(id: id, webhookId: webhookId, teamId: teamId) : nil
    }

    public func claimDueDeliveries(at date: Date, leaseUntil: Date, limit: Int) async throws -> [ClaimedDelivery] {
        let token = UUID()
        let claimed = try await rows(
            """
            UPDATE webhook_deliveries d SET next_attempt_at = \(leaseUntil), claim_token = \(token)
            FROM webhooks w
            WHERE w.id = d.webhook_id AND d.id IN (
                SELECT d2.id FROM webhook_deliveries d2 JOIN webhooks w2 ON w2.id = d2.webhook_id
                WHERE d2.delivery_status = 'pending' AND d2.next_attempt_at <= \(date) AND w2.webhook_status = 'active'
                ORDER BY d2.next_attempt_at LIMIT \(limit) FOR UPDATE OF d2 SKIP LOCKED)
            RETURNING d.id, d.webhook_id, d.team_id, d.task_id, d.event_type, d.payload, d.delivery_status, d.attempt_count, d.round_attempts,
                d.next_attempt_at, d.created_at, d.delivered_at, d.last_status_code, d.last_error, w.webhook_url, w.sealed_secret
            """)
        return try claimed.map { row in
            let columns = row.makeRandomAccess()
            return ClaimedDelivery(
                delivery: try Self.decodeDelivery(row), url: try columns["webhook_url"].decode(String.self),
                sealedSecret: try columns["sealed_secret"].decode(String.self), claimToken: token)
        }
    }

    public func recordDeliveryAttempt(_ attempt: WebhookAttempt, claimToken: UUID) async throws -> Bool {
        let logger = self.logger
        let status: WebhookDeliveryStatus = attempt.succeeded ? .delivered : attempt.nextRetryAt == nil ? .dead : .pending
        let nextAttempt = attempt.succeeded ? nil : attempt.nextRetryAt
        let deliveredAt = attempt.succeeded ? attempt.attemptedAt : nil
        return try await transaction { connection in
            guard
                let (webhookId, attemptCount) = try await connection.query(
                    """
                    UPDATE webhook_deliveries SET delivery_status = \(status.rawValue), attempt_count = attempt_count + 1,
                        round_attempts = round_attempts + 1, next_attempt_at = \(nextAttempt), claim_token = NULL, delivered_at = \(deliveredAt),
                        last_status_code = \(attempt.statusCode), last_error = \(attempt.error)
                    WHERE id = \(attempt.deliveryId) AND claim_token = \(claimToken) RETURNING webhook_id, attempt_count
                    """,
                    logger: logger
                ).collect().first?.decode((UUID, Int).self)
            else { return false }
            try await connection.query(
                """
                INSERT INTO webhook_attempts (delivery_id, attempt_number, attempted_at, status_code, latency_ms, attempt_error, next_retry_at)
                VALUES (\(attempt.deliveryId), \(attemptCount), \(attempt.attemptedAt), \(attempt.statusCode), \(attempt.latencyMilliseconds),
                        \(attempt.error), \(nextAttempt))
                """,
                logger: logger)
            if attempt.succeeded {
                try await connection.query("UPDATE webhooks SET last_delivered_at = \(attempt.attemptedAt) WHERE id = \(webhookId)", logger: logger)
            }
            return true
        }
    }

    public func nextDeliveryDue() async throws -> Date? {
        try await rows("SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE delivery_status = 'pending'").first?.decode(Date?.self)
    }

    /// Writes the outbox rows for a task that just ended: one per active webhook of its team subscribed to the
    /// event. Runs inside the transaction that wrote the terminal state.
    static func enqueueWebhookDeliveries(for task: TaskRecord, at date: Date, on connection: PostgresConnection, logger: Logger) async throws {
        guard let event = WebhookEvent(terminal: task.status) else { return }
        var webhookIds: [UUID] = []
        for try await id in try await connection.query(
            """
            SELECT id FROM webhooks
            WHERE team_id = \(task.teamId) AND webhook_status = 'active' AND webhook_events LIKE \(Webhook.storedEventPattern(event))
            """,
            logger: logger
        ).decode(UUID.self) {
            webhookIds.append(id)
        }
        guard !webhookIds.isEmpty else { return }
        let payload = WebhookPayload.make(for: task, event: event).jsonString
        for webhookId in webhookIds {
            try await connection.query(
                """
                INSERT INTO webhook_deliveries (id, webhook_id, team_id, task_id, event_type, payload, delivery_status, attempt_count,
                    round_attempts, next_attempt_at, created_at)
                VALUES (\(UUIDv7.make(at: date)), \(webhookId), \(task.teamId), \(task.id), \(event.rawValue), \(payload), 'pending', 0, 0,
                        \(date), \(date))
                """,
                logger: logger)
        }
    }

    static func decodeWebhook(_ row: PostgresRow) throws -> Webhook {
        let (id, teamId, name, url, sealed, events, statusName, created, updated, lastDelivered) = try row.decode(
            (UUID, UUID, String, String, String, String, String, Date, Date, Date?).self)
        guard let status = WebhookStatus(rawValue: statusName) else { throw PostgresDecodingError(column: "webhook_status") }
        return Webhook(
            id: id, teamId: teamId, displayName: name, url: url, sealedSecret: sealed, events: try Webhook.events(stored: events), status: status,
            createdAt: created, updatedAt: updated, lastDeliveredAt: lastDelivered)
    }

    static func decodeDelivery(_ row: PostgresRow) throws -> WebhookDelivery {
        let columns = row.makeRandomAccess()
        func value<T: PostgresDecodable>(_ name: String, _ type: T.Type) throws -> T { try columns[name].decode(T.self) }
        guard let event = WebhookEvent(rawValue: try value("event_type", String.self)) else { throw PostgresDecodingError(column: "event_type") }
        guard let status = WebhookDeliveryStatus(rawValue: try value("delivery_status", String.self)) else {
            throw PostgresDecodingError(column: "delivery_status")
        }
        return WebhookDelivery(
            id: try value("id", UUID.self), webhookId: try value("webhook_id", UUID.self), teamId: try value("team_id", UUID.self),
            taskId: try value("task_id", UUID.self), event: event, payload: try value("payload", String.self), status: status,
            attemptCount: try value("attempt_count", Int.self), roundAttempts: try value("round_attempts", Int.self),
            nextAttemptAt: try value("next_attempt_at", Date?.self), createdAt: try value("created_at", Date.self),
            deliveredAt: try value("delivered_at", Date?.self), lastStatusCode: try value("last_status_code", Int?.self),
            lastError: try value("last_error", String?.self))
    }
}
