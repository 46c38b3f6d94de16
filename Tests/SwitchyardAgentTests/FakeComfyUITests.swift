import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import Synchronization
import Testing
import WSClient

/// The fake against the recordings of a real ComfyUI: the same WebSocket sequence for the same graph.
@Suite("Fake ComfyUI is faithful to the recordings")
struct FakeComfyUITests {
    @Test(
        "the WebSocket sequence of a run matches the recorded one",
        arguments: [
            ("a_empty_invert_save", "a_fresh"), ("c5_runtime_error", "c5_runtime_error"), ("f_websocket_image_binary", "f_binary_no_feature_flags"),
            ("a_empty_invert_save", "a_cached_resubmit"), ("h_empty_save", "h_history_on_success"),
        ] as [(String, String)])
    func sequences(graph: String, transcript: String) async throws {
        try await FakeComfyUI.with { fake in
            let text = graph == "h_empty_save" ? Self.emptySave : try recordedGraphText(graph)
            // A resubmit of the identical graph is what ComfyUI serves from its cache.
            if transcript == "a_cached_resubmit" { _ = try await Self.run(fake, graph: text) }
            let observed = try await Self.run(fake, graph: text)
            #expect(observed.types == Self.recordedTypes(transcript))
            if transcript == "a_fresh" {
                let executed = try #require(observed.messages.first { $0["type"] == "executed" })
                #expect(executed["data"]?["output"]?["images"]?.jsonString.contains("\"subfolder\":\"scout\"") == true)
            }
        }
    }

    static let emptySave =
        #"{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},"#
        + #" "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "rec/h"}}}"#

    @Test("the history entry is written after execution_success and before executing null, as recorded in h_history_on_success")
    func historyAfterSuccess() async throws {
        try await FakeComfyUI.with { fake in
            // The real server's gap is about a millisecond; held here, the read on execution_success is certain to land in it.
            await fake.holdHistory()
            let clientId = "test-\(UUID().uuidString.prefix(8))"
            let promptId = UUID().uuidString.lowercased()
            let reads = Mutex<[String: JSONValue]>([:])
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(fake.port)/ws?clientId=\(clientId)", logger: Logger(label: "test")) {
                inbound, outbound, _ in
                let (status, _) = try await Self.post(
                    fake, #"{"prompt": \#(Self.emptySave), "client_id": "\#(clientId)", "prompt_id": "\#(promptId)"}"#)
                #expect(status == 200)
                for try await message in inbound.messages(maxSize: 1 << 24) {
                    guard case .text(let text) = message, let event = try? JSONValue.parse(text) else { continue }
                    if event["type"] == "execution_success" {
                        let read = try await Self.history(fake, promptId)
                        reads.withLock { $0["success"] = read }
                        await fake.releaseHistory()
                    }
                    if event["type"] == "executing", event["data"]?["node"] == .null {
                        let read = try await Self.history(fake, promptId)
                        reads.withLock { $0["null"] = read }
                        try await outbound.close(.normalClosure, reason: nil)
                        return
                    }
                }
            }
            let recorded = try Self.transcript("h_history_on_success").filter { $0["kind"] == "http_get_history" }.map { $0["body"] }
            #expect(recorded.first == .object([:]) && recorded.last??.objectValue?.isEmpty == false)
            #expect(reads.withLock { $0["success"] } == .object([:]))
            #expect(reads.withLock { $0["null"] }?[promptId]?["outputs"]?["2"]?["images"]?.arrayValue?.count == 1)
        }
    }

    @Test("every output kind leaves the history shape recorded in i_every_output_kind")
    func outputShapes() async throws {
        try await FakeComfyUI.with { fake in
            let recorded = try Self.transcript("i_every_output_kind")
            let posted = try #require(recorded.compactMap { $0["kind"] == "http_get_history" ? $0["body"] : nil }.last?.objectValue?.values.first)
            let graph = try #require(posted["prompt"]?.arrayValue?[2])
            let clientId = "test-\(UUID().uuidString.prefix(8))"
            let promptId = UUID().uuidString.lowercased()
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(fake.port)/ws?clientId=\(clientId)", logger: Logger(label: "test")) {
                inbound, outbound, _ in
                _ = try await Self.post(fake, #"{"prompt": \#(graph.jsonString), "client_id": "\#(clientId)", "prompt_id": "\#(promptId)"}"#)
                for try await message in inbound.messages(maxSize: 1 << 24) {
                    guard case .text(let text) = message, let event = try? JSONValue.parse(text) else { continue }
                    if event["type"] == "executing", event["data"]?["node"] == .null {
                        try await outbound.close(.normalClosure, reason: nil)
                        return
                    }
                }
            }
            let fakeOutputs = try #require(try await Self.history(fake, promptId)[promptId]?["outputs"])
            #expect(Self.shape(fakeOutputs) == Self.shape(try #require(posted["outputs"])))
        }
    }

