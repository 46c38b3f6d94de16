import AsyncHTTPClient
import Foundation

/// The models an agent placed under its models root (ComfyUI's `models/` folder or a cache folder it reads), and
/// what it knows of each: the registration it came from, its size and digest, when it was placed and last used.
/// The record — `.switchyard/manifest.json` under the root, rewritten whole and renamed into place — is how the
/// agent tells files it wrote from files it did not: it replaces and removes only its own. Downloads go to
/// `.switchyard/partial/<model id>` (a folder ComfyUI's loaders do not list) and are renamed into place once their
/// size and digest match the registration.
public actor ModelCache {
    /// A model the agent should hold.
    public struct Wanted: Sendable, Hashable {
        public let modelId: UUID
        public let placement: ModelPlacement
        /// `file_size` of the registration.
        public let size: Int
        /// `file_hash` of the registration (`sha256:<hex>`), when it has one.
        public let digest: String?

        public init(modelId: UUID, placement: ModelPlacement, size: Int, digest: String?) {
            self.modelId = modelId
            self.placement = placement
            self.size = size
            self.digest = digest?.lowercased()
        }
    }

    /// A file the agent placed.
    public struct Held: Codable, Sendable, Equatable {
        public let modelId: UUID
        public let relativePath: String
        public let size: Int
        /// `sha256:<hex>` of the bytes as downloaded.
        public let digest: String
        public let placedAt: Date
        public var lastUsedAt: Date
    }

    private struct Manifest: Codable {
        var files: [String: Held] = [:]
    }

    public nonisolated let root: URL
    private let download: ModelDownload
    private var manifest: Manifest

    private var stateFolder: URL { root.appendingPathComponent(".switchyard", isDirectory: true) }
    private var manifestFile: URL { stateFolder.appendingPathComponent("manifest.json") }

    /// Opens (creating if needed) the cache under `root` and reads its record.
    public init(root: URL, http: HTTPClient = .shared) throws {
        self.root = root.standardizedFileURL
        self.download = ModelDownload(http: http)
        let state = self.root.appendingPathComponent(".switchyard", isDirectory: true)
        try FileManager.default.createDirectory(at: state.appendingPathComponent("partial"), withIntermediateDirectories: true)
        let record = state.appendingPathComponent("manifest.json")
        if let data = try? Data(contentsOf: record) {
            self.manifest = try Self.decoder.decode(Manifest.self, from: data)
        } else {
            self.manifest = Manifest()
        }
    }

    /// What the agent placed, by path.
    public var holdings: [Held] { manifest.files.values.sorted { $0.relativePath < $1.relativePath } }

    /// What the record under `root` says the agent placed, and the partial downloads there (model id → bytes),
    /// read without creating anything (`switchyard agent models`).
    public static func recorded(at root: URL) throws -> (held: [Held], partial: [String: Int]) {
        let state = root.standardizedFileURL.appendingPathComponent(".switchyard", isDirectory: true)
        var held: [Held] = []
        if let data = try? Data(contentsOf: state.appendingPathComponent("manifest.json")) {
            held = try decoder.decode(Manifest.self, from: data).files.values.sorted { $0.relativePath < $1.relativePath }
        }
        var partial: [String: Int] = [:]
        let folder = state.appendingPathComponent("partial").path
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            partial[name] = (try? FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as? NSNumber)?.intValue ?? 0
        }
        return (held, partial)
    }

    /// Whether `model` is in place: recorded with the registration's size and digest, and still on disk at that size.
    public func holds(_ model: Wanted) -> Bool {
        guard let held = manifest.files[model.placement.relativePath], held.size == model.size,
            model.digest.map({ $0 == held.digest }) ?? true
        else { return false }
        let size = (try? FileManager.default.attributesOfItem(atPath: model.placement.url(in: root).path)[.size] as? NSNumber)?.intValue
        return size == model.size
    }

    /// Puts `model` in place from `url` (a presigned GET) unless it is there already; returns the bytes received.
    /// `progress` is told the bytes held so far. A partial file from an earlier try is resumed; bytes that do not
    /// match the registration are discarded (`ModelSyncError.integrity`); a file at the path that the agent did not
    /// place is never replaced.
    @discardableResult
    public func place(_ model: Wanted, from url: String, at now: Date = Date(), progress: @Sendable (Int) -> Void = { _ in }) async throws
        -> Int
    {
        let path = model.placement.relativePath
        if holds(model) {
            manifest.files[path]?.lastUsedAt = now
            try save()
            return 0
        }
        let destination = model.placement.url(in: root)
        if manifest.files[path] == nil, FileManager.default.fileExists(atPath: destination.path) {
            throw ModelSyncError.invalidPlacement("\"\(path)\" holds a file the agent did not place; it is left alone")
        }
        let partial = partialFile(model.modelId)
        let outcome = try await download.fetch(url, into: partial, size: model.size, progress: progress)
        guard outcome.held == model.size else {
            try? FileManager.default.removeItem(at: partial)
            throw ModelSyncError.integrity("\(path): received \(outcome.held) bytes, the registration says \(model.size); discarded")
        }
        if let digest = model.digest, digest != outcome.digest {
            try? FileManager.default.removeItem(at: partial)
            throw ModelSyncError.integrity("\(path): the bytes hash to \(outcome.digest), the registration says \(digest); discarded")
        }
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: destination.path) { try FileManager.default.removeItem(at: destination) }
        try FileManager.default.moveItem(at: partial, to: destination)
        manifest.files[path] = Held(
            modelId: model.modelId, relativePath: path, size: outcome.held, digest: outcome.digest, placedAt: now, lastUsedAt: now)
        try save()
        return outcome.transferred
    }

    /// Marks a placed file used now (the budget removes the least recently used first).
    public func touch(_ relativePath: String, at now: Date = Date()) throws {
        guard manifest.files[relativePath] != nil else { return }
        manifest.files[relativePath]?.lastUsedAt = now
        try save()
    }

    /// Removes what a download of `modelId` left in the partial folder (it left the set, or its bytes were wrong).
    public func discardPartial(_ modelId: UUID) {
        try? FileManager.default.removeItem(at: partialFile(modelId))
    }

    private func partialFile(_ modelId: UUID) -> URL {
        stateFolder.appendingPathComponent("partial").appendingPathComponent(modelId.uuidString.lowercased())
    }

    /// Removes a file the agent placed (and its record); a path it did not place is left alone (false).
    @discardableResult
    public func remove(_ relativePath: String) throws -> Bool {
        guard let held = manifest.files[relativePath] else { return false }
        let placement = try ModelPlacement(relativePath: held.relativePath)
        try? FileManager.default.removeItem(at: placement.url(in: root))
        manifest.files[relativePath] = nil
        try save()
        return true
    }

    private func save() throws {
        let temporary = stateFolder.appendingPathComponent("manifest.json.new")
        try Self.encoder.encode(manifest).write(to: temporary)
        // rename(2) replaces the record in one step: a crash leaves the old one or the new one, never half of either.
        guard rename(temporary.path, manifestFile.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: manifestFile.path])
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()
}

extension ModelPlacement {
    /// A recorded `<type>/<path>`, checked again (the record is a file on disk, not trusted blindly).
    init(relativePath: String) throws(ModelSyncError) {
        guard let slash = relativePath.firstIndex(of: "/") else {
            throw .invalidPlacement("\"\(relativePath)\" has no model type folder")
        }
        try self.init(modelType: String(relativePath[..<slash]), modelPath: String(relativePath[relativePath.index(after: slash)...]))
    }
}
