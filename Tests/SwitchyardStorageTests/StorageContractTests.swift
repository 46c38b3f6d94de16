import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The one storage contract: every backend in `TestBackend.available` must pass every test here.
@Suite("Storage contract")
struct StorageContractTests {
    let now = Date(timeIntervalSince1970: 1_767_225_600)

    func user(_ email: String = "ada@example.com", at date: Date? = nil) -> User {
        let date = date ?? now
        return User(id: UUIDv7.make(at: date), emailAddress: email, displayName: "Ada", passwordHash: "$2b$04$hash", createdAt: date, updatedAt: date)
    }

    func team(_ name: String = "Team", at date: Date? = nil) -> Team {
        let date = date ?? now
        return Team(id: UUIDv7.make(at: date), displayName: name, createdAt: date, updatedAt: date)
    }

    func credential(team: UUID, kind: CredentialKind = .integration, createdAt: Date? = nil, hash: String? = nil) -> Credential {
        let date = createdAt ?? now
        return Credential(
            id: UUIDv7.make(at: date), teamId: team, userId: nil, kind: kind, displayName: "key", keyPrefix: "sk-abcdefghi",
            keyHash: hash ?? UUID().uuidString, createdAt: date
        )
    }

    /// A migrated, empty storage of `backend` for the duration of `body`.
    func withStorage(_ backend: TestBackend, _ body: @Sendable (any SwitchyardStorage) async throws -> Void) async throws {
        try await TestEnvironment.with(backend) { environment in
            try await environment.withStorage(body)
        }
    }

    /// A user who owns a fresh team.
    func seedTeam(_ storage: any SwitchyardStorage, owner email: String = "ada@example.com") async throws -> Team {
        let owner = user(email)
        try await storage.insertUser(owner)
        let mine = team()
        try await storage.insertTeam(mine, owner: Membership(teamId: mine.id, userId: owner.id, role: .owner, createdAt: now))
        return mine
    }

