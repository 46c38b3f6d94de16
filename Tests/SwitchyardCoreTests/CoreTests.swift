import Foundation
import SwitchyardCore
import Testing

@Suite("UUIDv7")
struct UUIDv7Tests {
    @Test("version 7, RFC variant, millisecond timestamp in the first 48 bits")
    func layout() {
        let date = Date(timeIntervalSince1970: 1_700_000_000.123)
        let id = UUIDv7.make(at: date)
        let bytes = withUnsafeBytes(of: id.uuid) { Array($0) }
        #expect(bytes[6] >> 4 == 7)
        #expect(bytes[8] >> 6 == 0b10)
        let millis = bytes[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(millis == 1_700_000_000_123)
        #expect(id.lowercased == id.uuidString.lowercased())
    }

    @Test("ids sort by creation time")
    func ordering() {
        let earlier = UUIDv7.make(at: Date(timeIntervalSince1970: 1000))
        let later = UUIDv7.make(at: Date(timeIntervalSince1970: 1000.002))
        #expect(earlier.lowercased < later.lowercased)
    }
}

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

@Suite("Pagination")
struct PaginationTests {
    @Test(
        "valid query values",
        arguments: [
            (nil, nil, 1, 20), ("1", "1", 1, 1), ("3", "100", 3, 100), ("2147483647", "20", 2_147_483_647, 20),
        ] as [(String?, String?, Int, Int)]
    )
    func valid(page: String?, perPage: String?, expectedPage: Int, expectedPerPage: Int) throws {
        let request = try PageRequest(currentPage: page, perPage: perPage)
        #expect(request.currentPage == expectedPage)
        #expect(request.perPage == expectedPerPage)
        #expect(request.offset == (expectedPage - 1) * expectedPerPage)
    }

    @Test(
        "invalid query values name the parameter",
        arguments: [
            ("0", nil, "current_page"), ("-1", nil, "current_page"), ("x", nil, "current_page"), ("1.5", nil, "current_page"),
            (nil, "0", "per_page"), (nil, "101", "per_page"), (nil, "", "per_page"), (nil, "ten", "per_page"),
        ] as [(String?, String?, String)]
    )
    func invalid(page: String?, perPage: String?, name: String) {
        #expect {
            try PageRequest(currentPage: page, perPage: perPage)
        } throws: { error in
            guard case .invalid(let message) = error as? SwitchyardError else { return false }
            return message.contains("\"\(name)\"")
        }
    }

    @Test(
        "an out-of-range page says which bound it crosses, however large the number",
        arguments: [
            ("2147483648", "above the maximum 2147483647"), ("99999999999999999999999", "above the maximum 2147483647"),
            ("0", "below the minimum 1"), ("-99999999999999999999999", "below the minimum 1"),
        ])
    func bounds(page: String, message: String) {
        #expect {
            try PageRequest(currentPage: page, perPage: nil)
        } throws: { error in
            guard case .invalid(let text) = error as? SwitchyardError else { return false }
            return text == "query parameter \"current_page\": \(page) is \(message)"
        }
        #expect(throws: (any Error).self) { try PageRequest(currentPage: "１２", perPage: nil) }
    }
}

@Suite("Roles")
struct TeamRoleTests {
    @Test("only owners and admins manage credentials; viewers cannot write")
    func permissions() {
        #expect(TeamRole.allCases.filter(\.canManageCredentials) == [.owner, .admin])
        #expect(TeamRole.allCases.filter { !$0.canWrite } == [.viewer])
    }
}

@Suite("Deadlines")
struct DeadlineTests {
    @Test("a call that answers in time gives its answer or its error; one that never answers gives DeadlineExceeded")
    func deadline() async throws {
        #expect(try await withDeadline(.seconds(5)) { 42 } == 42)
        await #expect(throws: SwitchyardError.self) { try await withDeadline(.seconds(5)) { throw SwitchyardError.invalid("x") } }
        // Never answers, like a query its client lost: it waits on a stream nothing is sent to until it is cancelled.
        let (silence, keepOpen) = AsyncStream.makeStream(of: Int.self)
        defer { keepOpen.finish() }
        let error = await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(50)) {
                for await value in silence { return value }
                return 0
            }
        }
        #expect(error?.limit == .milliseconds(50))
    }
}
