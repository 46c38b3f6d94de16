import Foundation
import HummingbirdTesting
import SwitchyardCore
import SwitchyardTestSupport
import SwitchyardWire
import Synchronization
import Testing

@testable import SwitchyardServer

@Suite("Replicas: notifications between servers on one PostgreSQL")
struct ReplicaTests {
    @Test("the compact notification text round-trips; another replica's payload parses, its own is skipped")
    func encoding() throws {
        let (task, team) = (UUID(), UUID())
        let dispatch = ReplicaNotification.Dispatch(
            createdAt: Date(timeIntervalSince1970: 1_767_225_600.123456), workflowId: UUID(), workflowVersion: 3, pool: .community,
            submitterRegion: "eu-west:1,a")
        var plain = dispatch
        plain.submitterRegion = nil
        let all: [ReplicaNotification] = [
            .submitted(taskId: task, teamId: team), .submitted(taskId: task, teamId: team, dispatch: dispatch),
            .submitted(taskId: task, teamId: team, dispatch: plain), .cancelled(taskId: task), .changed(taskId: task), .resync,
            .modelsChanged(teamId: team),
            .cloudChanged(teamId: team),
            .heldElsewhere(teamId: team, agentId: "gpu:01,a", gatewayId: "gw-1234abcd", attempts: [UUID(), UUID()]),
            .heldElsewhere(teamId: team, agentId: "x", gatewayId: "gw-1", attempts: []),
        ]
        for notification in all {
            #expect(ReplicaNotification(encoded: Substring(notification.encoded)) == notification)
        }
        #expect(ReplicaNotification(encoded: "x123") == nil && ReplicaNotification(encoded: "cnot-a-uuid") == nil)
        // Entries are comma-separated in one payload: a region with a comma or colon travels as hex.
        #expect(!ReplicaNotification.submitted(taskId: task, teamId: team, dispatch: dispatch).encoded.contains(","))
    }

    /// Gives a waiting task to `agent` as replica `gateway` would have (written straight to the database); the attempt.
    static func assign(_ id: UUID, agent: String, gateway: String, in app: TestApp) async throws -> UUID {
        let now = app.clock.now()
        let attemptId = UUIDv7.make(at: now)
        let assignment = AttemptAssignment(attemptId: attemptId, agentId: agent, agentLabels: ["gpu", "comfyui"], gatewayId: gateway, gpuType: nil)
        _ = try #require(try await app.storage.assignTask(id: id, to: assignment, at: now))
        return attemptId
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
                #expect(try await b.task(clientB, taskId).status == .completed)

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

    @Test(
        "an agent whose connection to A dropped reconnects to B while A lives: A hands its attempt over (rather than failing it after its grace), and the task completes on B once, no retry used",
        .enabled(if: TestBackend.postgresURL != nil, "needs SWITCHYARD_TEST_POSTGRES_URL"), .timeLimit(.minutes(1)))
    func handOverToAnotherReplica() async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = {
            $0.dispatch.rescanInterval = 3600
            $0.dispatch.heartbeatInterval = 300
            $0.dispatch.reconnectGrace = 5
            $0.dispatch.replicaLeaseTimeout = 60
        }
        try await TestApp.withReplicas(.postgres, configure: configure) { a, clientA, b, clientB in
            let session = try await a.ownerSession(clientA)
            _ = try await a.importWorkflow(clientA, session: session, body: try TestApp.invertImport())
            let held = Mutex("")
            let taskId = try await a.run(clientA)
            try await WireTestAgent.connect(port: clientA.port!, key: a.bootstrap.agentKey, hello: WireTestAgent.hello("mover")) { agent in
                let offer = try await agent.offer()
                held.withLock { $0 = offer.attemptId }
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                _ = try await a.waitForTask(clientA, taskId) { $0.status == .running }
            }
            await a.built.dispatcher.sessionEnded(teamId: a.bootstrap.teamId, agentId: "mover")
            let attemptId = held.withLock { $0 }
            // What A hears from the other replica, heard here too: the test knows when the announcement arrived.
            let heardByA = a.storage.notifier.notifications()
            try await WireTestAgent.connect(
                port: clientB.port!, key: a.bootstrap.agentKey, hello: WireTestAgent.hello("mover", held: [attemptId])
            ) { agent in
                #expect(agent.welcome.keptAttempts == [attemptId], "claimed on B")
                // A hears that the agent is on B and gives the attempt's row to B. (Handed to A's dispatcher here as
                // well, whichever gets it first acts: once `heard` and the writes in flight are done, it is written.)
                var announcement: ReplicaNotification?
                for await notification in heardByA {
                    if case .heldElsewhere = notification {
                        announcement = notification
                        break
                    }
                }
                await a.built.dispatcher.heard(try #require(announcement))
                await a.built.dispatcher.writesSettled()
                let gatewayB = await b.built.dispatcher.gatewayId
                #expect(try await a.storage.activeTasks().first(where: { $0.id == taskId })?.gatewayId == gatewayB)
                // A's grace for the agent passes: it no longer holds the attempt, so it fails nothing.
                a.clock.advance(by: 6)
                await a.built.dispatcher.tick()
                let running = try await a.task(clientA, taskId)
                #expect(running.status == .running && running.retryCount == 0)
                // B's claim ends: the row names B, so B keeps it (no cancel to the agent), and the end is recorded.
                a.clock.advance(by: 59)
                await a.built.dispatcher.tick()
                await b.built.dispatcher.tick()
                try await agent.send(.complete(.init(attemptId: attemptId, outputs: [])))
                let done = try await b.waitForTask(clientB, taskId) { $0.status == .completed }
                #expect(done.retryCount == 0)
                await #expect(throws: (any Error).self) {
                    _ = try await agent.receive(within: .milliseconds(200), "cancel") { if case .cancel(let ref) = $0 { ref } else { nil } }
                }
            }
        }
    }