    @Test("migrations are idempotent", arguments: TestBackend.available)
    func migrateTwice(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            try await storage.migrate()
            try await storage.ping()
            #expect(storage.backendName == backend.rawValue)
        }
    }

    @Test("users: insert, look up by id and case-insensitive email, duplicate email conflicts", arguments: TestBackend.available)
    func users(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let ada = user("Ada@Example.com")
            try await storage.insertUser(ada)
            let byId = try #require(try await storage.user(id: ada.id))
            #expect(byId.emailAddress == "ada@example.com")
            #expect(byId.createdAt == ada.createdAt)
            #expect(try await storage.user(emailAddress: "ADA@example.COM")?.id == ada.id)
            #expect(try await storage.user(emailAddress: "nobody@example.com") == nil)
            #expect(try await storage.user(id: UUID()) == nil)
            await #expect(throws: SwitchyardError.conflict("a user with this email address already exists")) {
                try await storage.insertUser(user("ada@example.com"))
            }
        }
    }

    @Test("teams and memberships", arguments: TestBackend.available)
    func teams(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let ada = user()
            try await storage.insertUser(ada)
            let first = team("First", at: now)
            let second = team("Second", at: now.addingTimeInterval(1))
            try await storage.insertTeam(first, owner: Membership(teamId: first.id, userId: ada.id, role: .owner, createdAt: now))
            try await storage.insertTeam(
                second, owner: Membership(teamId: second.id, userId: ada.id, role: .admin, createdAt: now.addingTimeInterval(1)))
            let memberships = try await storage.teamMemberships(userId: ada.id)
            #expect(memberships.map(\.team.displayName) == ["First", "Second"])
            #expect(memberships.map(\.role) == [.owner, .admin])
            #expect(try await storage.role(userId: ada.id, teamId: second.id) == .admin)
            #expect(try await storage.role(userId: UUID(), teamId: second.id) == nil)
            let bob = user("bob@example.com")
            try await storage.insertUser(bob)
            try await storage.insertMembership(Membership(teamId: first.id, userId: bob.id, role: .viewer, createdAt: now))
            #expect(try await storage.role(userId: bob.id, teamId: first.id) == .viewer)
            #expect(try await storage.role(userId: bob.id, teamId: second.id) == nil)
            await #expect(throws: SwitchyardError.conflict("the membership already exists")) {
                try await storage.insertMembership(Membership(teamId: first.id, userId: bob.id, role: .admin, createdAt: now))
            }
            #expect(try await storage.team(id: first.id)?.displayName == "First")
            #expect(try await storage.team(id: UUID()) == nil)
        }
    }

    @Test("bootstrap happens once, atomically", arguments: TestBackend.available)
    func bootstrapOnce(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let owner = user("owner@localhost")
            let ownTeam = team()
            let keys = [credential(team: ownTeam.id), credential(team: ownTeam.id, kind: .agent)]
            let plan = BootstrapPlan(user: owner, team: ownTeam, credentials: keys, settings: ["extra": "1"])
            #expect(try await storage.bootstrap(plan))
            #expect(try await storage.role(userId: owner.id, teamId: ownTeam.id) == .owner)
            #expect(try await storage.credential(keyHash: keys[1].keyHash)?.kind == .agent)
            #expect(try await storage.setting("extra") == "1")
            #expect(try await storage.setting(SettingKey.bootstrappedAt) != nil)

            let again = BootstrapPlan(user: user("other@localhost"), team: team(), credentials: [], settings: [:])
            #expect(try await storage.bootstrap(again) == false)
            #expect(try await storage.user(emailAddress: "other@localhost") == nil)
        }
    }

    @Test("a failed bootstrap leaves nothing behind", arguments: TestBackend.available)
    func bootstrapRollsBack(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let owner = user("owner@localhost")
            let ownTeam = team()
            // Two credentials with one hash: the second insert violates uniqueness mid-transaction.
            let keys = [credential(team: ownTeam.id, hash: "same"), credential(team: ownTeam.id, hash: "same")]
            await #expect(throws: (any Error).self) {
                try await storage.bootstrap(BootstrapPlan(user: owner, team: ownTeam, credentials: keys, settings: [:]))
            }
            #expect(try await storage.user(id: owner.id) == nil)
            #expect(try await storage.team(id: ownTeam.id) == nil)
            #expect(try await storage.setting(SettingKey.bootstrappedAt) == nil)
        }
    }

    @Test("credentials: lookup by hash, team scoping, pagination, kind filter", arguments: TestBackend.available)
    func credentials(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let ada = user()
            try await storage.insertUser(ada)
            let mine = team("Mine")
            let theirs = team("Theirs")
            try await storage.insertTeam(mine, owner: Membership(teamId: mine.id, userId: ada.id, role: .owner, createdAt: now))
            try await storage.insertTeam(theirs, owner: Membership(teamId: theirs.id, userId: ada.id, role: .owner, createdAt: now))
            var inserted: [Credential] = []
            for index in 0..<5 {
                let key = credential(
                    team: mine.id, kind: index % 2 == 0 ? .integration : .agent, createdAt: now.addingTimeInterval(Double(index)))
                try await storage.insertCredential(key)
                inserted.append(key)
            }
            let foreign = credential(team: theirs.id)
            try await storage.insertCredential(foreign)

            let found = try #require(try await storage.credential(keyHash: inserted[2].keyHash))
            #expect(found == inserted[2])
            #expect(try await storage.credential(keyHash: "missing") == nil)
            #expect(try await storage.credential(id: foreign.id, teamId: mine.id) == nil)
            #expect(try await storage.credential(id: foreign.id, teamId: theirs.id)?.id == foreign.id)

            let firstPage = try await storage.credentials(teamId: mine.id, kind: nil, page: PageRequest(currentPage: 1, perPage: 2))
            #expect(firstPage.totalCount == 5)
            #expect(firstPage.items.map(\.id) == [inserted[4].id, inserted[3].id])
            let lastPage = try await storage.credentials(teamId: mine.id, kind: nil, page: PageRequest(currentPage: 3, perPage: 2))
            #expect(lastPage.items.map(\.id) == [inserted[0].id])
            let beyond = try await storage.credentials(teamId: mine.id, kind: nil, page: PageRequest(currentPage: 9, perPage: 2))
            #expect(beyond.items.isEmpty && beyond.totalCount == 5)
            let agents = try await storage.credentials(teamId: mine.id, kind: .agent, page: PageRequest())
            #expect(agents.totalCount == 2 && agents.items.allSatisfy { $0.kind == .agent })

            await #expect(throws: SwitchyardError.conflict("the credential already exists")) {
                try await storage.insertCredential(credential(team: mine.id, hash: inserted[0].keyHash))
            }
        }
    }

    @Test("credentials: revocation is scoped, permanent and keeps its first time; use is recorded", arguments: TestBackend.available)
    func revocation(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            let key = credential(team: mine.id)
            try await storage.insertCredential(key)

            #expect(try await storage.revokeCredential(id: key.id, teamId: UUID(), at: now) == false)
            #expect(try await storage.revokeCredential(id: UUID(), teamId: mine.id, at: now) == false)
            #expect(try await storage.revokeCredential(id: key.id, teamId: mine.id, at: now))
            #expect(try await storage.revokeCredential(id: key.id, teamId: mine.id, at: now.addingTimeInterval(60)))
            let revoked = try #require(try await storage.credential(keyHash: key.keyHash))
            #expect(revoked.revokedAt == now)
            #expect(revoked.status(at: now) == .revoked)

            try await storage.markCredentialUsed(id: key.id, at: now.addingTimeInterval(5))
            #expect(try await storage.credential(keyHash: key.keyHash)?.lastUsedAt == now.addingTimeInterval(5))
        }
    }

    @Test("settings: the first writer wins; a replacement is compare-and-set", arguments: TestBackend.available)
    func settings(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            #expect(try await storage.setting("k") == nil)
            #expect(try await storage.settingInsertingIfAbsent("k", value: "first") == "first")
            #expect(try await storage.settingInsertingIfAbsent("k", value: "second") == "first")
            #expect(try await storage.setting("k") == "first")
            #expect(try await storage.replaceSetting("k", from: "stale", to: "third") == false)
            #expect(try await storage.replaceSetting("k", from: "first", to: "third"))
            #expect(try await storage.setting("k") == "third")
            #expect(try await storage.replaceSetting("absent", from: "", to: "x") == false)
        }
    }

    @Test("concurrent writers never lose a row", arguments: TestBackend.available)
    func concurrentWrites(backend: TestBackend) async throws {
        try await withStorage(backend) { storage async throws in
            let mine = try await seedTeam(storage)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<50 {
                    group.addTask { try await storage.insertCredential(credential(team: mine.id)) }
                }
                try await group.waitForAll()
            }
            #expect(try await storage.credentials(teamId: mine.id, kind: nil, page: PageRequest()).totalCount == 50)
        }
    }
}

@Suite("Test backends")
struct TestBackendsTests {
    @Test("CI runs the contract suite on PostgreSQL too")
    func postgresConfiguredInCI() {
        let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
        #expect(!inCI || TestBackend.available.contains(.postgres), "CI=true but SWITCHYARD_TEST_POSTGRES_URL is not set")
        print("storage contract backends in this run: \(TestBackend.available.map(\.rawValue).joined(separator: ", "))")
    }
}
