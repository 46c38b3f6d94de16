import Foundation
import SwitchyardWire
import ZIPFoundation

/// Unpacks an image set (a zip) without trusting it: every entry must be a plain file or folder whose path stays
/// inside the destination (no absolute paths, no `..`, no links), and the archive may hold at most `maxFiles` files
/// and `maxBytes` bytes — counted as they are written, not as the archive claims.
enum SafeUnzip {
    static func extract(_ archivePath: String, into destination: String, maxBytes: Int, maxFiles: Int) throws {
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: archivePath), accessMode: .read) } catch {
            throw ExecutionFailure("the image set is not a zip archive (\(error))", fault: .task)
        }
        let root = URL(fileURLWithPath: destination).standardizedFileURL
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var files = 0
        var written = 0
        for entry in archive {
            let path = entry.path
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            guard !path.hasPrefix("/"), !path.contains("\\"), !parts.contains(".."), !parts.isEmpty else {
                throw ExecutionFailure("the image set holds \"\(path)\", a path outside its folder", fault: .task)
            }
            let target = root.appendingPathComponent(parts.joined(separator: "/")).standardizedFileURL
            guard target.path.hasPrefix(root.path + "/") else {
                throw ExecutionFailure("the image set holds \"\(path)\", a path outside its folder", fault: .task)
            }
            switch entry.type {
            case .directory:
                try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            case .symlink:
                throw ExecutionFailure("the image set holds a link (\"\(path)\"); only files and folders are unpacked", fault: .task)
            case .file:
                files += 1
                guard files <= maxFiles else { throw ExecutionFailure("the image set holds more than \(maxFiles) files", fault: .task) }
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                guard FileManager.default.createFile(atPath: target.path, contents: nil) else {
                    throw ExecutionFailure("could not write \(target.path)", fault: .agent)
                }
                let handle = try FileHandle(forWritingTo: target)
                defer { try? handle.close() }
                _ = try archive.extract(entry) { chunk in
                    written += chunk.count
                    guard written <= maxBytes else { throw ExecutionFailure("the image set unpacks to more than \(maxBytes) bytes", fault: .task) }
                    try handle.write(contentsOf: chunk)
                }
            }
        }
        guard files > 0 else { throw ExecutionFailure("the image set holds no files", fault: .task) }
    }
}
