import Foundation

/// The events a webhook can subscribe to (api.md §3.10). `task.cancelled` is Switchyard's opt-in extension.
public enum WebhookEvent: String, Sendable, CaseIterable, Codable {
    case taskCompleted = "task.completed"
    case taskFailed = "task.failed"
    case taskCancelled = "task.cancelled"

    /// The event a task ending in `status` raises; nil for a status that is not terminal.
    public init?(terminal status: TaskStatus) {
        switch status {
        case .completed: self = .taskCompleted
        case .failed: self = .taskFailed
        case .cancelled: self = .taskCancelled
        case .pending, .waiting, .queued, .running: return nil
        }
    }
}

/// `webhook_status`: only `active` webhooks receive deliveries.
public enum WebhookStatus: String, Sendable, CaseIterable, Codable {
    case active
    case disabled
}

/// A team's subscription to task events. The signing secret is kept sealed (encrypted) at rest; the server
/// opens it to sign a delivery or to show it to an admin.
public struct Webhook: Sendable, Equatable {
    public var id: UUID
    public var teamId: UUID
    public var displayName: String
    public var url: String
    /// The encrypted `whsec_…` secret, as the server sealed it.
    public var sealedSecret: String
    public var events: [WebhookEvent]
    public var status: WebhookStatus
    public var createdAt: Date
    public var updatedAt: Date
    public var lastDeliveredAt: Date?

    public init(
        id: UUID, teamId: UUID, displayName: String, url: String, sealedSecret: String, events: [WebhookEvent], status: WebhookStatus,
        createdAt: Date, updatedAt: Date, lastDeliveredAt: Date? = nil
    ) {
        self.id = id
        self.teamId = teamId
        self.displayName = displayName
        self.url = url
        self.sealedSecret = sealedSecret
        self.events = events
        self.status = status
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastDeliveredAt = lastDeliveredAt
    }

    /// How the subscribed events are stored: a JSON array in a fixed order, so `LIKE '%"task.failed"%'` finds them.
    public var storedEvents: String {
        StoredJSON.text(WebhookEvent.allCases.filter(events.contains).map(\.rawValue))
    }

    /// The `LIKE` pattern that matches webhooks subscribed to `event`.
    public static func storedEventPattern(_ event: WebhookEvent) -> String { "%\"\(event.rawValue)\"%" }

    /// Decodes `storedEvents`.
    public static func events(stored: String) throws -> [WebhookEvent] {
        try StoredJSON.strings(stored).compactMap(WebhookEvent.init(rawValue:))
    }
}

/// Where a delivery is in its life.
public enum WebhookDeliveryStatus: String, Sendable, CaseIterable, Codable {
    /// Waiting for its next attempt (or being attempted).
    case pending
    /// A 2xx answer was received.
    case delivered
    /// Every attempt of the schedule failed; only a redelivery sends it again.
    case dead
}

/// One event for one webhook: an outbox row written in the transaction that ended the task, so no event is
/// lost across a crash. Its id is the Standard Webhooks `webhook-id`, stable across retries and redeliveries.
public struct WebhookDelivery: Sendable, Equatable {
    public var id: UUID
    public var webhookId: UUID
    public var teamId: UUID
    public var taskId: UUID
    public var event: WebhookEvent
    /// The exact body sent (compact JSON), fixed when the task ended.
    public var payload: String
    public var status: WebhookDeliveryStatus
    /// Attempts made in all.
    public var attemptCount: Int
    /// Attempts made since the delivery was created or last redelivered (positions in the retry schedule).
    public var roundAttempts: Int
    /// When the next attempt is due; nil once delivered or dead.
    public var nextAttemptAt: Date?
    public var createdAt: Date
    public var deliveredAt: Date?
    public var lastStatusCode: Int?
    public var lastError: String?
    /// The attempts, oldest first (filled by the delivery-log read).
    public var attempts: [WebhookAttempt]

