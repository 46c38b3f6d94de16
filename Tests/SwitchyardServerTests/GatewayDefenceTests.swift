import Foundation
import HummingbirdTesting
import SwitchyardCore
import SwitchyardServer
import SwitchyardTestSupport
import SwitchyardWire
import Synchronization
import Testing

@testable import SwitchyardServer

@Suite("The gateway defends itself")
struct GatewayDefenceTests {
    @Test("an agent that does not read its messages: the outbox stops at its limit, drops what waits and closes the socket")
    func boundedOutbox() async throws {
        let socket = StalledSocket()
        let connection = AgentConnection(key: AgentKey(teamId: UUID(), agentId: "slow"), credentialId: UUID(), socket: socket, outboxLimit: 3)
        var events = socket.events.makeAsyncIterator()
        connection.startWriting()
        connection.send(.refused(.init(attemptId: nil, reason: "written")))
        #expect(await events.next() == "write written", "the first message is being written, and the write does not return")
        for index in 0..<3 { connection.send(.refused(.init(attemptId: nil, reason: "\(index)"))) }
        #expect(!connection.overflowed)
        connection.send(.refused(.init(attemptId: nil, reason: "one too many")))
        #expect(connection.overflowed)
        socket.letWritesReturn()
        #expect(await events.next() == "close", "nothing that waited was written after the overflow")
        await connection.ended()
    }

    @Test("the outbox writes in order, with no task while nothing waits, and ends with the goodbye")
    func outboxInOrder() async throws {
        let socket = StalledSocket()
        socket.letWritesReturn()
        let connection = AgentConnection(key: AgentKey(teamId: UUID(), agentId: "fast"), credentialId: UUID(), socket: socket)
        connection.send(.refused(.init(attemptId: nil, reason: "queued before the welcome")))
        var events = socket.events.makeAsyncIterator()
        connection.startWriting()
        #expect(await events.next() == "write queued before the welcome")
        for index in 0..<50 { connection.send(.refused(.init(attemptId: nil, reason: "\(index)"))) }
        for index in 0..<50 { #expect(await events.next() == "write \(index)") }
        connection.close(reason: "bye", retry: true)
        connection.send(.refused(.init(attemptId: nil, reason: "after the end")))
        #expect(await events.next() == "write goodbye bye")
        #expect(await events.next() == "close")
        await connection.ended()
        #expect(await events.next() == nil, "nothing is written after the end")
    }

    @Test("an expired key, and a key whose creator became a viewer, end their agents' sessions at the next heartbeat a second later")
    func keyRecheckedOnHeartbeat() async throws {
        // Heartbeats are judged by the manual clock the test moves past the key's expiry: lenient, so that the
        // session ends for the key, not for the silence the jump looks like.
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.heartbeatInterval = 300 }) { app, client in
            let expiring = try await app.insertKey(.agent, expiresAt: app.clock.now().addingTimeInterval(60))
            try await WireTestAgent.connect(port: client.port!, key: expiring.secret, hello: WireTestAgent.hello("expiring")) { agent in
                try await agent.send(.heartbeat(.init(status: .idle, running: [])))
                app.clock.advance(by: 61)
                try await agent.send(.heartbeat(.init(status: .idle, running: [])))
                let goodbye = try await agent.receive("goodbye") { if case .goodbye(let goodbye) = $0 { goodbye } else { nil } }
                #expect(goodbye.reason.contains("revoked or expired") && goodbye.retry == false)
            }

            let member = try await app.member(role: .member)
            let userId = try #require(try await app.storage.credential(keyHash: SecretHasher.keyHash(member))?.userId)
            let memberKey = try await app.insertKey(.agent, userId: userId)
            try await WireTestAgent.connect(port: client.port!, key: memberKey.secret, hello: WireTestAgent.hello("members")) { agent in
                try await agent.send(.heartbeat(.init(status: .idle, running: [])))
                _ = try await app.storage.setRole(userId: userId, teamId: app.bootstrap.teamId, role: .viewer)
                app.clock.advance(by: 1)  // a key found valid is read again at most once a second
                try await agent.send(.heartbeat(.init(status: .idle, running: [])))
                let goodbye = try await agent.receive("goodbye") { if case .goodbye(let goodbye) = $0 { goodbye } else { nil } }
                #expect(goodbye.reason.contains("viewer") && goodbye.retry == false)
            }
        }
    }

    @Test("an agent_id outside the safe set (a line break, a space, a slash) is refused at hello and never listed")
    func unsafeAgentId() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            for id in ["evil\nINFO forged log line", "two words", "../up", String(repeating: "a", count: 129)] {
                await #expect(throws: (any Error).self, "\(id.debugDescription)") {
                    try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello(id)) { _ in }
                }
            }
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu-01.lab:0@rack_2")) { _ in
                let listed = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
                #expect((listed["agent_list"]?.arrayValue)?.compactMap { $0["agent_id"]?.stringValue } == ["gpu-01.lab:0@rack_2"])
            }
        }
    }

    @Test("dispatch.maxAgentsPerTeam: one agent more is refused at hello and never listed")
    func agentsPerTeam() async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.dispatch.maxAgentsPerTeam = 1 }) { app, client in
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("first")) { _ in
                await #expect(throws: (any Error).self) {
                    try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("second")) { _ in }
                }
                let listed = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
                #expect((listed["agent_list"]?.arrayValue)?.compactMap { $0["agent_id"]?.stringValue } == ["first"])
            }
        }
    }

    @Test("an attempt three heartbeats in a row do not list is ended as a platform fault and offered again, no retry used")
    func unlistedAttempt() async throws {
        try await TestApp.withInvertAgent { app, client, agent in
            let taskId = try await app.run(client)
            let lost = try await agent.offer()  // as if it never arrived: never acknowledged, never listed
            for _ in 0..<3 { try await agent.send(.heartbeat(.init(status: .idle, running: []))) }
            let again = try await agent.offer()
            #expect(again.taskId == taskId.lowercased && again.attemptId != lost.attemptId)
            let task = try await app.task(client, taskId)
            #expect(task.retryCount == 0)
            let events = try #require(try await app.storage.taskEvents(taskId: taskId, teamId: app.bootstrap.teamId, afterSequence: 0))
            #expect(events.contains { $0.data["message"]?.stringValue?.contains("three heartbeats did not list it") == true })
        }
    }

    @Test("upload requests are capped per attempt (count and declared bytes)")
    func uploadCaps() async throws {
        try await TestApp.withInvertAgent(configure: {
            $0.dispatch.maxUploadsPerAttempt = 2; $0.dispatch.maxUploadBytesPerAttempt = 100
        }) {
            app, client, agent in
            _ = try await app.run(client)
            let offer = try await agent.offer()
            try await agent.send(.ack(.init(attemptId: offer.attemptId)))
            func request(_ id: String, size: Int) async throws -> GatewayMessage {
                try await agent.send(
                    .uploadRequest(.init(attemptId: offer.attemptId, requestId: id, fileName: "\(id).png", contentType: "image/png", size: size)))
                return try await agent.receive("answer") { message in
                    switch message {
                    case .uploadURL(let url) where url.requestId == id: message
                    case .refused: message
                    default: nil
                    }
                }
            }
            guard case .uploadURL = try await request("a", size: 60) else { Issue.record("the first upload was refused"); return }
            guard case .refused(let bytes) = try await request("b", size: 60) else { Issue.record("120 bytes were allowed"); return }
            #expect(bytes.reason.contains("100 bytes"))
            guard case .uploadURL = try await request("c", size: 10) else { Issue.record("the second upload was refused"); return }
            guard case .refused(let count) = try await request("d", size: 1) else { Issue.record("a third upload was allowed"); return }
            #expect(count.reason.contains("at most 2 files"))
        }
    }
}

