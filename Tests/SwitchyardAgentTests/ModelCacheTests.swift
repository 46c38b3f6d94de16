import Crypto
import Foundation
import SwitchyardObjectStore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardAgent

/// The agent's model cache against the embedded S3 store: presigned GETs as the server hands them out.
@Suite("Agent model cache")
struct ModelCacheTests {
    @Test(
        "placements stay under the root: <type>/<path> as ComfyUI's loaders read it; escapes, absolute paths, hidden and empty segments refused",
        arguments: [
            ("checkpoints", "sdxl/base.safetensors", true), ("loras", "style 1.safetensors", true), ("diffusion_models", "flux-dev.gguf", true),
            ("checkpoints", "../../etc/passwd", false), ("checkpoints", "/etc/passwd", false), ("..", "x.safetensors", false),
            ("checkpoints/..", "x", false), ("", "x.safetensors", false), ("checkpoints", "a//b.safetensors", false),
            ("checkpoints", "a/./b.safetensors", false), ("checkpoints", ".switchyard/manifest.json", false),
            ("checkpoints", "a\\b.safetensors", false), ("checkpoints", "a/", false), ("checkpoints", "x\u{0}.safetensors", false),
        ])
    func placements(type: String, path: String, valid: Bool) throws {
        let root = URL(fileURLWithPath: "/srv/models")
        if valid {
            let placement = try ModelPlacement(modelType: type, modelPath: path)
            #expect(placement.url(in: root).path == "/srv/models/\(type)/\(path)")
        } else {
            #expect(throws: ModelSyncError.self) { try ModelPlacement(modelType: type, modelPath: path) }
        }
    }

    /// A 3 MiB model in the store, its presigned GET, and a fresh cache folder.
    private func withModel(
        _ body: @Sendable (_ url: String, _ bytes: [UInt8], _ digest: String, _ root: URL, _ store: S3Client) async throws -> Void
    ) async throws {
        try await TestObjectStore.embedded.with { configuration, _ in
            let store = S3Client(configuration: configuration)
            var random = SystemRandomNumberGenerator()
            let bytes = (0..<(3 << 17)).flatMap { _ in withUnsafeBytes(of: random.next() as UInt64) { Array($0) } }
            _ = try await store.putObject(key: "models/team/model-1", body: bytes)
            let digest = "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-models-\(UUID())")
            defer { try? FileManager.default.removeItem(at: root) }
            try await body(store.presignedGet(key: "models/team/model-1", expires: 300, now: Date()), bytes, digest, root, store)
        }
    }

    @Test("a model is downloaded, checked against its size and digest, renamed into place and recorded; placing it again fetches nothing")
    func place() async throws {
        try await withModel { url, bytes, digest, root, _ in
            let cache = try ModelCache(root: root)
            let model = ModelCache.Wanted(
                modelId: UUID(), placement: try ModelPlacement(modelType: "checkpoints", modelPath: "sdxl/base.safetensors"), size: bytes.count,
                digest: digest)
            #expect(await !cache.holds(model))
            let seen = Counter()
            #expect(try await cache.place(model, from: url) { seen.record($0) } == bytes.count)
            #expect(seen.last == bytes.count)
            let file = root.appendingPathComponent("checkpoints/sdxl/base.safetensors")
            #expect(try Data(contentsOf: file) == Data(bytes))
            #expect(await cache.holds(model))
            #expect(try await cache.place(model, from: url) == 0)
            // The record survives a restart of the agent.
            let reopened = try ModelCache(root: root)
            #expect(await reopened.holdings.map(\.relativePath) == ["checkpoints/sdxl/base.safetensors"])
            #expect(await reopened.holdings.first?.digest == digest)
            #expect(await reopened.holds(model))
        }
    }

    @Test("a partial file left by a dropped connection is resumed with Range: only the rest is transferred, and the digest covers it all")
    func resume() async throws {
        try await withModel { url, bytes, digest, root, _ in
            let cache = try ModelCache(root: root)
            let id = UUID()
            let partial = root.appendingPathComponent(".switchyard/partial/\(id.uuidString.lowercased())")
            try Data(bytes[..<1_000_000]).write(to: partial)
            let model = ModelCache.Wanted(
                modelId: id, placement: try ModelPlacement(modelType: "loras", modelPath: "style.safetensors"), size: bytes.count, digest: digest)
            #expect(try await cache.place(model, from: url) == bytes.count - 1_000_000)
            #expect(try Data(contentsOf: root.appendingPathComponent("loras/style.safetensors")) == Data(bytes))
            #expect(!FileManager.default.fileExists(atPath: partial.path))
        }
    }

    @Test("bytes that do not hash to the registration are discarded: nothing in place, no partial file, nothing recorded")
    func digestMismatch() async throws {
        try await withModel { url, bytes, _, root, _ in
            let cache = try ModelCache(root: root)
            let model = ModelCache.Wanted(
                modelId: UUID(), placement: try ModelPlacement(modelType: "checkpoints", modelPath: "bad.safetensors"), size: bytes.count,
                digest: "sha256:" + String(repeating: "0", count: 64))
            await #expect {
                try await cache.place(model, from: url)
            } throws: { error in
                guard case ModelSyncError.integrity(let message) = error else { return false }
                return message.contains("discarded")
            }
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoints/bad.safetensors").path))
            let partials = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(".switchyard/partial").path)
            #expect(partials.isEmpty)
            #expect(await cache.holdings.isEmpty)
        }
    }

    @Test("a file the agent did not place is never replaced nor removed; its own files are removed with their record")
    func ownFilesOnly() async throws {
        try await withModel { url, bytes, digest, root, _ in
            let cache = try ModelCache(root: root)
            let foreign = root.appendingPathComponent("checkpoints/mine.safetensors")
            try FileManager.default.createDirectory(at: foreign.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("the operator's own file".utf8).write(to: foreign)
            let clash = ModelCache.Wanted(
                modelId: UUID(), placement: try ModelPlacement(modelType: "checkpoints", modelPath: "mine.safetensors"), size: bytes.count,
                digest: digest)
            await #expect(throws: ModelSyncError.self) { try await cache.place(clash, from: url) }
            #expect(try await cache.remove("checkpoints/mine.safetensors") == false)
            #expect(try String(contentsOf: foreign, encoding: .utf8) == "the operator's own file")

            let own = ModelCache.Wanted(
                modelId: UUID(), placement: try ModelPlacement(modelType: "checkpoints", modelPath: "synced.safetensors"), size: bytes.count,
                digest: digest)
            try await cache.place(own, from: url)
            #expect(try await cache.remove("checkpoints/synced.safetensors"))
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoints/synced.safetensors").path))
            #expect(await cache.holdings.isEmpty)
        }
    }

    @Test("an expired or forged URL is refused with the store's status; nothing is placed")
    func refused() async throws {
        try await withModel { url, bytes, digest, root, store in
            let cache = try ModelCache(root: root)
            let model = ModelCache.Wanted(
                modelId: UUID(), placement: try ModelPlacement(modelType: "vae", modelPath: "v.safetensors"), size: bytes.count, digest: digest)
            let expired = store.presignedGet(key: "models/team/model-1", expires: 60, now: Date().addingTimeInterval(-3600))
            await #expect(throws: ModelSyncError.refused(status: 403, "Forbidden")) { try await cache.place(model, from: expired) }
            #expect(await cache.holdings.isEmpty)
            _ = url
        }
    }
}

/// The last progress value reported.
private final class Counter: Sendable {
    private let value = Mutex(0)
    var last: Int { value.withLock { $0 } }
    func record(_ last: Int) { value.withLock { $0 = last } }
}