    @Test(
        "a replica that stops renewing its lease: its agents are marked disconnected, an agent that reconnects here keeps its attempt, unclaimed ones go back to waiting without a retry, a live replica's are left alone",
        arguments: TestBackend.available)
    func deadReplica(backend: TestBackend) async throws {
        try await TestApp.with(backend, live: true, configure: { $0.dispatch.reconnectGrace = 5 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            // No agent connected here: the runs wait, then other replicas (written straight to the database) hold them.
            let kept = try await app.run(client)
            let orphan = try await app.run(client)
            let alive = try await app.run(client)
            let now = app.clock.now()
            let keptAttempt = try await Self.assign(kept, agent: "gpu-01", gateway: "gw-dead", in: app)
            _ = try await Self.assign(orphan, agent: "gpu-02", gateway: "gw-dead", in: app)
            _ = try await Self.assign(alive, agent: "gpu-03", gateway: "gw-alive", in: app)
            try await app.storage.heartbeatReplica(gatewayId: "gw-dead", at: now.addingTimeInterval(-60))
            try await app.storage.heartbeatReplica(gatewayId: "gw-alive", at: now)
            try await app.storage.upsertAgent(
                AgentRecord(
                    teamId: app.bootstrap.teamId, agentId: "gpu-02", credentialId: UUID(), status: .busy, labels: ["gpu"], region: nil,
                    communityOptIn: false, capacity: 1, agentVersion: "test", tool: "comfyui", toolVersion: nil, systemStats: [:],
                    gatewayId: "gw-dead",
                    connectedAt: now, lastHeartbeatAt: now))

            try await app.storage.heartbeatReplica(gatewayId: "gw-alive", at: now.addingTimeInterval(3))
            app.clock.advance(by: 3)
            await app.built.dispatcher.checkReplicas(app.clock.now())
            let listed = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
            #expect((listed["agent_list"]?.arrayValue)?.isEmpty == true, "the dead replica's agent is no longer listed as connected")

            try await WireTestAgent.connect(
                port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu-01", held: [keptAttempt.lowercased])
            ) {
                agent in
                try await agent.send(.ack(.init(attemptId: keptAttempt.lowercased)))
                // Its output was uploaded through the dead replica: the key is in the attempt's folder, not issued here.
                let folder = "outputs/\(app.bootstrap.teamId.lowercased)/\(kept.lowercased)/\(keptAttempt.lowercased)/"
                let output = OutputFile(
                    nodeId: "3", kind: "images", index: 0, fileName: "a_00001_.png", storageKey: folder + "a_00001_.png", contentType: "image/png",
                    size: 4)
                try await agent.send(.complete(.init(attemptId: keptAttempt.lowercased, outputs: [output])))
                let done = try await app.waitForTask(client, kept) { $0.status == .completed }
                #expect(done.retryCount == 0)

                // Past the grace, the attempt nobody reclaimed goes back to waiting (no retry used) and this agent gets it.
                try await app.storage.heartbeatReplica(gatewayId: "gw-alive", at: app.clock.now().addingTimeInterval(6))
                app.clock.advance(by: 6)
                await app.built.dispatcher.checkReplicas(app.clock.now())
                let offer = try await agent.offer()
                #expect(offer.taskId == orphan.lowercased)
                #expect(try await app.task(client, orphan).retryCount == 0)
                #expect(try await app.task(client, alive).status == .queued, "a live replica's attempt is its own")
            }
        }
    }

    @Test(
        "an agent that moves here before its replica's lease expired keeps its attempt once it does; if that replica is alive after all, the attempt goes back to it",
        arguments: TestBackend.available)
    func claimBeforeExpiry(backend: TestBackend) async throws {
        try await TestApp.with(backend, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let moving = try await app.run(client)
            let flapping = try await app.run(client)
            let now = app.clock.now()
            let movingAttempt = try await Self.assign(moving, agent: "gpu-01", gateway: "gw-dying", in: app)
            let flappingAttempt = try await Self.assign(flapping, agent: "gpu-02", gateway: "gw-fine", in: app)
            try await app.storage.heartbeatReplica(gatewayId: "gw-dying", at: now)
            try await app.storage.heartbeatReplica(gatewayId: "gw-fine", at: now)
            let hello1 = WireTestAgent.hello("gpu-01", held: [movingAttempt.lowercased])
            let hello2 = WireTestAgent.hello("gpu-02", held: [flappingAttempt.lowercased])
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: hello1) { first in
                try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: hello2) { second in
                    // gw-dying stops renewing its lease; gw-fine goes on (renewed before the clock moves, so the
                    // dispatcher's own tick never sees it lapse).
                    try await app.storage.heartbeatReplica(gatewayId: "gw-fine", at: now.addingTimeInterval(15))
                    app.clock.advance(by: 15)
                    await app.built.dispatcher.checkReplicas(app.clock.now())
                    try await first.send(.ack(.init(attemptId: movingAttempt.lowercased)))
                    try await first.send(.complete(.init(attemptId: movingAttempt.lowercased, outputs: [])))
                    let done = try await app.waitForTask(client, moving) { $0.status == .completed }
                    #expect(done.retryCount == 0)
                    let handedBack = try await second.receive("cancel") { if case .cancel(let ref) = $0 { ref } else { nil } }
                    #expect(handedBack.attemptId == flappingAttempt.lowercased)
                    #expect(try await app.task(client, flapping).status == .queued, "still gw-fine's")
                }
            }
        }
    }

    @Test("an output reported at a key outside the attempt's own folder fails the attempt (retried): agents write only where they were sent")
    func foreignOutputKey() async throws {
        try await TestApp.withInvertAgent { app, client, agent in
            let taskId = try await app.run(client)
            let offer = try await agent.offer()
            try await agent.send(.ack(.init(attemptId: offer.attemptId)))
            let elsewhere = "outputs/\(app.bootstrap.teamId.lowercased)/\(UUID().lowercased)/\(offer.attemptId)/a.png"
            let output = OutputFile(
                nodeId: "3", kind: "images", index: 0, fileName: "a.png", storageKey: elsewhere, contentType: "image/png", size: 4)
            try await agent.send(.complete(.init(attemptId: offer.attemptId, outputs: [output])))
            let retried = try await app.waitForTask(client, taskId) { $0.retryCount == 1 }
            #expect((retried.error)?.contains("did not issue") == true)
        }
    }

    @Test("a completion whose ack was lost (written into a replica that died) still completes the task, once")
    func completionWithoutAck() async throws {
        try await TestApp.withInvertAgent { app, client, agent in
            let taskId = try await app.run(client)
            let offer = try await agent.offer()
            try await agent.send(.complete(.init(attemptId: offer.attemptId, outputs: [])))
            let done = try await app.waitForTask(client, taskId) { $0.status == .completed }
            #expect(done.retryCount == 0)
            #expect(done.startedAt != nil)
        }
    }
}
