import Foundation
import SwitchyardCore

/// Where a registered model lands under the agent's models root: `<model_type>/<model_path>`, e.g.
/// `checkpoints/sdxl/base.safetensors`, the layout ComfyUI's loaders read. The server validated both fields when
/// the model was registered; the agent validates them again, so nothing a server (or a forged message) says can
/// make it write outside the root.
public struct ModelPlacement: Sendable, Hashable, CustomStringConvertible {
    /// The path below the root, `/`-separated.
    public let relativePath: String

    public init(modelType: String, modelPath: String) throws(ModelSyncError) {
        let relative = "\(modelType)/\(modelPath)"
        if let rule = Self.violation(type: modelType, path: modelPath) {
            throw .invalidPlacement("\"\(relative)\" \(rule)")
        }
        self.relativePath = relative
    }

    /// The file this placement names under `root`.
    public func url(in root: URL) -> URL {
        relativePath.split(separator: "/").reduce(root) { $0.appendingPathComponent(String($1), isDirectory: false) }
    }

    public var description: String { relativePath }

    /// The first rule the type or path breaks, or nil. The path follows the server's rule (`ModelFields`); beyond
    /// it, no segment may be empty, `.` or start with a dot (hidden files, and the agent's own `.switchyard`
    /// folder), and the type is one segment.
    static func violation(type: String, path: String) -> String? {
        if type.isEmpty || type.contains("/") { return "has a model type that is not one folder name" }
        if let rule = ModelFields.pathViolation(type) ?? ModelFields.pathViolation(path) { return rule }
        let segments = "\(type)/\(path)".split(separator: "/", omittingEmptySubsequences: false)
        if segments.contains(where: \.isEmpty) { return "must not contain an empty segment (//, or a trailing /)" }
        if segments.contains(where: { $0.hasPrefix(".") }) { return "must not contain a segment starting with a dot" }
        if segments.count > 32 || path.utf8.count > 1024 { return "is too deep or too long" }
        return nil
    }
}

/// What can go wrong while a model is placed.
public enum ModelSyncError: Error, Equatable, CustomStringConvertible {
    /// The type or path would leave the models root, or is not a plain relative path.
    case invalidPlacement(String)
    /// The bytes do not hash to the registered `file_hash` (or their count is not `file_size`): discarded.
    case integrity(String)
    /// The store answered with a status the download cannot use (an expired URL answers 403).
    case refused(status: UInt, String)
    /// The file could not be written (a full disk: "No space left on device"); what was written stays for a resume.
    case disk(String)

    public var description: String {
        switch self {
        case .invalidPlacement(let message): "model placement \(message)"
        case .integrity(let message): message
        case .refused(let status, let message): "the model download was refused (\(status)): \(message)"
        case .disk(let message): "the model could not be stored: \(message)"
        }
    }
}
