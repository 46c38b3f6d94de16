import Foundation
import Logging
import SwitchyardAgent
import SwitchyardFakeComfyUI
import SwitchyardTestSupport
import SwitchyardWire
import Testing

@testable import SwitchyardAgent

@Suite("Agent: refused keys and advertised labels")
struct AgentRefusalTests {
    @Test("a wrong agent key stops the agent at once with the server's 401 and its reason, instead of retrying forever")
    func wrongKey() async throws {
        try await FakeComfyUI.with { fake in
            try await TestApp.with(.sqlite, live: true) { _, client in
                var configuration = AgentConfiguration()
                configuration.server = "http://127.0.0.1:\(client.port!)"
                configuration.key = "ak-" + String(repeating: "0", count: 40)
                configuration.agentId = "refused"
                let executor = ComfyUIExecutor(baseURL: fake.baseURL, logger: Logger(label: "refused"))
                defer { executor.close() }
                let runner = AgentRunner(configuration: configuration, executor: executor, logger: Logger(label: "refused"))
                let refused = await #expect(throws: AgentRunner.Refused.self) { try await runner.run() }
                #expect(refused?.description.contains("401: invalid, expired or revoked credential") == true, "\(String(describing: refused))")
            }
        }
    }

    @Test("on a CPU-only ComfyUI the agent does not advertise gpu: a workflow needing gpu waits, one needing comfyui runs")
    func cpuOnlyComfyUI() async throws {
        try await FakeComfyUI.with(.init(cpuOnly: true)) { fake in
            try await TestApp.with(.sqlite, live: true) { app, client in
                let session = try await app.ownerSession(client)
                _ = try await app.importWorkflow(
                    client, session: session, body: try TestApp.invertImport(slug: "needs-gpu", labels: ["gpu", "comfyui"]))
                _ = try await app.importWorkflow(client, session: session, body: try TestApp.invertImport(slug: "any", labels: ["comfyui"]))
                try await EndToEndTests.withAgent(app, client, comfyUI: fake.baseURL) {
                    let agents = try await app.call(client, .get, "/api/v1/r/agents", token: app.bootstrap.integrationKey).json()
                    let labels = (agents["agent_list"]?.arrayValue)?.first?["agent_labels"]?.stringArray
                    #expect(labels.map(Set.init) == ["comfyui", "e2e"])
                    let waiting = try await app.run(client, slug: "needs-gpu")
                    let runnable = try await app.run(client, slug: "any")
                    let events = String(
                        buffer: try await app.call(client, .get, "/api/v1/r/tasks/\(runnable.lowercased)/events", token: app.bootstrap.integrationKey)
                            .body)
                    #expect(events.contains("event: completed"))
                    #expect(try await app.task(client, waiting).status == .waiting)
                }
            }
        }
    }

    @Test("gpu is advertised only when ComfyUI reports a GPU device, or when the operator listed it; kept while ComfyUI is silent")
    func gpuLabel() {
        let labels = ["gpu", "comfyui", "team-a"]
        let cpu = ToolHealth(healthy: true, toolVersion: "0.3", systemStats: SystemStats(gpuDevices: []))
        let cuda = ToolHealth(healthy: true, systemStats: SystemStats(gpuDevices: [.init(name: "NVIDIA H100", vramTotal: 80, vramFree: 70)]))
        let silent = ToolHealth(healthy: false, detail: "not reachable")
        #expect(AgentRunner.sessionLabels(configured: labels, detectGPU: true, health: cpu) == ["comfyui", "team-a"])
        #expect(AgentRunner.sessionLabels(configured: labels, detectGPU: true, health: cuda) == labels)
        #expect(AgentRunner.sessionLabels(configured: labels, detectGPU: true, health: silent) == labels)
        #expect(AgentRunner.sessionLabels(configured: labels, detectGPU: false, health: cpu) == labels)
    }
}
