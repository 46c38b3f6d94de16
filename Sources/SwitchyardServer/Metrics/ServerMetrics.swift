import Foundation
import HTTPTypes
import Prometheus
import SwitchyardCore
import Synchronization

/// The server's Prometheus metrics (docs/operations.md, "Metrics"), one registry per built server: `/metrics`
/// renders it. Counters and histograms are recorded where things happen; gauges that describe a state (tasks by
/// status, connected agents, open streams, the database pool) are read when `/metrics` is scraped.
///
/// Names follow Prometheus' conventions (`switchyard_` prefix, base units, `_total` on counters), every family has
/// a HELP line, and labels are bounded: routes are the router's patterns (`/api/v1/r/tasks/{id}`), never raw paths.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// Latency buckets for HTTP requests and dispatch, in seconds: 1 ms to 10 s.
    static let fastBuckets: [Duration] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10].map { .seconds($0) }
    /// Buckets for time spent waiting in the queue: 10 ms to 1 h.
    static let queueBuckets: [Duration] = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600].map { .seconds($0) }

    private struct RouteKey: Hashable {
        var method: HTTPRequest.Method
        var route: String
        var status: Int
    }

    private let requestInstruments = Mutex<[RouteKey: (count: Counter, duration: DurationHistogram)]>([:])
    private let requestsInFlight: Gauge
    private let queueWait: DurationHistogram
    private let dispatchLatency: DurationHistogram
    private let webhookDuration: DurationHistogram
    private let storeReceived: Counter
    private let storeSent: Counter
    /// One counter per status, made up front: a transition is counted without a registry lookup.
    private let transitions: [TaskStatus: Counter]

    public init(version: String = SwitchyardVersion.current, backend: String) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        requestsInFlight = registry.makeGauge(descriptor: Self.name("http_requests_in_flight", help: "HTTP requests being answered now."))
        queueWait = registry.makeDurationHistogram(
            descriptor: Self.name(
                "queue_wait", unit: "seconds", help: "Time from a task's submission to its first assignment to an agent (this replica's dispatcher)."),
            buckets: Self.queueBuckets)
        dispatchLatency = registry.makeDurationHistogram(
            descriptor: Self.name(
                "dispatch_latency", unit: "seconds",
                help:
                    "Time from the dispatcher's decision to give a task to an agent to the offer on the agent's socket (includes writing the assignment)."
            ),
            buckets: Self.fastBuckets)
        webhookDuration = registry.makeDurationHistogram(
            descriptor: Self.name("webhook_attempt_duration", unit: "seconds", help: "Time a webhook delivery attempt took, answered or not."),
            buckets: Self.fastBuckets)
        transitions = Dictionary(
            uniqueKeysWithValues: TaskStatus.allCases.map { status in
                (
                    status,
                    registry.makeCounter(
                        descriptor: Self.name(
                            "task_transitions", unit: "total", help: "Task state transitions made by this replica, by the status reached."),
                        labels: [("status", status.rawValue)])
                )
            })
        storeReceived = registry.makeCounter(
            descriptor: Self.name("object_store_received_bytes", unit: "total", help: "Bytes the embedded object store accepted in uploads."))
        storeSent = registry.makeCounter(
            descriptor: Self.name("object_store_sent_bytes", unit: "total", help: "Bytes the embedded object store sent in downloads."))
        registry.makeGauge(
            descriptor: Self.name("build_info", help: "Always 1; the labels say which version runs on which storage backend."),
            labels: [("version", version), ("backend", backend)]
        ).set(to: 1)
        registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "process_start_time", unitName: "seconds", helpText: "Start time of the process since the Unix epoch, in seconds.")
        )
        .set(to: Date().timeIntervalSince1970)
    }

    static func name(_ metric: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "switchyard", metricName: metric, unitName: unit, helpText: help)
    }

    // MARK: Recorded where they happen

    /// An API request arrived; `requestFinished` follows once its answer is ready.
    func requestStarted() {
        requestsInFlight.increment()
    }

    func requestFinished(method: HTTPRequest.Method, route: String, status: HTTPResponse.Status, duration: Duration) {
        requestsInFlight.decrement()
        let key = RouteKey(method: method, route: route, status: status.code)
        let instruments = requestInstruments.withLock { cache in
            if let found = cache[key] { return found }
            let made = (
                count: registry.makeCounter(
                    descriptor: Self.name("http_requests", unit: "total", help: "HTTP requests answered, by method, route pattern and status."),
                    labels: [("method", method.rawValue), ("route", route), ("status", String(status.code))]),
                duration: registry.makeDurationHistogram(
                    descriptor: Self.name(
                        "http_request_duration", unit: "seconds",
                        help: "Time to answer an HTTP request (to the response head; an event stream's life is not counted)."),
                    labels: [("method", method.rawValue), ("route", route)], buckets: Self.fastBuckets)
            )
            cache[key] = made
            return made
        }
        instruments.count.increment()
        instruments.duration.record(duration)
    }

    /// A task reached `status` on this replica (one count per transition the task-transition log line records).
    func taskTransition(to status: TaskStatus) {
        transitions[status]?.increment()
    }

    /// An agent sent faster than its messages were handled: the server stopped reading its socket for a while.
    func agentReadPaused() {
        registry.makeCounter(
            descriptor: Self.name(
                "agent_reads_paused", unit: "total",
                help: "Times the server stopped reading an agent's socket because too much of its input waited unhandled.")
        )
        .increment()
    }

    func taskAssigned(waited: TimeInterval) {
        queueWait.record(.milliseconds(Int64(max(0, waited) * 1000)))
    }

    func offerSent(after latency: Duration) {
        dispatchLatency.record(latency)
    }

    /// One webhook delivery attempt: `delivered` (2xx), `failed` (retried later) or `dead` (no retry left).
    func webhookAttempt(outcome: String, duration: Duration) {
        registry.makeCounter(
            descriptor: Self.name("webhook_attempts", unit: "total", help: "Webhook delivery attempts, by outcome (delivered, failed, dead)."),
            labels: [("outcome", outcome)]
        ).increment()
        webhookDuration.record(duration)
    }

    func objectStoreRequest(method: HTTPRequest.Method, status: HTTPResponse.Status) {
        registry.makeCounter(
            descriptor: Self.name("object_store_requests", unit: "total", help: "Requests the embedded object store answered, by method and status."),
            labels: [("method", method.rawValue), ("status", String(status.code))]
        ).increment()
    }

    func objectStoreReceived(bytes: Int) { storeReceived.increment(by: Int64(bytes)) }
    func objectStoreSent(bytes: Int) { storeSent.increment(by: Int64(bytes)) }

    // MARK: Read when scraped

    /// Sets a gauge family's members: every value in `values`, and 0 for the `known` label values not in it (a
    /// status that emptied must read 0, not keep its last count).
    func setGauges(_ metric: String, help: String, label: String, known: [String], values: [String: Double]) {
        for value in Set(known).union(values.keys).sorted() {
            registry.makeGauge(descriptor: Self.name(metric, help: help), labels: [(label, value)]).set(to: values[value] ?? 0)
        }
    }

    func setGauge(_ metric: String, unit: String = "", help: String, _ value: Double) {
        registry.makeGauge(descriptor: Self.name(metric, unit: unit, help: help)).set(to: value)
    }

    /// The exposition text (format 0.0.4).
    func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}
