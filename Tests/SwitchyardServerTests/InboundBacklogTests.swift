import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import SwitchyardWire
import Synchronization
import Testing

@testable import SwitchyardServer

/// An agent that floods its socket holds a bounded part of the server's memory: the reader stops reading
/// (`InboundBacklog`) until what it read is handled.
@Suite("Agent input backlog")
struct InboundBacklogTests {
    final class Released: Sendable {
        let value = Atomic(false)
    }

    @Test("the reader must wait at `high` messages or bytes, and is woken once the backlog is down to `low`")
    func watermarks() async {
        let backlog = InboundBacklog(high: .init(messages: 4, bytes: 1000), low: .init(messages: 1, bytes: 100))
        #expect(!backlog.read(bytes: 10) && !backlog.read(bytes: 10) && !backlog.read(bytes: 10))
        #expect(backlog.read(bytes: 10), "the fourth message reaches high")
        let released = Released()
        let reader = Task {
            await backlog.drained()
            released.value.store(true, ordering: .sequentiallyConsistent)
        }
        backlog.handled(bytes: 10)
        backlog.handled(bytes: 10)
        let early = released.value.load(ordering: .sequentiallyConsistent)
        #expect(!early, "two pending is still above low")
        backlog.handled(bytes: 10)
        await reader.value
        #expect(backlog.pending == .init(messages: 1, bytes: 10))
        // Bytes alone reach high, too.
        #expect(backlog.read(bytes: 990))
        #expect(backlog.peak == .init(messages: 4, bytes: 1000))
        await withCheckedContinuation { done in
            Task {
                await backlog.drained()
                done.resume()
            }
            backlog.handled(bytes: 990)
        }
    }

    @Test(
        "an agent flooding heartbeats faster than they are handled: the server stops reading it for a while (counted), and the session still runs a task"
    )
    func flood() async throws {
        let lowWatermarks: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.dispatch.inboundBacklogHigh = .init(messages: 4, bytes: 1 << 20)
            configuration.dispatch.inboundBacklogLow = .init(messages: 1, bytes: 1 << 20)
        }
        try await TestApp.withInvertAgent(configure: lowWatermarks) { app, client, agent in
            let task = try await app.run(client)
            let offer = try await agent.offer()
            #expect(offer.taskId == task.lowercased)
            try await agent.send(.ack(.init(attemptId: offer.attemptId)))
            // Heartbeats that tell the truth (busy with this attempt), as fast as the socket takes them.
            let heartbeat = AgentMessage.heartbeat(.init(status: .busy, running: [offer.attemptId], systemStats: nil))
            for _ in 0..<5_000 { try await agent.send(heartbeat) }
            try await agent.send(.fail(.init(attemptId: offer.attemptId, error: "done", fault: .task)))
            #expect(try await app.followEvents(port: client.port!, task).contains("event: failed"))
            let metrics = try MetricsTests.Scrape(app.built.metrics.registry.emitToString())
            #expect((metrics.value("switchyard_agent_reads_paused_total") ?? 0) > 0)
        }
    }
}
