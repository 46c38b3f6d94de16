import Foundation
import Logging
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardServer

@Suite("Log lines")
struct LogTests {
    static let date = Date(timeIntervalSince1970: 1_764_550_473.125)

    @Test("text: key=value, sorted; values that could forge a line or a key are quoted and escaped")
    func text() {
        let line = SwitchyardLogHandler.line(
            date: Self.date, level: .info, label: "switchyard", message: "agent connected",
            metadata: ["agent_id": "gpu-1\n2026-01-01T00:00:00Z critical switchyard: forged", "device_name": "Ada's \"laptop\"", "n": "3"],
            format: .text)
        #expect(line.hasPrefix("2025-12-01T00:54:33.125Z info switchyard: agent connected "))
        #expect(line.hasSuffix(#" n=3"# + "\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(line.contains(#"agent_id="gpu-1\n2026-01-01T00:00:00Z critical switchyard: forged""#))
        #expect(line.contains(#"device_name="Ada's \"laptop\"""#))
        #expect(SwitchyardLogHandler.escaped("a=b", quoteWhenNeeded: true) == #""a=b""#)
        #expect(SwitchyardLogHandler.escaped("bell\u{7}\u{202E}", quoteWhenNeeded: true) == #"bell\u{7}\u{202e}"#)
    }

    @Test("json: one object per line that parses back to what was logged")
    func json() throws {
        let line = SwitchyardLogHandler.line(
            date: Self.date, level: .notice, label: "switchyard", message: "task transition",
            metadata: ["task_id": "0193a", "reason": "line\nbreak \"quoted\" \u{0}nul", "message": "shadowed"], format: .json)
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("}\n"))
        let object = try JSONDecoder().decode([String: String].self, from: Data(line.utf8))
        #expect(object["timestamp"] == "2025-12-01T00:54:33.125Z")
        #expect(object["level"] == "notice" && object["message"] == "task transition" && object["task_id"] == "0193a")
        #expect(object["reason"] == "line\nbreak \"quoted\" \u{0}nul")
    }

    @Test("every task transition is one info line `task transition` with the lower-case task id and the new status")
    func transitions() async throws {
        let (lines, sink) = AsyncStream<String>.makeStream()
        let handler = SwitchyardLogHandler(label: "switchyard", level: .info, format: .json) { line in sink.yield(line) }
        try await TestApp.with(.sqlite, live: true, logger: Logger(label: "switchyard") { _ in handler }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            let task = try await app.run(client)
            var steps: [[String: String]] = []
            var iterator = lines.makeAsyncIterator()
            // Read the log as it is written: the task is created waiting (no agent), then cancelled.
            for awaited in ["waiting", "cancelled"] {
                if awaited == "cancelled" {
                    let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(task.lowercased)/cancel", token: app.bootstrap.integrationKey)
                    #expect(cancel.status == .ok)
                }
                while let line = await iterator.next() {
                    guard let object = try? JSONDecoder().decode([String: String].self, from: Data(line.utf8)),
                        object["message"] == "task transition", object["task_id"] == task.lowercased
                    else { continue }
                    steps.append(object)
                    if object["status"] == awaited { break }
                }
            }
            #expect(steps.map { $0["status"] } == ["waiting", "cancelled"], "\(steps)")
            #expect(steps.allSatisfy { $0["level"] == "info" })
            #expect(steps.first?["team_id"] == app.bootstrap.teamId.lowercased && steps.last?["team_id"] == app.bootstrap.teamId.lowercased)
        }
    }

    @Test("with an agent: created queued (assigned at submission), running on its ACK, failed on its failure — one line each")
    func transitionsWithAnAgent() async throws {
        let (lines, sink) = AsyncStream<String>.makeStream()
        let handler = SwitchyardLogHandler(label: "switchyard", level: .info, format: .text) { line in sink.yield(line) }
        try await TestApp.with(.sqlite, live: true, logger: Logger(label: "switchyard") { _ in handler }) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport())
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: WireTestAgent.hello("gpu")) { agent in
                let task = try await app.run(client)
                let offer = try await agent.offer()
                try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                try await agent.send(.fail(.init(attemptId: offer.attemptId, error: "node 3: out of memory", fault: .task)))
                var statuses: [String] = []
                for await line in lines where line.contains(" info switchyard: task transition ") && line.contains("task_id=\(task.lowercased) ") {
                    statuses.append(line.split(separator: " ").first { $0.hasPrefix("status=") }.map(String.init) ?? line)
                    if line.contains("status=failed") {
                        #expect(line.contains(#"reason="node 3: out of memory""#) && line.contains("agent_id=gpu "))
                        break
                    }
                }
                #expect(statuses == ["status=queued", "status=running", "status=failed"])
            }
        }
    }
}
