import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardWire

@Suite("Wire protocol frames")
struct WireCodingTests {
    static let stats = SystemStats(
        os: "linux", ramTotal: 64 << 30, ramFree: 48 << 30,
        gpuDevices: [.init(name: "NVIDIA H100 80GB HBM3", vramTotal: 85_899_345_920, vramFree: 80 << 30)])

    static let agentMessages: [AgentMessage] = [
        .hello(
            .init(
                agentId: "01a2047b-20e0-7939-a86b-4d246bdea2f0", agentVersion: "0.1.0", tool: "comfyui", toolVersion: "0.3.10",
                labels: ["gpu", "comfyui", "gpu-h100"], region: "eu-central", communityOptIn: false, capacity: 2, systemStats: stats,
                heldAttempts: ["a-1"])),
        .heartbeat(.init(status: .busy, running: ["a-1"], systemStats: stats)),
        .status(.init(status: .syncing, detail: "sdxl.safetensors", syncPercent: 0.25)),
        .ack(.init(attemptId: "a-1")),
        .progress(.init(attemptId: "a-1", progress: 0.375, stepCurrent: 12, stepTotal: 30, currentNode: "3")),
        .uploadRequest(.init(attemptId: "a-1", requestId: "r-1", fileName: "ComfyUI_00001_.png", contentType: "image/png", size: 1_048_576)),
        .complete(
            .init(
                attemptId: "a-1",
                outputs: [
                    .init(
                        nodeId: "9", kind: "images", index: 0, fileName: "ComfyUI_00001_.png", storageKey: "outputs/t/1/9.images.0.png",
                        contentType: "image/png", size: 1_048_576)
                ])),
        .fail(.init(attemptId: "a-1", error: "node 4 (CheckpointLoaderSimple): value not in list", fault: .task)),
        .cancelled(.init(attemptId: "a-1", stoppedAt: Date(timeIntervalSince1970: 1_795_000_000), gpuSeconds: 12.5)),
    ]

    static let gatewayMessages: [GatewayMessage] = [
        .welcome(.init(agentId: "01a2047b-20e0-7939-a86b-4d246bdea2f0", gatewayId: "gw-a1b2c3d4", heartbeatInterval: 10)),
        .offer(
            .init(
                attemptId: "a-1", taskId: "01a2047b-214d-77c3-b938-0fcd8c56146b", tool: "comfyui",
                definitionJSON: #"{"3":{"class_type":"KSampler","inputs":{"seed":18446744073709551615}}}"#,
                inputs: [
                    .init(parameter: "input_image", nodeId: "10", field: "image", fileName: "photo.png", downloadURL: "http://s3/x?sig", size: 3)
                ],
                ackTimeout: 10, timeout: 300)),
        .uploadURL(
            .init(attemptId: "a-1", requestId: "r-1", storageKey: "outputs/t/1/9.images.0.png", url: "http://s3/y", headers: ["Content-Length": "3"])),
        .cancel(.init(attemptId: "a-1")),
        .refused(.init(attemptId: "a-0", reason: "attempt a-0 is no longer yours")),
        .goodbye(.init(reason: "protocol version 2 is not supported", retry: false)),
    ]

    @Test("every agent message survives a round trip, with its type in the frame", arguments: agentMessages)
    func agentRoundTrip(message: AgentMessage) throws {
        let frame = try WireCoding.encode(message)
        #expect(frame.contains(#""type":""#))
        #expect(try WireCoding.decodeAgentMessage(frame) == message)
    }

    @Test("every gateway message survives a round trip", arguments: gatewayMessages)
    func gatewayRoundTrip(message: GatewayMessage) throws {
        #expect(try WireCoding.decodeGatewayMessage(try WireCoding.encode(message)) == message)
    }

    @Test("an offer's definition keeps a 64-bit seed exactly")
    func exactDefinition() throws {
        guard case .offer(let offer) = try WireCoding.decodeGatewayMessage(try WireCoding.encode(Self.gatewayMessages[1])) else {
            Issue.record("not an offer")
            return
        }
        #expect(try offer.definition()["3"]?["inputs"]?["seed"]?.numberValue?.description == "18446744073709551615")
    }

    @Test("field names on the wire are snake_case, dates RFC 3339")
    func wireNames() throws {
        let frame = try WireCoding.encode(Self.agentMessages[8])
        #expect(frame == #"{"attempt_id":"a-1","gpu_seconds":12.5,"stopped_at":"2026-11-18T11:06:40Z","type":"cancelled"}"#)
    }

    @Test(
        "unknown types and malformed frames are told apart, naming what is wrong",
        arguments: [
            (#"{"type":"teleport"}"#, WireError.unknownType("teleport")), ("not json", .malformed(#"expected a JSON object with a string "type""#)),
            (#"{"type":"ack"}"#, .malformed(#""attempt_id" is required"#)),
            (#"{"type":"progress","attempt_id":"a","progress":"half"}"#, .malformed(#""progress" has the wrong type"#)),
            (
                #"{"type":"heartbeat","status":"sleeping","running":[]}"#,
                .malformed(#""status": Cannot initialize AgentStatus from invalid String value sleeping"#)
            ),
        ] as [(String, WireError)])
    func refusals(frame: String, error: WireError) {
        #expect(throws: error) { try WireCoding.decodeAgentMessage(frame) }
    }
}

@Suite("Agent ids")
struct AgentIdTests {
    @Test("host names and ids with . _ - : @ are agent ids; spaces, line breaks, slashes, non-ASCII, empty and over 128 are not")
    func agentIds() {
        for id in ["gpu-01", "gpu-01.example.com", "rack_2:gpu0@lab", String(repeating: "a", count: 128)] {
            #expect(WireProtocol.agentIdViolation(id) == nil, "\(id)")
        }
        for id in ["", "two words", "line\nbreak", "../up", "über", "tab\t", String(repeating: "a", count: 129)] {
            #expect(WireProtocol.agentIdViolation(id) != nil, "\(id.debugDescription)")
        }
        #expect(WireProtocol.agentIdViolation("a\nb")?.contains(#"a\nb"#) == true, "the refusal shows the id escaped")
    }
}
