import Foundation

/// What `switchyard agent` needs: flags override `switchyard-agent.yaml`, which overrides the defaults
/// (docs/agent.md lists every key).
public struct AgentConfiguration: Sendable, Equatable {
    /// The control plane's base URL (`http(s)://host:port`); several replicas' URLs separated by commas, tried in
    /// turn when a session drops.
    public var server: String = "http://127.0.0.1:8080"
    /// The `ak-` key.
    public var key: String = ""
    /// The local ComfyUI.
    public var comfyUI: String = "http://127.0.0.1:8188"
    /// Stable across restarts; defaults to the host name.
    public var agentId: String = ProcessInfo.processInfo.hostName
    public var labels: [String] = []
    public var region: String?
    public var capacity: Int = 1
    /// Offers accepted beyond `capacity` and queued in ComfyUI's own queue, so it never idles between tasks.
    public var prefetch: Int = 2
    /// How often an engine that does not answer is probed again.
    public var unhealthyProbeInterval: Duration = .seconds(1)
    public var communityOptIn = false

    public init() {}

    /// The gateway's WebSocket URL for (the first of) `server`.
    public var gatewayURL: String { gatewayURLs[0] }

    /// The gateway's WebSocket URL of every server listed.
    public var gatewayURLs: [String] {
        let listed = server.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return (listed.isEmpty ? [server] : listed).map { server in
            var base = server.hasSuffix("/") ? String(server.dropLast()) : server
            if base.hasPrefix("https://") { base = "wss://" + base.dropFirst("https://".count) }
            if base.hasPrefix("http://") { base = "ws://" + base.dropFirst("http://".count) }
            return base + "/api/v1/agent/connect"
        }
    }

    /// The labels advertised: the defaults for the tool (`gpu`, `comfyui`) plus the configured ones, deduplicated.
    public static func advertisedLabels(configured: [String], tool: String) -> [String] {
        var seen: Set<String> = []
        return (["gpu", tool] + configured).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter {
            !$0.isEmpty && seen.insert($0).inserted
        }
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Applies the keys of a `switchyard-agent.yaml` (`server`, `key`, `comfyui`, `agent_id`, `agent_labels`,
    /// `region`, `capacity`, `prefetch`, `community_opt_in`); an unknown key or a malformed value is an error naming it.
    public mutating func apply(yaml text: String) throws {
        for (key, value) in try Self.parseYAML(text) {
            switch (key, value) {
            case ("server", .scalar(let text)): server = text
            case ("key", .scalar(let text)): self.key = text
            case ("comfyui", .scalar(let text)): comfyUI = text
            case ("agent_id", .scalar(let text)): agentId = text
            case ("region", .scalar(let text)): region = text
            case ("agent_labels", .list(let items)): labels = items
            case ("agent_labels", .scalar(let text)) where text.isEmpty: labels = []
            case ("capacity", .scalar(let text)):
                guard let number = Int(text), (1...256).contains(number) else { throw Invalid(description: "capacity: \"\(text)\" is not 1–256") }
                capacity = number
            case ("prefetch", .scalar(let text)):
                guard let number = Int(text), (0...64).contains(number) else { throw Invalid(description: "prefetch: \"\(text)\" is not 0–64") }
                prefetch = number
            case ("community_opt_in", .scalar(let text)):
                guard let flag = ["true": true, "yes": true, "false": false, "no": false][text.lowercased()] else {
                    throw Invalid(description: "community_opt_in: \"\(text)\" is not true or false")
                }
                communityOptIn = flag
            case ("agent_labels", _): throw Invalid(description: "agent_labels must be a list")
            default: throw Invalid(description: "\(key): unknown key, or a list where a value belongs")
            }
        }
    }

    enum YAMLValue: Equatable {
        case scalar(String)
        case list([String])
    }

    /// The YAML this file needs: `key: value`, `key: [a, b]`, and `key:` followed by `- item` lines; `#` comments;
    /// quoted scalars. Anything else is refused with its line number.
    static func parseYAML(_ text: String) throws -> [(String, YAMLValue)] {
        var entries: [(String, YAMLValue)] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(rawLine)
            if let hash = line.firstIndex(of: "#"), !line[..<hash].contains("\"") { line = String(line[..<hash]) }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            if trimmed.hasPrefix("- ") || trimmed == "-" {
                guard let last = entries.last, case .list(let items) = last.1 else {
                    throw Invalid(description: "line \(number + 1): a list item outside a list")
                }
                entries[entries.count - 1].1 = .list(items + [unquote(String(trimmed.dropFirst()).trimmingCharacters(in: .whitespaces))])
                continue
            }
            guard let colon = trimmed.firstIndex(of: ":") else { throw Invalid(description: "line \(number + 1): expected key: value") }
            let key = String(trimmed[..<colon]).trimmingCharacters(in: .whitespaces)
            let value = String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            if value.isEmpty {
                entries.append((key, .list([])))
            } else if value.hasPrefix("[") {
                guard value.hasSuffix("]") else { throw Invalid(description: "line \(number + 1): unclosed [") }
                let items = value.dropFirst().dropLast().split(separator: ",").map { unquote($0.trimmingCharacters(in: .whitespaces)) }
                entries.append((key, .list(items.filter { !$0.isEmpty })))
            } else {
                entries.append((key, .scalar(unquote(value))))
            }
        }
        return entries.map { key, value in
            // `key:` with nothing after and no items is an empty scalar, not a list.
            if case .list(let items) = value, items.isEmpty, key != "agent_labels" { return (key, .scalar("")) }
            return (key, value)
        }
    }

    private static func unquote(_ value: String) -> String {
        for quote in ["\"", "'"] where value.count >= 2 && value.hasPrefix(quote) && value.hasSuffix(quote) {
            return String(value.dropFirst().dropLast())
        }
        return value
    }
}