/// An agent's socket whose writes do not return until the test lets them (an agent that does not read); it reports
/// each write and the close.
final class StalledSocket: AgentSocket {
    let events: AsyncStream<String>
    private let reports: AsyncStream<String>.Continuation
    private let gate = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    init() {
        (events, reports) = AsyncStream.makeStream(of: String.self)
    }

    func write(_ message: GatewayMessage) async throws {
        switch message {
        case .refused(let refused): reports.yield("write \(refused.reason)")
        case .goodbye(let goodbye): reports.yield("write goodbye \(goodbye.reason)")
        default: reports.yield("write")
        }
        await withCheckedContinuation { continuation in
            let open = gate.withLock { gate in
                if !gate.open { gate.waiting.append(continuation) }
                return gate.open
            }
            if open { continuation.resume() }
        }
    }

    func letWritesReturn() {
        let waiting = gate.withLock { gate in
            defer { gate = (true, []) }
            return gate.waiting
        }
        for waiter in waiting { waiter.resume() }
    }

    func close() async {
        reports.yield("close")
        reports.finish()
    }

    @Test("messages about another agent's attempt (ack, progress, fail, complete, upload) are refused and change nothing; the holder finishes it")
    func anotherAgentsAttempt() async throws {
        try await TestApp.withInvertAgent("holder") { app, client, holder in
            let taskId = try await app.run(client)
            let offer = try await holder.offer()
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("intruder")) { intruder in
                let attempt = offer.attemptId
                let forged: [AgentMessage] = [
                    .ack(.init(attemptId: attempt)),
                    .progress(.init(attemptId: attempt, progress: 0.5)),
                    .uploadRequest(.init(attemptId: attempt, requestId: "r1", fileName: "x.png", contentType: "image/png", size: 10)),
                    .fail(.init(attemptId: attempt, error: "forged", fault: .task)),
                    .complete(.init(attemptId: attempt, outputs: [])),
                ]
                for message in forged {
                    try await intruder.send(message)
                    let refused = try await intruder.receive("refusal") { message -> Bool? in
                        if case .refused(let refused) = message, refused.attemptId == attempt { return true }
                        return nil
                    }
                    #expect(refused)
                }
                #expect(try await app.task(client, taskId).status == .queued)
            }
            try await holder.send(.ack(.init(attemptId: offer.attemptId)))
            try await holder.send(.fail(.init(attemptId: offer.attemptId, error: "node 1: real failure", fault: .task)))
            let events = try await app.followEvents(port: client.port!, taskId)
            #expect(events.contains("event: failed"))
            #expect((try await app.task(client, taskId).error)?.contains("real failure") == true)
        }
    }
}
