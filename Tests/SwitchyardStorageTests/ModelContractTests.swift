import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

extension StorageContractTests {
    func modelRecord(team: UUID, at date: Date? = nil, key: String? = nil) -> ModelRecord {
        let date = date ?? now
        return ModelRecord(
            id: UUIDv7.make(at: date), teamId: team, displayName: "SDXL base", modelType: "checkpoints",
            storageKey: key ?? "models/\(team.lowercased)/\(UUID().uuidString.lowercased())", fileSize: 6_938_078_334,
            fileHash: "sha256:" + String(repeating: "ab", count: 32), modelPath: "models/checkpoints/sdxl base.safetensors", createdAt: date,
            updatedAt: date)
    }

    @Test("models: stored whole (sizes past 4 GiB included), team-scoped, one per storage key, listed newest first", arguments: TestBackend.available)
    func modelsStoreAndList(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let other = try await seedTeam(storage, owner: "grace@example.com")
            let first = modelRecord(team: mine.id)
            try await storage.insertModel(first)
            #expect(try await storage.model(id: first.id, teamId: mine.id) == first)
            #expect(try await storage.model(id: first.id, teamId: other.id) == nil)
            await #expect(throws: SwitchyardError.self) {
                var duplicate = modelRecord(team: mine.id, key: first.storageKey)
                duplicate.fileHash = nil
                try await storage.insertModel(duplicate)
            }
            var second = modelRecord(team: mine.id, at: now.addingTimeInterval(10))
            second.fileHash = nil
            second.modelPath = nil
            try await storage.insertModel(second)
            let page = try await storage.models(teamId: mine.id, page: PageRequest(currentPage: 1, perPage: 1))
            #expect(page.totalCount == 2 && page.items == [second])
            #expect(try await storage.models(teamId: other.id, page: PageRequest()).totalCount == 0)
            // The sync set: active, with a path, oldest first; another team's never.
            var third = modelRecord(team: mine.id, at: now.addingTimeInterval(20))
            third.modelPath = "loras/style.safetensors"
            try await storage.insertModel(third)
            #expect(try await storage.syncedModels(teamId: mine.id, limit: 10) == [first, third])
            #expect(try await storage.syncedModels(teamId: mine.id, limit: 1) == [first])
            third.status = .disabled
            #expect(try await storage.updateModel(third))
            #expect(try await storage.syncedModels(teamId: mine.id, limit: 10) == [first])
            #expect(try await storage.syncedModels(teamId: other.id, limit: 10).isEmpty)

            // A large file checked after registration: pending (not synced) until its outcome is written, once.
            var large = modelRecord(team: mine.id, at: now.addingTimeInterval(30))
            large.verification = .pending
            try await storage.insertModel(large)
            #expect(try await storage.model(id: large.id, teamId: mine.id)?.verification == .pending)
            #expect(try await storage.modelsToVerify(limit: 10).map(\.id) == [large.id])
            #expect(try await storage.syncedModels(teamId: mine.id, limit: 10) == [first])
            #expect(try await !storage.finishVerification(id: large.id, teamId: other.id, .done, at: now), "another team's looks missing")
            #expect(try await storage.finishVerification(id: large.id, teamId: mine.id, .failed("mismatch"), at: now))
            #expect(try await !storage.finishVerification(id: large.id, teamId: mine.id, .done, at: now), "the outcome is written once")
            #expect(try await storage.model(id: large.id, teamId: mine.id)?.verification == .failed("mismatch"))
            #expect(try await storage.modelsToVerify(limit: 10).isEmpty)
            #expect(try await storage.syncedModels(teamId: mine.id, limit: 10) == [first])
        }
    }

    @Test(
        "a model's placement: <model_type>/<path>, a leading models/<type>/ of the path read as the same place; none without a path",
        arguments: [
            ("checkpoints", "models/checkpoints/sdxl base.safetensors", "checkpoints/sdxl base.safetensors"),
            ("checkpoints", "checkpoints/sdxl/base.safetensors", "checkpoints/sdxl/base.safetensors"),
            ("loras", "style.safetensors", "loras/style.safetensors"),
            ("loras", "models/style.safetensors", "loras/style.safetensors"),
            ("vae", "models/checkpoints/x.safetensors", "vae/checkpoints/x.safetensors"),
            ("vae", "models/vae/", nil),
            ("vae", nil, nil),
        ] as [(String, String?, String?)])
    func placement(type: String, path: String?, expected: String?) {
        var model = modelRecord(team: UUID())
        model.modelType = type
        model.modelPath = path
        #expect(model.placement == expected)
    }

    @Test(
        "models: update writes the editable fields only; delete returns the record once; another team's look missing",
        arguments: TestBackend.available)
    func modelsUpdateAndDelete(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let other = try await seedTeam(storage, owner: "grace@example.com")
            let model = modelRecord(team: mine.id)
            try await storage.insertModel(model)
            var changed = model
            changed.displayName = "renamed"
            changed.status = .disabled
            changed.modelPath = nil
            changed.fileSize = 1
            changed.updatedAt = now.addingTimeInterval(60)
            #expect(try await storage.updateModel(changed))
            var expected = changed
            expected.fileSize = model.fileSize
            #expect(try await storage.model(id: model.id, teamId: mine.id) == expected)
            var foreign = changed
            foreign.teamId = other.id
            #expect(try await storage.updateModel(foreign) == false)
            #expect(try await storage.deleteModel(id: model.id, teamId: other.id) == nil)
            #expect(try await storage.deleteModel(id: model.id, teamId: mine.id) == expected)
            #expect(try await storage.deleteModel(id: model.id, teamId: mine.id) == nil)
        }
    }
}

extension StorageContractTests {
    @Test(
        "multipart uploads: recorded, read back per team (another team's look missing), forgotten once; a week-old one is pruned",
        arguments: TestBackend.available)
    func multipartUploads(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let other = try await seedTeam(storage, owner: "grace@example.com")
            let old = MultipartUpload(
                uploadId: "old", teamId: mine.id, storageKey: "models/\(mine.id.lowercased)/\(UUID().lowercased)", fileSize: 10,
                partSize: 104_857_600, createdBy: nil, createdAt: now.addingTimeInterval(-MultipartUpload.lifetime - 1))
            try await storage.insertMultipartUpload(old)
            #expect(try await storage.multipartUpload(id: "old", teamId: mine.id) == old)
            let upload = MultipartUpload(
                uploadId: "u-1", teamId: mine.id, storageKey: "models/\(mine.id.lowercased)/\(UUID().lowercased)", fileSize: 250_000_000,
                partSize: 104_857_600, createdBy: mine.id, createdAt: now)
            try await storage.insertMultipartUpload(upload)
            #expect(try await storage.multipartUpload(id: "old", teamId: mine.id) == nil, "older than a week: pruned")
            #expect(try await storage.multipartUpload(id: "u-1", teamId: mine.id) == upload)
            #expect(upload.partCount == 3 && upload.length(ofPart: 3) == 250_000_000 - 2 * 104_857_600 && upload.length(ofPart: 4) == nil)
            #expect(try await storage.multipartUpload(id: "u-1", teamId: other.id) == nil)
            #expect(try await storage.deleteMultipartUpload(id: "u-1", teamId: other.id) == false)
            #expect(try await storage.deleteMultipartUpload(id: "u-1", teamId: mine.id) == true)
            #expect(try await storage.deleteMultipartUpload(id: "u-1", teamId: mine.id) == false)
        }
    }
}
