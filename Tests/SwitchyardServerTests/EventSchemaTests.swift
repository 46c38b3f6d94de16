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
        let components: [String: JSONValue]
        let events: [String: JSONValue]

        init() throws {
            let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let text = try String(contentsOf: repository.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
            let document = try jsonValue(fromYAML: try #require(try Yams.load(yaml: text)))
            components = try #require(document["components"]?["schemas"]?.objectValue)
            let stream = try #require(document["paths"]?["/api/v1/r/tasks/{taskId}/events"]?["get"])
            events = try #require(stream["responses"]?["200"]?["x-sse-events"]?.objectValue)
        }

        /// Problems with `value` against `schema`, each with its path; empty when it conforms.
        func problems(_ value: JSONValue, _ schema: JSONValue, at path: String = "$") -> [String] {
            if let ref = schema["$ref"]?.stringValue, let target = components[String(ref.split(separator: "/").last!)] {
                return problems(value, target, at: path)
            }
            if let all = schema["allOf"]?.arrayValue { return all.flatMap { problems(value, $0, at: path) } }
            if let one = schema["oneOf"]?.arrayValue {
                return one.filter { problems(value, $0, at: path).isEmpty }.count == 1 ? [] : ["\(path): matches not exactly one of oneOf"]
            }
            if let type = schema["type"] {
                let types = type.stringArray ?? [type.stringValue ?? ""]
                if !types.contains(where: { Self.isOfType(value, $0) }) { return ["\(path): \(value.jsonString) is not \(types)"] }
            }
            var found: [String] = []
            if let options = schema["enum"]?.arrayValue, !options.contains(value) {
                found.append("\(path): \(value.jsonString) not in enum")
            }
            if case .number(let number) = value {
                if let minimum = schema["minimum"]?.doubleValue, number.doubleValue < minimum {
                    found.append("\(path): below \(minimum)")
                }
                if let maximum = schema["maximum"]?.doubleValue, number.doubleValue > maximum {
                    found.append("\(path): above \(maximum)")
                }
            }
            if case .object(let object) = value {
                for key in schema["required"]?.stringArray ?? [] where object[key] == nil { found.append("\(path): \(key) is missing") }
                for (key, property) in schema["properties"]?.objectValue ?? [:] {
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
                let schema = try #require(events[String(name)], "event \(name) has no schema in x-sse-events")
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
        let status = try #require(schemas.events["status"])
        #expect(schemas.problems(["task_id": "x", "status": "running", "timestamp": "t"], status).isEmpty)
        #expect(!schemas.problems(["task_id": "x", "status": "sleeping", "timestamp": "t"], status).isEmpty)
        #expect(!schemas.problems(["task_id": "x", "status": "running"], status).isEmpty)
        let progress = try #require(schemas.events["progress"])
        #expect(!schemas.problems(["task_id": "x", "progress": 1.5, "timestamp": "t"], progress).isEmpty)
        #expect(!schemas.problems(["task_id": "x", "progress": 0.5, "timestamp": "t", "step_total": "4"], progress).isEmpty)
    }
}
