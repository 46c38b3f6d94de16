import Crypto
import Foundation
import HummingbirdTesting
import SwitchyardCore
import SwitchyardTestSupport
import SwitchyardWire
import Testing

@testable import SwitchyardServer

/// The gateway's side of model sync (docs/agent-protocol.md, "Models"), with a wire agent: the sets it sends, the
/// URLs it hands out, what agents report and how dispatch reads it.
@Suite("Model sync through the gateway")
struct ModelSyncGatewayTests {
    static func models(_ agent: WireTestAgent, where accept: @escaping @Sendable (GatewayMessage.Models) -> Bool = { _ in true }) async throws
        -> GatewayMessage.Models
    {
        try await agent.receive("models") { if case .models(let set) = $0, accept(set) { set } else { nil } }
    }

    /// Asks for a URL and waits for the answer: the gateway handles an agent's messages in order, so every message sent
    /// before has been handled (and written) once it comes.
    static func roundTrip(_ agent: WireTestAgent, modelId: String) async throws -> GatewayMessage.ModelURL {
        let requestId = UUID().uuidString
        try await agent.send(.modelURLRequest(.init(requestId: requestId, modelId: modelId)))
        return try await agent.receive("model_url") { if case .modelURL(let answer) = $0, answer.requestId == requestId { answer } else { nil } }
    }

