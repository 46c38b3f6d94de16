import Foundation
import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    static let webhookColumns =
        "id, team_id, display_name, webhook_url, sealed_secret, webhook_events, webhook_status, created_at, updated_at, last_delivered_at"
    static let deliveryColumns = """
        id, webhook_id, team_id, task_id, event_type, payload, delivery_status, attempt_count, round_attempts, next_attempt_at, created_at,
        delivered_at, last_status_code, last_error
        """

    public func insertWebhook(_ webhook: Webhook) async throws {
        try await mapConstraint("the webhook") {
            try await write { connection in
                _ = try await connection.query(
                    "INSERT INTO webhooks (\(Self.webhookColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        .uuid(webhook.id), .uuid(webhook.teamId), .text(webhook.displayName), .text(webhook.url), .text(webhook.sealedSecret),
                        .text(webhook.storedEvents), .text(webhook.status.rawValue), .date(webhook.createdAt), .date(webhook.updatedAt),
                        .date(webhook.lastDeliveredAt),
                    ])
            }
        }
    }

    public func webhook(id: UUID, teamId: UUID) async throws -> Webhook? {
        try await read("SELECT \(Self.webhookColumns) FROM webhooks WHERE id = ? AND team_id = ?", [.uuid(id), .uuid(teamId)])
            .first.map(Self.decodeWebhook)
    }

    public func webhooks(teamId: UUID, page: PageRequest) async throws -> Page<Webhook> {
        let total = try await read("SELECT COUNT(*) AS total FROM webhooks WHERE team_id = ?", [.uuid(teamId)]).first?.int("total") ?? 0
        let rows = try await read(
            "SELECT \(Self.webhookColumns) FROM webhooks WHERE team_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [.uuid(teamId), .integer(page.perPage), .integer(page.offset)])
        return Page(items: try rows.map(Self.decodeWebhook), totalCount: total)
    }

    public func updateWebhook(_ webhook: Webhook) async throws -> Bool {
        try await write { connection in
            !(try await connection.query(
                """
                UPDATE webhooks SET display_name = ?, webhook_url = ?, sealed_secret = ?, webhook_events = ?, webhook_status = ?, updated_at = ?
                WHERE id = ? AND team_id = ? RETURNING id
                """,
                [
                    .text(webhook.displayName), .text(webhook.url), .text(webhook.sealedSecret), .text(webhook.storedEvents),
                    .text(webhook.status.rawValue), .date(webhook.updatedAt), .uuid(webhook.id), .uuid(webhook.teamId),
                ]
            ).isEmpty)
        }
    }

    public func deleteWebhook(id: UUID, teamId: UUID) async throws -> Bool {
        try await write { connection in
            !(try await connection.query("DELETE FROM webhooks WHERE id = ? AND team_id = ? RETURNING id", [.uuid(id), .uuid(teamId)]).isEmpty)
        }
    }

    public func webhookDeliveries(webhookId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WebhookDelivery>? {
        guard try await webhook(id: webhookId, teamId: teamId) != nil else { return nil }
        let total =
            try await read("SELECT COUNT(*) AS total FROM webhook_deliveries WHERE webhook_id = ?", [.uuid(webhookId)]).first?.int("total") ?? 0
        var deliveries = try await read(
            "SELECT \(Self.deliveryColumns) FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [.uuid(webhookId), .integer(page.perPage), .integer(page.offset)]
        ).map(Self.decodeDelivery)
        try await attachAttempts(&deliveries)
        return Page(items: deliveries, totalCount: total)
    }

    public func webhookDelivery(id: UUID, webhookId: UUID, teamId: UUID) async throws -> WebhookDelivery? {
        var deliveries = try await read(
            "SELECT \(Self.deliveryColumns) FROM webhook_deliveries WHERE id = ? AND webhook_id = ? AND team_id = ?",
            [.uuid(id), .uuid(webhookId), .uuid(teamId)]
        ).map(Self.decodeDelivery)
        try await attachAttempts(&deliveries)
        return deliveries.first
    }

    private func attachAttempts(_ deliveries: inout [WebhookDelivery]) async throws {
        guard !deliveries.isEmpty else { return }
        let placeholders = Array(repeating: "?", count: deliveries.count).joined(separator: ", ")
        let rows = try await read(
            """
            SELECT delivery_id, attempt_number, attempted_at, status_code, latency_ms, attempt_error, next_retry_at
            FROM webhook_attempts WHERE delivery_id IN (\(placeholders)) ORDER BY attempt_number
            """,
            deliveries.map { .uuid($0.id) })
        var byDelivery: [UUID: [WebhookAttempt]] = [:]
        for row in rows {
            let attempt = WebhookAttempt(
                deliveryId: try row.uuid("delivery_id"), number: try row.int("attempt_number"), attemptedAt: try row.date("attempted_at"),
                statusCode: row.column("status_code")?.integer, latencyMilliseconds: row.column("latency_ms")?.double ?? 0,
                error: row.optionalString("attempt_error"), nextRetryAt: row.optionalDate("next_retry_at"))
            byDelivery[attempt.deliveryId, default: []].append(attempt)
        }
        for index in deliveries.indices { deliveries[index].attempts = byDelivery[deliveries[index].id] ?? [] }
    }

    public func redeliver(id: UUID, webhookId: UUID, teamId: UUID, at date: Date) async throws -> WebhookDelivery? {
        let found = try await transaction { connection -> Bool in
            guard
                let row = try await connection.query(
                    "SELECT delivery_status FROM webhook_deliveries WHERE id = ? AND webhook_id = ? AND team_id = ?",
                    [.uuid(id), .uuid(webhookId), .uuid(teamId)]
                ).first
            else { return false }
            guard try row.string("delivery_status") != WebhookDeliveryStatus.pending.rawValue else {
                throw SwitchyardError.conflict("delivery \(id.lowercased) is still pending; it is retried on its schedule")
            }
            _ = try await connection.query(
                """
                UPDATE webhook_deliveries SET delivery_status = 'pending', round_attempts = 0, next_attempt_at = ?, claim_token = NULL
                WHERE id = ?
                """,
                [.date(date), .uuid(id)])
            return true
        }
        return found ? try await webhookDelivery(id: id, webhookId: webhookId, teamId: teamId) : nil
    }

    public func claimDueDeliveries(at date: Date, leaseUntil: Date, limit: Int) async throws -> [ClaimedDelivery] {
        try await transaction { connection in
            let rows = try await connection.query(
                """
                SELECT \(Self.deliveryColumns.split(separator: ",").map { "d." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")),
                    w.webhook_url, w.sealed_secret
                FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                WHERE d.delivery_status = 'pending' AND d.next_attempt_at <= ? AND w.webhook_status = 'active'
                ORDER BY d.next_attempt_at LIMIT ?
                """,
                [.date(date), .integer(limit)])
            var claimed: [ClaimedDelivery] = []
            for row in rows {
                let token = UUID()
                var delivery = try Self.decodeDelivery(row)
                _ = try await connection.query(
                    "UPDATE webhook_deliveries SET next_attempt_at = ?, claim_token = ? WHERE id = ?",
                    [.date(leaseUntil), .uuid(token), .uuid(delivery.id)])
                delivery.nextAttemptAt = leaseUntil
                claimed.append(
                    ClaimedDelivery(
                        delivery: delivery, url: try row.string("webhook_url"), sealedSecret: try row.string("sealed_secret"), claimToken: token))
            }
            return claimed
        }
    }

    public func recordDeliveryAttempt(_ attempt: WebhookAttempt, claimToken: UUID) async throws -> Bool {
        try await transaction { connection in
            let status: WebhookDeliveryStatus = attempt.succeeded ? .delivered : attempt.nextRetryAt == nil ? .dead : .pending
            guard
                let row = try await connection.query(
                    """
                    UPDATE webhook_deliveries SET delivery_status = ?, attempt_count = attempt_count + 1, round_attempts = round_attempts + 1,
                        next_attempt_at = ?, claim_token = NULL, delivered_at = ?, last_status_code = ?, last_error = ?
                    WHERE id = ? AND claim_token = ? RETURNING webhook_id, attempt_count
                    """,
                    [
                        .text(status.rawValue), .date(attempt.succeeded ? nil : attempt.nextRetryAt),
                        .date(attempt.succeeded ? attempt.attemptedAt : nil),
                        attempt.statusCode.map { .integer($0) } ?? .null, attempt.error.map(SQLiteData.text) ?? .null, .uuid(attempt.deliveryId),
                        .uuid(claimToken),
                    ]
                ).first
            else { return false }
            _ = try await connection.query(
                """
                INSERT INTO webhook_attempts (delivery_id, attempt_number, attempted_at, status_code, latency_ms, attempt_error, next_retry_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .uuid(attempt.deliveryId), .integer(try row.int("attempt_count")), .date(attempt.attemptedAt),
                    attempt.statusCode.map { .integer($0) } ?? .null, .float(attempt.latencyMilliseconds),
                    attempt.error.map(SQLiteData.text) ?? .null,
                    .date(attempt.succeeded ? nil : attempt.nextRetryAt),
                ])
            if attempt.succeeded {
                _ = try await connection.query(
                    "UPDATE webhooks SET last_delivered_at = ? WHERE id = ?", [.date(attempt.attemptedAt), .uuid(try row.uuid("webhook_id"))])
            }
            return true
        }
    }

    public func nextDeliveryDue() async throws -> Date? {
        try await read("SELECT MIN(next_attempt_at) AS due FROM webhook_deliveries WHERE delivery_status = 'pending'", []).first?
            .optionalDate("due")
    }

    /// Writes the outbox rows for a task that just ended: one per active webhook of its team subscribed to the
    /// event. Runs inside the transaction that wrote the terminal state.
    static func enqueueWebhookDeliveries(for task: TaskRecord, at date: Date, on connection: SQLiteConnection) async throws {
        guard let event = WebhookEvent(terminal: task.status) else { return }
        let webhooks = try await connection.query(
            "SELECT id FROM webhooks WHERE team_id = ? AND webhook_status = 'active' AND webhook_events LIKE ?",
            [.uuid(task.teamId), .text(Webhook.storedEventPattern(event))])
        guard !webhooks.isEmpty else { return }
        let payload = WebhookPayload.make(for: task, event: event).jsonString
        for row in webhooks {
            _ = try await connection.query(
                """
                INSERT INTO webhook_deliveries (id, webhook_id, team_id, task_id, event_type, payload, delivery_status, attempt_count,
                    round_attempts, next_attempt_at, created_at)
                VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?)
                """,
                [
                    .uuid(UUIDv7.make(at: date)), .uuid(try row.uuid("id")), .uuid(task.teamId), .uuid(task.id), .text(event.rawValue),
                    .text(payload), .date(date), .date(date),
                ])
        }
    }

    static func decodeWebhook(_ row: SQLiteRow) throws -> Webhook {
        guard let status = WebhookStatus(rawValue: try row.string("webhook_status")) else { throw SQLiteDecodingError(column: "webhook_status") }
        return Webhook(
            id: try row.uuid("id"), teamId: try row.uuid("team_id"), displayName: try row.string("display_name"),
            url: try row.string("webhook_url"), sealedSecret: try row.string("sealed_secret"),
            events: try Webhook.events(stored: try row.string("webhook_events")), status: status, createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"), lastDeliveredAt: row.optionalDate("last_delivered_at"))
    }

    static func decodeDelivery(_ row: SQLiteRow) throws -> WebhookDelivery {
        guard let event = WebhookEvent(rawValue: try row.string("event_type")) else { throw SQLiteDecodingError(column: "event_type") }
        guard let status = WebhookDeliveryStatus(rawValue: try row.string("delivery_status")) else {
            throw SQLiteDecodingError(column: "delivery_status")
        }
        return WebhookDelivery(
            id: try row.uuid("id"), webhookId: try row.uuid("webhook_id"), teamId: try row.uuid("team_id"), taskId: try row.uuid("task_id"),
            event: event, payload: try row.string("payload"), status: status, attemptCount: try row.int("attempt_count"),
            roundAttempts: try row.int("round_attempts"), nextAttemptAt: row.optionalDate("next_attempt_at"), createdAt: try row.date("created_at"),
            deliveredAt: row.optionalDate("delivered_at"), lastStatusCode: row.column("last_status_code")?.integer,
            lastError: row.optionalString("last_error"))
    }
}
