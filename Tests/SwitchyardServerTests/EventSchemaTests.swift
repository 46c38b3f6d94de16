import Foundation
import HummingbirdTesting
import SwitchyardCore
import SwitchyardTestSupport
import SwitchyardWire
import Testing
import Yams

/// The task event stream's data, checked against the schemas docs/openapi.yaml gives each event name
/// (`x-sse-events` on `GET /r/tasks/{taskId}/events`).
@Suite("Event stream schemas")
struct EventSchemaTests {
    /// The document's schemas, and a validator for the subset of JSON Schema they use: type (one or several),
    /// required, properties, enum, minimum/maximum, $ref, allOf, oneOf.
    struct Schemas {
        let components: [String: Any]
        let events: [String: Any]

        init() throws {
            let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let text = try String(contentsOf: repository.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
            let document = try #require(try Yams.load(yaml: text) as? [String: Any])
            components = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
            let paths = try #require(document["paths"] as? [String: Any])
            let stream = try #require((paths["/api/v1/r/tasks/{taskId}/events"] as? [String: Any])?["get"] as? [String: Any])
            let ok = try #require((stream["responses"] as? [String: Any])?["200"] as? [String: Any])
            events = try #require(ok["x-sse-events"] as? [String: Any])
        }

        /// Problems with `value` against `schema`, each with its path; empty when it conforms.
        func problems(_ value: JSONValue, _ schema: [String: Any], at path: String = "$") -> [String] {
            if let ref = schema["$ref"] as? String, let target = components[String(ref.split(separator: "/").last!)] as? [String: Any] {
                return problems(value, target, at: path)
            }
            if let all = schema["allOf"] as? [[String: Any]] { return all.flatMap { problems(value, $0, at: path) } }
            if let one = schema["oneOf"] as? [[String: Any]] {
                return one.filter { problems(value, $0, at: path).isEmpty }.count == 1 ? [] : ["\(path): matches not exactly one of oneOf"]
            }
            if let type = schema["type"] {
                let types = (type as? [String]) ?? [type as? String ?? ""]
                if !types.contains(where: { Self.isOfType(value, $0) }) { return ["\(path): \(value.jsonString) is not \(types)"] }
            }
            var found: [String] = []
            if let options = schema["enum"] as? [Any], !options.contains(where: { "\($0)" == value.stringValue }) {
                found.append("\(path): \(value.jsonString) not in enum")
            }
            if case .number(let number) = value {
                if let minimum = (schema["minimum"] as? NSNumber)?.doubleValue, number.doubleValue < minimum {
                    found.append("\(path): below \(minimum)")
                }
                if let maximum = (schema["maximum"] as? NSNumber)?.doubleValue, number.doubleValue > maximum {
                    found.append("\(path): above \(maximum)")
                }
            }
            if case .object(let object) = value {
                for key in schema["required"] as? [String] ?? [] where object[key] == nil { found.append("\(path): \(key) is missing") }
                for (key, property) in schema["properties"] as? [String: [String: Any]] ?? [:] {
                    if let member = object[key] { found += problems(member, property, at: "\(path).\(key)") }
                }
            }
            return found
        }

        static func isOfType(_ value: JSONValue, _ type: String) -> Bool {
            switch (value, type) {
            case (.null, "null"), (.string, "string"), (.bool, "boolean"), (.number, "number"), (.object, "object"), (.array, "array"): true
            case (.number(let number), "integer"): number.doubleValue.rounded() == number.doubleValue
            default: false
            }
        }

        /// Checks every event of an SSE transcript; returns the event names in order.
        func check(_ stream: String) throws -> [String] {
            var names: [String] = []
            for block in stream.components(separatedBy: "\n\n") {
                let lines = block.split(separator: "\n")
                guard let name = lines.first(where: { $0.hasPrefix("event: ") })?.dropFirst(7),
                    let data = lines.first(where: { $0.hasPrefix("data: ") })?.dropFirst(6)
                else { continue }
                names.append(String(name))
                let schema = try #require(events[String(name)] as? [String: Any], "event \(name) has no schema in x-sse-events")
                let problems = problems(try JSONValue.parse(String(data)), schema)
                #expect(problems.isEmpty, "event \(name): \(data): \(problems)")
            }
            return names
        }
    }

    @Test("status, progress, failed and cancelled events carry what the document says")
    func events() async throws {
        try await TestApp.withInvertAgent { app, client, agent in
            let schemas = try Schemas()
            let failing = try await app.run(client)
            let offer = try await agent.offer()
            var sent = (progress: false, failure: false)
            let stream = try await app.followEvents(port: client.port!, failing) { text in
                if !sent.progress, text.contains(#""status":"queued""#) {
                    sent.progress = true
                    try await agent.send(.ack(.init(attemptId: offer.attemptId)))
                    try await agent.send(.progress(.init(attemptId: offer.attemptId, progress: 0.25, stepCurrent: 1, stepTotal: 4, currentNode: "2")))
                } else if !sent.failure, text.contains("event: progress\n") {
                    sent.failure = true
                    try await agent.send(.fail(.init(attemptId: offer.attemptId, error: "node 2: out of memory", fault: .task)))
                }
            }
            #expect(try schemas.check(stream) == ["status", "status", "status", "progress", "failed"], "\(stream)")

            let cancelled = try await app.run(client)
            _ = try await agent.offer()
            let cancel = try await app.call(client, .post, "/api/v1/r/tasks/\(cancelled.lowercased)/cancel", token: app.bootstrap.integrationKey)
            #expect(cancel.status == .ok)
            #expect(try schemas.check(try await app.followEvents(port: client.port!, cancelled)) == ["status", "status", "cancelled"])
        }
    }

    @Test("a schema that does not fit is caught (the validator is not a no-op)")
    func validatorBites() throws {
        let schemas = try Schemas()
        let status = try #require(schemas.events["status"] as? [String: Any])
        #expect(schemas.problems(["task_id": "x", "status": "running", "timestamp": "t"], status).isEmpty)
        #expect(!schemas.problems(["task_id": "x", "status": "sleeping", "timestamp": "t"], status).isEmpty)
        #expect(!schemas.problems(["task_id": "x", "status": "running"], status).isEmpty)
        let progress = try #require(schemas.events["progress"] as? [String: Any])
        #expect(!schemas.problems(["task_id": "x", "progress": 1.5, "timestamp": "t"], progress).isEmpty)
        #expect(!schemas.problems(["task_id": "x", "progress": 0.5, "timestamp": "t", "step_total": "4"], progress).isEmpty)
    }
}
