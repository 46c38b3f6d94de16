import SwitchyardCore

/// One WebSocket message of ComfyUI, as far as a prompt's executor cares (`spec/comfyui-protocol.md`, "WS
/// sequence"). Messages without a prompt id (`status`, the `executing` greeting after a reconnect) are `.other`.
public enum ComfyUIEvent: Sendable, Equatable {
    /// `execution_start`: the prompt left the queue and runs now.
    case started
    /// `execution_cached`: nodes taken from the cache (they get no `executing`).
    case cached([String])
    /// `executing` of a node.
    case executing(node: String)
    /// `progress` inside a node.
    case progress(node: String?, value: JSONValue?, max: JSONValue?)
    /// `progress_state`: every non-pending node with its state.
    case progressState(JSONValue)
    /// `executed`: a node's UI output (what history will list for it).
    case executed(node: String, output: JSONValue)
    /// `execution_success`: sent *before* the history entry is written.
    case succeeded
    /// `execution_error`, with ComfyUI's data (node, type, message, traceback).
    case failed(JSONValue)
    /// `execution_interrupted` (sent to every socket).
    case interrupted(JSONValue)
    /// `executing {"node": null}`: always last; the history entry exists from here on.
    case finished
    case other

    /// The prompt a text message is about, and what it says; nil when the text is not a ComfyUI message.
    public static func parse(_ text: String) -> (promptId: String?, event: ComfyUIEvent)? {
        guard let message = try? JSONValue.parse(Array(text.utf8)), let type = message["type"]?.stringValue else { return nil }
        let data = message["data"] ?? .null
        let promptId = data["prompt_id"]?.stringValue
        let event: ComfyUIEvent =
            switch type {
            case "execution_start": .started
            case "execution_cached": .cached((data["nodes"]?.arrayValue ?? []).compactMap(\.stringValue))
            case "executing":
                if let node = data["node"]?.stringValue {
                    .executing(node: node)
                } else if data["node"] == .null, promptId != nil {
                    .finished
                } else {
                    .other
                }
            case "progress": .progress(node: data["node"]?.stringValue, value: data["value"], max: data["max"])
            case "progress_state": .progressState(data["nodes"] ?? .null)
            case "executed": .executed(node: data["node"]?.stringValue ?? "", output: data["output"] ?? .null)
            case "execution_success": .succeeded
            case "execution_error": .failed(data)
            case "execution_interrupted": .interrupted(data)
            default: .other
            }
        return (promptId, event)
    }
}
