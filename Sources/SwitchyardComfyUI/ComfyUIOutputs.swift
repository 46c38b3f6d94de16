import SwitchyardCore

/// One entry of a prompt's history `outputs`, as something to keep: a file on the server (`/view`), a text value,
/// or any other value (kept as JSON). Keyed `<node>.<kind>.<index>` like ComfyUI lists them.
public struct ComfyUIOutput: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        /// `{"filename", "subfolder", "type"}`; `format` is VideoHelperSuite's MIME type for `gifs` entries.
        case file(filename: String, subfolder: String, type: String, format: String?)
        /// A string entry (`PreviewAny`'s `text`, `Preview3D`'s model path).
        case text(String)
        /// Anything else (numbers, objects): kept as its JSON text.
        case json(JSONValue)
    }

    public var nodeId: String
    public var kind: String
    public var index: Int
    public var content: Content
    /// The node said these images form an animation (`SaveAnimatedWEBP`/`SaveAnimatedPNG` list `"animated": [true]`).
    public var animated: Bool

    public init(nodeId: String, kind: String, index: Int, content: Content, animated: Bool = false) {
        self.nodeId = nodeId
        self.kind = kind
        self.index = index
        self.content = content
        self.animated = animated
    }

    /// A file of ComfyUI's temp folder (`PreviewImage`): a preview rather than a saved output.
    public var isPreview: Bool {
        if case .file(_, _, let type, _) = content { return type == "temp" }
        return false
    }

    /// Every entry of a history's (or the `executed` messages') outputs, by node id, then kind, then index. The
    /// `animated` flag list is folded into the node's images rather than kept; nulls are skipped.
    public static func list(_ outputs: JSONValue?) -> [ComfyUIOutput] {
        guard let nodes = outputs?.objectValue else { return [] }
        var listed: [ComfyUIOutput] = []
        for nodeId in nodes.keys.sorted(by: Self.nodeOrder) {
            guard let kinds = nodes[nodeId]?.objectValue else { continue }
            let animated = kinds["animated"]?.arrayValue?.contains(.bool(true)) ?? false
            for kind in kinds.keys.sorted() where kind != "animated" {
                let entries = kinds[kind]?.arrayValue ?? (kinds[kind].map { [$0] } ?? [])
                for (index, entry) in entries.enumerated() {
                    let content: Content
                    switch entry {
                    case .null: continue
                    case .string(let text): content = .text(text)
                    case .object(let fields) where fields["filename"]?.stringValue != nil:
                        content = .file(
                            filename: fields["filename"]?.stringValue ?? "", subfolder: fields["subfolder"]?.stringValue ?? "",
                            type: fields["type"]?.stringValue ?? "output", format: fields["format"]?.stringValue)
                    default: content = .json(entry)
                    }
                    listed.append(ComfyUIOutput(nodeId: nodeId, kind: kind, index: index, content: content, animated: animated && kind == "images"))
                }
            }
        }
        return listed
    }

    /// Node ids as numbers when they are (`"9" < "10"`), else as text.
    static func nodeOrder(_ left: String, _ right: String) -> Bool {
        switch (Int(left), Int(right)) {
        case (let l?, let r?): l < r
        case (.some, nil): true
        case (nil, .some): false
        case (nil, nil): left < right
        }
    }
}
