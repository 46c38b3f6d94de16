import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import SwitchyardWire
import Testing

@testable import SwitchyardServer

/// `GET /metrics` (docs/operations.md, "Metrics"): what a scrape shows after real traffic, its protection and its
/// switch. CI also runs Prometheus' own linter (`promtool check metrics`) on a scrape after the smoke tour.
@Suite("Metrics")
struct MetricsTests {
    /// One scrape, parsed: every sample by its name and label set.
    struct Scrape {
        let text: String
        private(set) var samples: [(name: String, labels: [String: String], value: Double)] = []

        init(_ text: String) throws {
            self.text = text
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                    throw TestSupportError("not a sample line: \(line)")
                }
                let series = line[..<space]
                guard let open = series.firstIndex(of: "{") else {
                    samples.append((String(series), [:], value))
                    continue
                }
                var labels: [String: String] = [:]
                for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
                }
                samples.append((String(series[..<open]), labels, value))
            }
        }

        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
    }

    static func scrape(_ client: any TestClientProtocol, authorization: String? = nil) async throws -> (HTTPResponse.Status, Scrape?) {
        var headers = HTTPFields()
        if let authorization { headers[.authorization] = authorization }
        let response = try await client.execute(uri: "/metrics", method: .get, headers: headers, body: nil)
        guard response.status == .ok else { return (response.status, nil) }
        #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
        return (response.status, try Scrape(String(buffer: response.body)))
    }

    @Test(
        "a task's life, an agent, an upload and the API's routes show up, labelled by route pattern and never by id", arguments: TestBackend.available
    )
    func traffic(_ backend: TestBackend) async throws {
        try await TestApp.with(backend, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            _ = try await app.upload(client, token: app.bootstrap.integrationKey, bytes: Array(repeating: 7, count: 1000))
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { agent in
                let task = try await app.run(client)
                let offer = try await agent.offer()
                var (_, scrape) = try await Self.scrape(client)
                var metrics = try #require(scrape)
                #expect(metrics.value("switchyard_tasks", ["status": "queued"]) == 1)
                #expect(metrics.value("switchyard_tasks", ["status": "pending"]) == 0)
                #expect(metrics.value("switchyard_agents", ["status": "busy"]) == 1)
                #expect(metrics.value("switchyard_dispatch_latency_seconds_count") == 1)
                #expect(metrics.value("switchyard_queue_wait_seconds_count") == 1)

                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                try await agent.send(.fail(.init(attemptId: offer.attemptId, error: "node 3: out of memory", fault: .task)))
                #expect(try await app.followEvents(port: client.port!, task).contains("event: failed"))
                // Within a second of the last scrape the census is the one read then (one count a second at most)…
                (_, scrape) = try await Self.scrape(client)
                #expect(try #require(scrape).value("switchyard_tasks", ["status": "queued"]) == 1)
                // …and read again after it.
                app.clock.advance(by: 1)
                (_, scrape) = try await Self.scrape(client)
                metrics = try #require(scrape)
                for status in ["queued", "running", "failed"] {
                    #expect(metrics.value("switchyard_task_transitions_total", ["status": status]) == 1, "\(status)")
                }
                #expect(metrics.value("switchyard_tasks", ["status": "queued"]) == 0)
                #expect(metrics.value("switchyard_tasks", ["status": "running"]) == 0)
                #expect(!metrics.text.contains(task.lowercased))
            }
            let (_, scrape) = try await Self.scrape(client)
            let metrics = try #require(scrape)
            let runs = metrics.samples.filter { $0.name == "switchyard_http_requests_total" && $0.labels["status"] == "202" }
            #expect(runs.map(\.labels["route"]) == ["/api/v1/r/workflows/slug/{workflowSlug}/run"])
            #expect(metrics.value("switchyard_http_requests_total", ["method": "GET", "route": "/metrics", "status": "200"]) == 3)
            #expect(metrics.value("switchyard_object_store_received_bytes_total") == 1000)
            #expect(metrics.value("switchyard_object_store_requests_total", ["method": "PUT", "status": "200"]) == 1)
            #expect(metrics.value("switchyard_database_up") == 1)
            // SQLite: the writer and two readers; PostgreSQL: the pool's size, at least 16.
            let connections = try #require(metrics.value("switchyard_database_connections_max"))
            #expect(backend == .sqlite ? connections == 3 : connections >= 16)
            #expect(metrics.value("switchyard_build_info", ["version": SwitchyardVersion.current, "backend": backend.rawValue]) == 1)
            // The request in flight is the scrape itself.
            #expect(metrics.value("switchyard_http_requests_in_flight") == 1)
        }
    }

    @Test("metrics.token: a scrape without it, or with another, is a 401; with it, the metrics")
    func token() async throws {
        try await TestApp.with(.sqlite, configure: { $0.metricsToken = "scrape-secret" }) { app, client in
            #expect(try await Self.scrape(client).0 == .unauthorized)
            #expect(try await Self.scrape(client, authorization: "Bearer scrape-secreT").0 == .unauthorized)
            #expect(try await Self.scrape(client, authorization: "Bearer \(app.bootstrap.integrationKey)").0 == .unauthorized)
            let (status, scrape) = try await Self.scrape(client, authorization: "Bearer scrape-secret")
            #expect(status == .ok && scrape?.value("switchyard_database_up") == 1)
        }
    }

    @Test("metrics.enabled false: there is no /metrics")
    func disabled() async throws {
        try await TestApp.with(.sqlite, configure: { $0.metricsEnabled = false }) { _, client in
            let (status, _) = try await Self.scrape(client)
            #expect(status == .notFound)
        }
    }
}