    @Test(
        "an agent that syncs gets the team's set after its welcome and on every change, each model with a GET of its bytes; its sync status and holdings show in /agents, and a syncing agent gets a task once it holds the task's models"
    )
    func setsReportsAndDispatch() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            var hello = WireTestAgent.hello("gpu", capacity: 2)
            hello.modelSync = true
            hello.models = []
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: hello) { agent in
                #expect(try await Self.models(agent).models.isEmpty, "the set follows the welcome, empty or not")

                let bytes = Array("lora weights".utf8)
                let id = try await app.registerSyncedModel(
                    client, session: session, bytes: bytes, type: "loras", path: "models/loras/style.safetensors", name: "Style")
                let set = try await Self.models(agent) { !$0.models.isEmpty }
                let entry = try #require(set.models.first)
                #expect(set.models.count == 1 && entry.modelId == id && entry.displayName == "Style")
                #expect(entry.placement == "loras/style.safetensors" && entry.fileSize == Int64(bytes.count))
                #expect(entry.fileHash == "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined())
                #expect(try await app.get(entry.url) == bytes)

                // Syncing, with its progress: shown as reported (the percent 0–100).
                try await agent.send(
                    .status(.init(status: .syncing, detail: "Downloading model Style (12 B)", syncPercent: 0.45, syncPhase: .downloading)))
                let fresh = try await Self.roundTrip(agent, modelId: id)
                #expect(fresh.url != nil && fresh.urlExpiresAt != nil)
                var row = try await app.agent(client, "gpu")
                #expect(row.status == "syncing" && row.syncPhase == "downloading")
                #expect(row.syncPercent == 45 && row.syncDetail == "Downloading model Style (12 B)")
                #expect(row.modelsHeld == [])

                // A task needing the model waits while the syncing agent lacks it; one needing nothing runs beside.
                _ = try await app.importWorkflow(
                    client, session: session, body: try TestApp.invertImport(slug: "styled", requiredModels: ["loras/style.safetensors"]))
                _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(slug: "plain"))
                let styled = try await app.run(client, slug: "styled")
                let plain = try await app.run(client, slug: "plain")
                let plainOffer = try await agent.offer()
                #expect(plainOffer.taskId == plain.lowercased && plainOffer.requiredModels == nil)
                #expect(["pending", "waiting"].contains(try await app.task(client, styled).status.rawValue))
                try await agent.send(.models(.init(held: ["loras/style.safetensors"])))
                let styledOffer = try await agent.offer()
                #expect(styledOffer.taskId == styled.lowercased && styledOffer.requiredModels == ["loras/style.safetensors"])
                // What the agent says before the attempt runs lands in the task's events.
                try await agent.send(.ack(.init(attemptId: styledOffer.attemptId)))
                try await agent.send(.note(.init(attemptId: styledOffer.attemptId, message: "syncing model loras/style.safetensors (12 B)")))
                try await agent.send(.complete(.init(attemptId: styledOffer.attemptId, outputs: [])))
                let stream = try await app.followEvents(port: client.port!, styled)
                #expect(stream.contains(#""message":"syncing model loras/style.safetensors (12 B)""#) && stream.contains("event: completed"))
                _ = try await Self.roundTrip(agent, modelId: id)
                row = try await app.agent(client, "gpu")
                #expect(row.modelsHeld == ["loras/style.safetensors"])
                #expect(row.modelsBroken?.isEmpty == true)

                // What it could not take is shown with the reason.
                try await agent.send(
                    .models(.init(held: [], broken: [.init(modelId: id, placement: "loras/style.safetensors", error: "No space left on device")])))
                _ = try await Self.roundTrip(agent, modelId: id)
                row = try await app.agent(client, "gpu")
                let broken = try #require(row.modelsBroken?.first)
                #expect(broken.modelId.lowercased == id && broken.error == "No space left on device")

                // Disabled: gone from the set, and no fresh URL for it; nor for a model that is not the team's.
                let disabled = try await app.call(
                    client, .put, "/api/v1/models/\(id)", token: session, team: app.bootstrap.teamId, body: #"{"model_status":"disabled"}"#)
                #expect(disabled.status == .ok)
                #expect(try await Self.models(agent).models.isEmpty)
                #expect(try await Self.roundTrip(agent, modelId: id).url == nil)
                #expect(try await Self.roundTrip(agent, modelId: UUID().uuidString.lowercased()).url == nil)
            }
        }
    }

    @Test("cache-aware dispatch: of two idle agents, the one that holds the task's model gets it, whatever their ids say")
    func prefersTheHolder() async throws {
        try await TestApp.with(.sqlite, live: true) { app, client in
            let session = try await app.ownerSession(client)
            _ = try await app.importWorkflow(
                client, session: session, body: try TestApp.invertImport(slug: "styled", requiredModels: ["loras/style.safetensors"]))
            var lacking = WireTestAgent.hello("a-lacks")
            lacking.modelSync = true
            lacking.models = []
            var holding = WireTestAgent.hello("b-holds")
            holding.modelSync = true
            holding.models = ["loras/style.safetensors"]
            let second = holding
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: lacking) { first in
                try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: second) { second in
                    // Both idle (their sets are empty: nothing to fetch).
                    for agent in [first, second] {
                        _ = try await Self.models(agent)
                        try await agent.send(.status(.init(status: .idle)))
                        _ = try await Self.roundTrip(agent, modelId: UUID().uuidString)
                    }
                    let task = try await app.run(client, slug: "styled")
                    #expect(try await second.offer().taskId == task.lowercased)
                }
            }
        }
    }

    @Test("an agent that does not sync gets no sets, and its row says nothing of models")
    func notSyncing() async throws {
        try await TestApp.withInvertAgent { app, client, agent in
            let session = try await app.ownerSession(client)
            _ = try await app.registerSyncedModel(client, session: session, bytes: [1, 2, 3], type: "vae", path: "vae.safetensors")
            // The next thing the gateway sends it is the offer of a task submitted after the registration.
            let task = try await app.run(client)
            let first = try await agent.receive("a message") { message -> String? in
                switch message {
                case .models: "models"
                case .offer(let offer): offer.taskId
                default: nil
                }
            }
            #expect(first == task.lowercased)
            let row = try await app.agent(client, "gpu")
            #expect(row.modelsHeld == nil && row.syncPhase == nil)
        }
    }

    @Test(
        "a file above models.verifyInlineMaxBytes is registered at once (201, verifying) and checked in the background: a match becomes active and reaches the syncing agents, a mismatch is rejected with the reason and is never synced"
    )
    func backgroundVerification() async throws {
        try await TestApp.with(.sqlite, live: true, configure: { $0.modelVerifyInlineMaxBytes = 16 }) { app, client in
            let session = try await app.ownerSession(client)
            var hello = WireTestAgent.hello("gpu")
            hello.modelSync = true
            try await WireTestAgent.connect(port: client.port!, key: app.bootstrap.agentKey, hello: hello) { agent in
                #expect(try await Self.models(agent).models.isEmpty)
                let team = app.bootstrap.teamId
                // A wrong hash: inline it would be a 400; here the registration answers at once.
                let presign = try await app.call(
                    client, .post, "/api/v1/models/presign", token: session, team: team,
                    body: #"{"file_name":"w.safetensors","file_size":64,"model_type":"vae","model_path":"w.safetensors"}"#
                ).json()
                let key = try #require(presign["storage_key"]?.stringValue)
                #expect(
                    try await app.put(
                        try #require(presign["upload_url"]?.stringValue), headers: try #require(presign["upload_headers"]?.stringDictionary),
                        body: [UInt8](repeating: 9, count: 64)) == 200)
                let wrong = "sha256:" + String(repeating: "ab", count: 32)
                let rejected = try await app.call(
                    client, .post, "/api/v1/models", token: session, team: team,
                    body: #"{"display_name":"W","model_type":"vae","storage_key":"\#(key)","model_path":"w.safetensors","file_hash":"\#(wrong)"}"#)
                #expect(rejected.status == .created)
                let rejectedId = try #require(try rejected.json()["id"]?.stringValue)
                await app.built.modelVerifier.idle()
                let shown = try await app.call(client, .get, "/api/v1/models/\(rejectedId)", token: session, team: team).json()
                #expect(shown["model_status"]?.stringValue == "rejected")
                #expect((shown["verification_error"]?.stringValue)?.hasPrefix("the uploaded file hashes to sha256:") == true)
                let reenable = try await app.call(
                    client, .put, "/api/v1/models/\(rejectedId)", token: session, team: team, body: #"{"model_status":"active"}"#)
                #expect(reenable.status == .conflict)

                // The right hash: verified, then active, and only then in the agents' set.
                let bytes = [UInt8](repeating: 3, count: 64)
                let id = try await app.registerSyncedModel(client, session: session, bytes: bytes, type: "loras", path: "big.safetensors")
                let set = try await Self.models(agent) { !$0.models.isEmpty }
                #expect(set.models.map(\.modelId) == [id])
                let verified = try await app.call(client, .get, "/api/v1/models/\(id)", token: session, team: team).json()
                #expect(verified["model_status"]?.stringValue == "active" && verified["verification_error"] == .null)
            }
        }
    }
}
