import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@Suite("Event streams per team")
struct EventStreamLimitTests {
    @Test("streams.maxPerTeam: one stream more is a 429 with Retry-After; a stream that ends gives its place back; other teams are not counted")
    func perTeamLimit() async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.maxEventStreamsPerTeam = 2 }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            // No agent: every task waits, and its stream stays open.
            let tasks = [try await app.run(client), try await app.run(client), try await app.run(client)]
            let port = client.port!
            let key = app.bootstrap.integrationKey
            let (opened, open) = AsyncStream.makeStream(of: UUID.self)
            var openedIterator = opened.makeAsyncIterator()
            try await withThrowingTaskGroup(of: String.self) { group in
                for task in tasks.prefix(2) { group.addTask { try await Self.stream(port: port, key: key, task, opened: open) } }
                for _ in 0..<2 { _ = await openedIterator.next() }

                let refused = try await app.call(client, .get, "/api/v1/r/tasks/\(tasks[2].lowercased)/events", token: key)
                #expect(refused.status == .tooManyRequests && refused.headers[.retryAfter] == "5", "\(refused.status)")
                #expect(refused.errorMessage?.contains("streams.maxPerTeam") == true)
                let other = try await app.otherTeam()
                let foreign = try await app.call(client, .get, "/api/v1/r/tasks/\(tasks[2].lowercased)/events", token: other.integrationKey)
                #expect(foreign.status == .notFound, "another team is not counted against this one, nor sees the task")

                // The first task is cancelled: its stream ends, and its place is free by the time the client sees the end.
                #expect(try await app.call(client, .post, "/api/v1/r/tasks/\(tasks[0].lowercased)/cancel", token: key).status == .ok)
                let ended = try #require(try await group.next())
                #expect(ended.contains("event: cancelled"))
                group.addTask { try await Self.stream(port: port, key: key, tasks[2], opened: open) }
                _ = await openedIterator.next()
                for task in tasks.dropFirst() {
                    #expect(try await app.call(client, .post, "/api/v1/r/tasks/\(task.lowercased)/cancel", token: key).status == .ok)
                }
                try await group.waitForAll()
            }
        }
    }

    /// Reads a task's event stream to its very end (not only to its terminal event); says when the first bytes came.
    static func stream(port: Int, key: String, _ taskId: UUID, opened: AsyncStream<UUID>.Continuation) async throws -> String {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/r/tasks/\(taskId.lowercased)/events")
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        var text = ""
        for try await chunk in response.body {
            if text.isEmpty { opened.yield(taskId) }
            text += String(buffer: chunk)
        }
        return text
    }
}
