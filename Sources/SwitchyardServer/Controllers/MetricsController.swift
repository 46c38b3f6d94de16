import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore
import Synchronization

/// `GET /metrics`: the server's metrics in Prometheus' text format (docs/operations.md, "Metrics"). With
/// `metrics.token` set, a scrape must send `Authorization: Bearer <token>`; anything else is a 401 that looks the
/// same whatever was sent.
struct MetricsController {
    let metrics: ServerMetrics
    let token: String?
    let storage: any SwitchyardStorage
    let dispatcher: Dispatcher
    let streams: StreamLimiter
    let clock: any WallClock
    /// The last census and when it was read: scrapes within a second of it reuse it, so hammering an open `/metrics`
    /// costs the database at most one count a second.
    private let lastCensus = CensusCache()

    final class CensusCache: Sendable {
        let value = Mutex<(at: Date, census: TaskCensus)?>(nil)
    }

    init(metrics: ServerMetrics, token: String?, storage: any SwitchyardStorage, dispatcher: Dispatcher, streams: StreamLimiter, clock: any WallClock)
    {
        self.metrics = metrics
        self.token = token
        self.storage = storage
        self.dispatcher = dispatcher
        self.streams = streams
        self.clock = clock
    }

    func addRoutes(to router: Router<SwitchyardRequestContext>) {
        router.get("metrics") { request, _ in
            if let token {
                let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
                guard ConstantTime.equals(presented, token) else {
                    var response = try APIJSON.response(
                        ["error_message": "GET /metrics needs Authorization: Bearer <metrics.token>"], status: .unauthorized)
                    response.headers[.wwwAuthenticate] = "Bearer realm=\"metrics\""
                    return response
                }
            }
            await collect()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
    }

    /// Reads the gauges that describe the present: tasks by status and the oldest waiting one (the database's view,
    /// every replica's tasks), agents connected here, open event streams, the database pool.
    private func collect() async {
        let pool = storage.poolUsage
        metrics.setGauge("database_connections_max", help: "Connections the storage opens at most.", Double(pool.maximumConnections))
        metrics.setGauge(
            "database_operations_in_flight", help: "Database operations holding or waiting for a connection now.", Double(pool.operationsInFlight))
        metrics.setGauge("event_streams", help: "Task event streams (SSE) open on this replica.", Double(streams.openStreams))
        let agents = await dispatcher.connectedAgentsByStatus()
        metrics.setGauges(
            "agents", help: "Agents connected to this replica, by status.", label: "status", known: AgentStatus.allCases.map(\.rawValue),
            values: Dictionary(uniqueKeysWithValues: agents.map { ($0.key.rawValue, Double($0.value)) }))
        do {
            let now = clock.now()
            let census: TaskCensus
            if let cached = lastCensus.value.withLock({ $0 }), now.timeIntervalSince(cached.at) < 1, now >= cached.at {
                census = cached.census
            } else {
                census = try await storage.taskCensus()
                lastCensus.value.withLock { $0 = (now, census) }
            }
            metrics.setGauges(
                "tasks", help: "Tasks that have not ended, by status (all replicas).", label: "status",
                known: [TaskStatus.pending, .waiting, .queued, .running].map(\.rawValue),
                values: Dictionary(uniqueKeysWithValues: census.counts.map { ($0.key.rawValue, Double($0.value)) }))
            metrics.setGauge(
                "queue_oldest_age", unit: "seconds", help: "How long the oldest task still waiting for an agent has waited (0: none waits).",
                census.oldestWaitingSince.map { max(0, now.timeIntervalSince($0)) } ?? 0)
            metrics.setGauge("database_up", help: "1 when the last scrape could read the database, else 0.", 1)
        } catch {
            metrics.setGauge("database_up", help: "1 when the last scrape could read the database, else 0.", 0)
        }
    }
}
