import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// Cloud provider credentials (api.md §2.7) on every backend.
@Suite("Storage contract: cloud credentials")
struct CloudCredentialContractTests {
    let contract = StorageContractTests()

    @Test("one per team and provider: a replacement keeps created_at; status changes only for the key it names", arguments: TestBackend.available)
    func credentials(backend: TestBackend) async throws {
        try await contract.withStorage(backend) { storage async throws in
            let team = try await contract.seedTeam(storage)
            let other = try await contract.seedTeam(storage, owner: "grace@example.com")
            let now = contract.now
            #expect(try await storage.cloudCredential(teamId: team.id, provider: .comfyCloud) == nil)
            let first = CloudCredential(
                teamId: team.id, provider: .comfyCloud, sealedKey: "v1.sealed-first", keyPreview: "cfy_aaaa...zzzz", cloudFallback: true,
                verifiedAt: now, createdAt: now, updatedAt: now)
            #expect(try await storage.putCloudCredential(first) == first)
            #expect(try await storage.cloudCredential(teamId: team.id, provider: .comfyCloud) == first)
            #expect(try await storage.cloudCredential(teamId: other.id, provider: .comfyCloud) == nil)

            let later = now.addingTimeInterval(60)
            var second = first
            second.sealedKey = "v1.sealed-second"
            second.keyPreview = "cfy_bbbb...yyyy"
            second.cloudFallback = false
            second.verifiedAt = nil
            second.statusMessage = "not checked"
            second.createdAt = later
            second.updatedAt = later
            let replaced = try await storage.putCloudCredential(second)
            #expect(replaced.createdAt == now)
            #expect(replaced.updatedAt == later && replaced.sealedKey == "v1.sealed-second" && !replaced.cloudFallback)
            #expect(replaced.verifiedAt == nil && replaced.statusMessage == "not checked")

            // A refusal of the old key does not touch the new one; of the current key it does.
            #expect(
                try await !storage.setCloudCredentialStatus(
                    teamId: team.id, provider: .comfyCloud, sealedKey: "v1.sealed-first", status: .revoked, message: "401", at: later))
            #expect(try await storage.cloudCredential(teamId: team.id, provider: .comfyCloud)?.status == .active)
            #expect(
                try await storage.setCloudCredentialStatus(
                    teamId: team.id, provider: .comfyCloud, sealedKey: "v1.sealed-second", status: .revoked, message: "401", at: later))
            let revoked = try #require(try await storage.cloudCredential(teamId: team.id, provider: .comfyCloud))
            #expect(revoked.status == .revoked && revoked.statusMessage == "401")

            #expect(try await !storage.deleteCloudCredential(teamId: other.id, provider: .comfyCloud))
            #expect(try await storage.deleteCloudCredential(teamId: team.id, provider: .comfyCloud))
            #expect(try await storage.cloudCredential(teamId: team.id, provider: .comfyCloud) == nil)
        }
    }

    @Test("deleting a team deletes its cloud credential", arguments: TestBackend.available)
    func teamDeletion(backend: TestBackend) async throws {
        try await contract.withStorage(backend) { storage async throws in
            let team = try await contract.seedTeam(storage)
            let now = contract.now
            _ = try await storage.putCloudCredential(
                CloudCredential(
                    teamId: team.id, provider: .comfyCloud, sealedKey: "v1.x", keyPreview: "cfy_...", cloudFallback: false, verifiedAt: nil,
                    createdAt: now, updatedAt: now))
            #expect(try await storage.deleteTeam(id: team.id, at: now) != nil)
            #expect(try await storage.cloudCredential(teamId: team.id, provider: .comfyCloud) == nil)
        }
    }
}
