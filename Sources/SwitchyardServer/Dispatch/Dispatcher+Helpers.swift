import Foundation
import SwitchyardCore
import SwitchyardWire

extension Dispatcher {
    static func json(_ stats: SystemStats) -> JSONValue {
        guard let data = try? JSONEncoder().encode(stats), let value = try? JSONValue.parse(Array(data)) else { return .object([:]) }
        return value
    }

    static func gpuType(_ stats: JSONValue) -> String? {
        guard case .array(let devices)? = stats["gpu_devices"], case .string(let name)? = devices.first?["name"] else { return nil }
        return name
    }

    /// `task_output` of a completed agent task: the primary output's `storage_key` (api.md §2.2: the first saved
    /// image, else the first saved output, previews last), the saved image count, and every output keyed
    /// `<node_id>.<kind>.<index>` with what it is; previews and animations are marked, text values are inline.
    static func output(_ files: [OutputFile]) -> JSONValue {
        let ordered = files.sorted { ($0.nodeId, $0.kind, $0.index) < ($1.nodeId, $1.kind, $1.index) }
        let saved = ordered.filter { $0.preview != true }
        let primary = saved.first { $0.kind == "images" } ?? saved.first ?? ordered.first
        var outputs: [String: JSONValue] = [:]
        for file in ordered {
            var entry: [String: JSONValue] = [
                "node_id": .string(file.nodeId), "kind": .string(file.kind), "index": .number(JSONNumber(file.index)),
                "file_name": .string(file.fileName), "storage_key": .string(file.storageKey), "content_type": .string(file.contentType),
                "size": .number(JSONNumber(file.size)), "preview": .bool(file.preview == true),
            ]
            if file.animated == true { entry["animated"] = .bool(true) }
            if let text = file.text { entry["text"] = .string(text) }
            outputs[file.outputId] = .object(entry)
        }
        return [
            "storage_key": primary.map { .string($0.storageKey) } ?? .null,
            "image_count": .number(JSONNumber(saved.filter { $0.kind == "images" }.count)),
            "outputs": .object(outputs),
        ]
    }

    /// Where an attempt's outputs go: every upload URL the gateway issues for it is for a key in this folder.
    static func outputFolder(_ lease: Lease) -> String {
        "outputs/\(lease.teamId.lowercased)/\(lease.taskId.lowercased)/\(lease.attemptId.lowercased)/"
    }
}
