import Foundation
import SwitchyardCore

/// What an agent reports about its machine.
public struct SystemStats: Codable, Sendable, Equatable {
    public struct GPUDevice: Codable, Sendable, Equatable {
        public var name: String
        public var vramTotal: Int
        public var vramFree: Int

        public init(name: String, vramTotal: Int, vramFree: Int) {
            self.name = name
            self.vramTotal = vramTotal
            self.vramFree = vramFree
        }

        enum CodingKeys: String, CodingKey {
            case name
            case vramTotal = "vram_total"
            case vramFree = "vram_free"
        }
    }

    public var os: String?
    public var ramTotal: Int?
    public var ramFree: Int?
    public var gpuDevices: [GPUDevice]

    public init(os: String? = nil, ramTotal: Int? = nil, ramFree: Int? = nil, gpuDevices: [GPUDevice] = []) {
        self.os = os
        self.ramTotal = ramTotal
        self.ramFree = ramFree
        self.gpuDevices = gpuDevices
    }

    enum CodingKeys: String, CodingKey {
        case os
        case ramTotal = "ram_total"
        case ramFree = "ram_free"
        case gpuDevices = "gpu_devices"
    }
}

/// An agent's availability, as the wire carries it (the type lives in Core, where dispatch decides on it).
public typealias AgentStatus = SwitchyardCore.AgentStatus

/// Who is to blame for a failed attempt: the task (bad input, node error — retrying will not help), the agent
/// (its machine or ComfyUI broke — another agent may succeed), or the platform (never uses up a retry).
public enum FaultOrigin: String, Codable, Sendable, CaseIterable {
    case task
    case agent
    case platform
}

/// One output a finished attempt uploaded: where it is and what it is, keyed `<node_id>.<kind>.<index>`.
public struct OutputFile: Codable, Sendable, Equatable {
    public var nodeId: String
    /// ComfyUI's history kind: `images`, `gifs`, `video`, `audio`, `text`, `files`, …
    public var kind: String
    public var index: Int
    public var fileName: String
    public var storageKey: String
    public var contentType: String
    public var size: Int
    /// A preview (ComfyUI's temp folder), not a saved output.
    public var preview: Bool?
    /// Frames of one animation.
    public var animated: Bool?
    /// A text output's value, kept inline in `task_output`.
    public var text: String?

    public init(
        nodeId: String, kind: String, index: Int, fileName: String, storageKey: String, contentType: String, size: Int, preview: Bool? = nil,
        animated: Bool? = nil, text: String? = nil
    ) {
        self.nodeId = nodeId
        self.kind = kind
        self.index = index
        self.fileName = fileName
        self.storageKey = storageKey
        self.contentType = contentType
        self.size = size
        self.preview = preview
        self.animated = animated
        self.text = text
    }

    /// `9.images.0`, the key of `download_urls`.
    public var outputId: String { "\(nodeId).\(kind).\(index)" }

    enum CodingKeys: String, CodingKey {
        case index, kind, size, preview, animated, text
        case nodeId = "node_id"
        case fileName = "file_name"
        case storageKey = "storage_key"
        case contentType = "content_type"
    }
}

/// An input file of an offer: fetched with `downloadURL` and handed to the tool as `fileName`, then written into
/// the definition at `nodeId`/`field`.
public struct OfferInput: Codable, Sendable, Equatable {
    public var parameter: String
    public var nodeId: String?
    public var field: String?
    public var fileName: String
    public var downloadURL: String
    public var size: Int?

    public init(parameter: String, nodeId: String?, field: String?, fileName: String, downloadURL: String, size: Int? = nil) {
        self.parameter = parameter
        self.nodeId = nodeId
        self.field = field
        self.fileName = fileName
        self.downloadURL = downloadURL
        self.size = size
    }

    enum CodingKeys: String, CodingKey {
        case parameter, field, size
        case nodeId = "node_id"
        case fileName = "file_name"
        case downloadURL = "download_url"
    }
}