    public init(
        id: UUID, webhookId: UUID, teamId: UUID, taskId: UUID, event: WebhookEvent, payload: String, status: WebhookDeliveryStatus = .pending,
        attemptCount: Int = 0, roundAttempts: Int = 0, nextAttemptAt: Date?, createdAt: Date, deliveredAt: Date? = nil,
        lastStatusCode: Int? = nil, lastError: String? = nil, attempts: [WebhookAttempt] = []
    ) {
        self.id = id
        self.webhookId = webhookId
        self.teamId = teamId
        self.taskId = taskId
        self.event = event
        self.payload = payload
        self.status = status
        self.attemptCount = attemptCount
        self.roundAttempts = roundAttempts
        self.nextAttemptAt = nextAttemptAt
        self.createdAt = createdAt
        self.deliveredAt = deliveredAt
        self.lastStatusCode = lastStatusCode
        self.lastError = lastError
        self.attempts = attempts
    }
}

/// One POST of a delivery, as the delivery log shows it.
public struct WebhookAttempt: Sendable, Equatable {
    public var deliveryId: UUID
    /// 1 for the first attempt of the delivery, counting across redeliveries.
    public var number: Int
    public var attemptedAt: Date
    /// The receiver's status code; nil when no answer came (refused, timed out, blocked).
    public var statusCode: Int?
    public var latencyMilliseconds: Double
    /// Why the attempt failed; nil on success.
    public var error: String?
    /// When the next attempt is due; nil when this one succeeded or the delivery died.
    public var nextRetryAt: Date?

    public init(
        deliveryId: UUID, number: Int, attemptedAt: Date, statusCode: Int?, latencyMilliseconds: Double, error: String?, nextRetryAt: Date?
    ) {
        self.deliveryId = deliveryId
        self.number = number
        self.attemptedAt = attemptedAt
        self.statusCode = statusCode
        self.latencyMilliseconds = latencyMilliseconds
        self.error = error
        self.nextRetryAt = nextRetryAt
    }

    public var succeeded: Bool { statusCode.map { (200..<300).contains($0) } ?? false }
}

/// A due delivery handed to the sender, with what it needs to send it. `claimToken` makes the sender's later
/// write conditional: if its claim lapsed and another sender took the delivery, the stale result is dropped.
public struct ClaimedDelivery: Sendable, Equatable {
    public var delivery: WebhookDelivery
    public var url: String
    public var sealedSecret: String
    public var claimToken: UUID

    public init(delivery: WebhookDelivery, url: String, sealedSecret: String, claimToken: UUID) {
        self.delivery = delivery
        self.url = url
        self.sealedSecret = sealedSecret
        self.claimToken = claimToken
    }
}

/// api.md §3.10: a failed attempt is retried up to 4 times — immediately, then after 5 s, 30 s and 2 min — and
/// the delivery is dead after the fifth failure.
public enum WebhookRetrySchedule {
    public static let delays: [TimeInterval] = [0, 5, 30, 120]

    /// The wait before the next attempt after `failedAttempts` failures in this round; nil when the delivery is dead.
    public static func delay(afterFailures failedAttempts: Int) -> TimeInterval? {
        guard failedAttempts >= 1, failedAttempts <= delays.count else { return nil }
        return delays[failedAttempts - 1]
    }

    /// Attempts in one round: the first and its retries.
    public static var attemptsPerRound: Int { delays.count + 1 }
}

/// The body of a delivery (api.md §3.10): references to outputs (storage keys), never their bytes.
public enum WebhookPayload {
    public static func make(for task: TaskRecord, event: WebhookEvent) -> JSONValue {
        [
            "event_type": .string(event.rawValue),
            "task_id": .string(task.id.lowercased),
            "workflow_id": .string(task.workflowId.lowercased),
            "task_status": .string(task.status.rawValue),
            "task_output": task.status == .completed ? (task.output ?? .null) : .null,
            "task_error": .string(task.error),
            "timestamp": .string(RFC3339.format(task.completedAt ?? task.updatedAt)),
        ]
    }
}
