import AsyncHTTPClient
import Foundation
import SwitchyardCore
import SwitchyardWire

extension AgentRunner {
    /// Why the gateway refuses this agent's key, when it does: after a session that failed before its welcome, a
    /// plain GET of the connect URL with the key says 401 and why (a wrong, revoked or non-`ak-` key), where the
    /// failed WebSocket upgrade only said that it failed. nil when the key is accepted (426: the upgrade is what is
    /// missing) or the server cannot be asked.
    nonisolated static func keyRefusal(gateway url: String, key: String, http: HTTPClient = .shared) async -> String? {
        var address = url
        if address.hasPrefix("wss://") { address = "https://" + address.dropFirst("wss://".count) }
        if address.hasPrefix("ws://") { address = "http://" + address.dropFirst("ws://".count) }
        var request = HTTPClientRequest(url: address)
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        guard let response = try? await http.execute(request, timeout: .seconds(10)), response.status.code == 401 else { return nil }
        let body = try? await response.body.collect(upTo: 64 * 1024)
        let message = body.flatMap { try? JSONValue.parse($0.readableBytesView) }?["error_message"]?.stringValue ?? "unauthorized"
        return "the server refused the agent key (401: \(message)); check --key, SWITCHYARD_AGENT_KEY or the stored login"
    }

    /// The labels a session advertises: `gpu` is left out when ComfyUI answered and reported no GPU device (a CPU
    /// machine), unless the operator listed it; it stays while ComfyUI has not answered yet.
    nonisolated static func sessionLabels(configured: [String], detectGPU: Bool, health: ToolHealth) -> [String] {
        guard detectGPU, health.healthy, health.systemStats?.gpuDevices.isEmpty ?? true else { return configured }
        return configured.filter { $0 != "gpu" }
    }
}
