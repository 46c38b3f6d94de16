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
        ] as [(String, String)])
    func sequences(graph: String, transcript: String) async throws {
        try await FakeComfyUI.with { fake in
            let observed = try await Self.run(fake, graph: try recordedGraphText(graph))
            #expect(observed.types == Self.recordedTypes(transcript))
            if transcript == "a_fresh" {
                let executed = try #require(observed.messages.first { $0["type"] == "executed" })
                #expect(executed["data"]?["output"]?["images"]?.jsonString.contains("\"subfolder\":\"scout\"") == true)
            }
        }
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