    /// Output kinds per node with each entry's type (`output`/`temp`), `text` values and the `animated` flag; file
    /// names left out.
    static func shape(_ outputs: JSONValue) -> [String: [String: [String]]] {
        (outputs.objectValue ?? [:]).mapValues { kinds in
            (kinds.objectValue ?? [:]).mapValues { entries in
                (entries.arrayValue ?? []).map { entry in
                    if let type = entry["type"]?.stringValue { return "file:\(type)" }
                    return entry.jsonString
                }
            }
        }
    }

    static func history(_ fake: FakeComfyUI, _ promptId: String) async throws -> JSONValue {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: fake.baseURL + "/history/\(promptId)"), timeout: .seconds(5))
        return try JSONValue.parse(Array(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static func transcript(_ name: String) throws -> [JSONValue] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/comfyui/transcripts/\(name).json")
        return try JSONValue.parse(Array(try Data(contentsOf: url))).arrayValue ?? []
    }

    @Test("validation answers as recorded: unknown node, no outputs, missing checkpoint, bad JSON")
    func validation() async throws {
        try await FakeComfyUI.with { fake in
            let unknown = try await Self.post(fake, #"{"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}}"#)
            #expect(unknown.0 == 400 && unknown.1["error"]?["type"] == "invalid_prompt")
            let noOutputs = try await Self.post(fake, #"{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}}"#)
            #expect(noOutputs.0 == 400 && noOutputs.1["error"]?["type"] == "prompt_no_outputs")
            let checkpoint = try await Self.post(fake, #"{"prompt": \#(try recordedGraphText("c1_txt2img_missing_checkpoint"))}"#)
            #expect(checkpoint.0 == 400 && checkpoint.1["node_errors"]?["4"]?["errors"]?.jsonString.contains("value_not_in_list") == true)
            var request = HTTPClientRequest(url: fake.baseURL + "/prompt")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: "{not json"))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            #expect(response.status.code == 500)
        }
    }

    // MARK: Helpers

    struct Observed {
        var messages: [JSONValue] = []
        var types: [String] = []
    }

    /// Opens `/ws?clientId=`, posts the graph, and records every frame up to `executing{node:null}`.
    static func run(_ fake: FakeComfyUI, graph: String) async throws -> Observed {
        let clientId = "test-\(UUID().uuidString.prefix(8))"
        let observed = Mutex(Observed())
        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(fake.port)/ws?clientId=\(clientId)", logger: Logger(label: "test")) {
            inbound, outbound, _ in
            var iterator = inbound.messages(maxSize: 1 << 24).makeAsyncIterator()
            _ = try await iterator.next()  // the greeting
            let (status, _) = try await post(fake, #"{"prompt": \#(graph), "client_id": "\#(clientId)"}"#)
            #expect(status == 200)
            while let message = try await iterator.next() {
                switch message {
                case .binary: observed.withLock { $0.types.append("binary") }
                case .text(let text):
                    let value = try JSONValue.parse(text)
                    observed.withLock {
                        $0.messages.append(value)
                        $0.types.append(value["type"]?.stringValue ?? "?")
                    }
                    if value["type"] == "executing", value["data"]?["node"] == .null {
                        try await outbound.close(.normalClosure, reason: nil)
                        return
                    }
                }
            }
        }
        return observed.withLock { $0 }
    }

    static func post(_ fake: FakeComfyUI, _ body: String) async throws -> (Int, JSONValue) {
        var request = HTTPClientRequest(url: fake.baseURL + "/prompt")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let bytes = Array(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), (try? JSONValue.parse(bytes)) ?? .null)
    }

    /// The recorded frames after `POST /prompt`, as message types (`binary` for binary frames).
    static func recordedTypes(_ name: String) -> [String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/comfyui/transcripts/\(name).json")
        guard let data = try? Data(contentsOf: url), case .array(let entries) = try? JSONValue.parse(Array(data)) else { return [] }
        var types: [String] = []
        var posted = false
        for entry in entries {
            switch entry["kind"]?.stringValue {
            case "http_post_prompt": posted = true
            case "ws_text" where posted: types.append(entry["msg"]?["type"]?.stringValue ?? "?")
            case "ws_binary" where posted: types.append("binary")
            default: continue
            }
        }
        return types
    }
}
