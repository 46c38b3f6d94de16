import Foundation
import SwitchyardCore
import Testing

@Suite("Credential secrets")
struct CredentialSecretTests {
    @Test("each kind has its prefix, 44 random base62 characters and a 12-character display prefix", arguments: CredentialKind.allCases)
    func format(kind: CredentialKind) {
        let secret = CredentialSecret.generate(kind: kind)
        #expect(secret.hasPrefix(kind.secretPrefix))
        #expect(secret.count == 47)
        #expect(secret.dropFirst(3).allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        #expect(CredentialKind(secret: secret) == kind)
        #expect(CredentialSecret.displayPrefix(of: secret).count == 12)
        #expect(CredentialSecret.looksLikeSecret(secret))
    }

    @Test("secrets do not repeat")
    func unique() {
        let secrets = Set((0..<1000).map { _ in CredentialSecret.generate(kind: .integration) })
        #expect(secrets.count == 1000)
    }

    @Test("unknown prefixes are not credentials", arguments: ["eyJhbGci", "pk-abc", "", "SK-abc"])
    func unknownPrefix(value: String) {
        #expect(CredentialKind(secret: value) == nil)
        #expect(!CredentialSecret.looksLikeSecret(value))
    }

    @Test("status: revoked beats expired beats active")
    func status() {
        let now = Date(timeIntervalSince1970: 10_000)
        var credential = Credential(
            id: UUID(), teamId: UUID(), userId: nil, kind: .integration, displayName: "k", keyPrefix: "sk-", keyHash: "h", createdAt: now)
        #expect(credential.status(at: now) == .active)
        credential.expiresAt = now
        #expect(credential.status(at: now) == .expired)
        #expect(credential.status(at: now.addingTimeInterval(-1)) == .active)
        credential.revokedAt = now.addingTimeInterval(-5)
        #expect(credential.status(at: now.addingTimeInterval(-1)) == .revoked)
    }
}
