import Foundation
import HummingbirdTesting
import SwitchyardCore
import SwitchyardServer
import SwitchyardTestSupport
import SwitchyardWire
import Testing

@Suite("Replicas: notifications between servers on one PostgreSQL")
struct ReplicaTests {
    @Test("the compact notification text round-trips; another replica's payload parses, its own is skipped")
    func encoding() throws {
        let (task, team) = (UUID(), UUID())
        let all: [ReplicaNotification] = [.submitted(taskId: task, teamId: team), .cancelled(taskId: task), .changed(taskId: task), .resync]
        for notification in all {
            #expect(ReplicaNotification(encoded: Substring(notification.encoded)) == notification)
        }
        #expect(ReplicaNotification(encoded: "x123") == nil && ReplicaNotification(encoded: "cnot-a-uuid") == nil)
    }

    /// Both replicas re-read nothing on a timer here (rescan and stream re-read an hour apart), so whatever moves
    /// across them moved because one told the other.
    static func notificationsOnly(_ configuration: inout ServerConfiguration) {
        configuration.dispatch.rescanInterval = 3600
        configuration.dispatch.streamRereadInterval = 3600
    }

    @Test(
        "a run submitted on A is offered at once to the agent on B; B's events reach a stream on A; a cancel on A stops B's agent",
        .enabled(if: TestBackend.postgresURL != nil, "needs SWITCHYARD_TEST_POSTGRES_URL"))
    func acrossReplicas() async throws {
        try await TestApp.withReplicas(.postgres, configure: Self.notificationsOnly) { a, clientA, b, clientB in
            let session = try await a.ownerSession(clientA)
            _ = try await a.importWorkflow(clientA, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: clientB.port!, key: a.bootstrap.agentKey, hello: WireTestAgent.hello("on-b")) { agent in
                // B's first tick reads the backlog once (a start-up scan); after it only a notification moves anything.
                await b.built.dispatcher.tick()
                let taskId = try await a.run(clientA, body: #"{"parameters": {"color": 7}}"#)
                let offer = try await agent.offer()
                #expect(offer.taskId == taskId.lowercased)

                let stream = Task {
                    try await a.call(clientA, .get, "/api/v1/r/tasks/\(taskId.lowercased)/events", token: a.bootstrap.integrationKey)
                }
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                try await agent.send(.complete(.init(attemptId: offer.attemptId, outputs: [])))
                let events = String(buffer: try await stream.value.body)
                #expect(events.contains("event: completed"), "the stream on A heard B's completion: \(events)")
                #expect(try await b.taskJSON(clientB, taskId)["task_status"] as? String == "completed")

                let second = try await a.run(clientA, body: #"{"parameters": {"color": 8}}"#)
                let running = try await agent.offer()
                #expect(running.taskId == second.lowercased)
                try await agent.send(.ack(.init(attemptId: running.attemptId)))
                let cancel = try await a.call(
                    clientA, .post, "/api/v1/r/tasks/\(second.lowercased)/cancel", token: a.bootstrap.integrationKey, body: "{}")
                #expect(cancel.status == .ok)
                let stop = try await agent.receive(within: .seconds(5), "cancel") { if case .cancel(let ref) = $0 { ref } else { nil } }
                #expect(stop.attemptId == running.attemptId)
            }
        }
    }
}
