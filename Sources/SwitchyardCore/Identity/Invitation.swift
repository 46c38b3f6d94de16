import Foundation

/// A pending invitation to join a team (api.md §2.11). The token is shown once, to the inviting admin (no mail
/// server is configured); only its SHA-256 is stored.
public struct Invitation: Sendable, Equatable {
    /// How long an invitation stays valid.
    public static let lifetime: TimeInterval = 7 * 86_400
    /// The prefix of an invitation token.
    public static let tokenPrefix = "inv_"

    public var id: UUID
    public var teamId: UUID
    /// Stored lowercased.
    public var emailAddress: String
    /// `admin`, `member` or `viewer` (never `owner`).
    public var role: TeamRole
    public var tokenHash: String
    public var invitedBy: UUID?
    public var createdAt: Date
    public var expiresAt: Date

    public init(
        id: UUID, teamId: UUID, emailAddress: String, role: TeamRole, tokenHash: String, invitedBy: UUID?, createdAt: Date, expiresAt: Date
    ) {
        self.id = id
        self.teamId = teamId
        self.emailAddress = emailAddress.lowercased()
        self.role = role
        self.tokenHash = tokenHash
        self.invitedBy = invitedBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// A member of a team as `GET /members` lists it.
public struct TeamMember: Sendable, Equatable {
    public var user: User
    public var role: TeamRole
    public var joinedAt: Date

    public init(user: User, role: TeamRole, joinedAt: Date) {
        self.user = user
        self.role = role
        self.joinedAt = joinedAt
    }
}

/// A device pairing in progress (api.md §2.10). Only hashes of the device code are stored; the keys are minted
/// by the poll that collects them, so no raw key is ever written anywhere.
public struct DevicePairing: Sendable, Equatable {
    /// Codes expire after this long.
    public static let lifetime: TimeInterval = 300
    /// Seconds a client should wait between polls.
    public static let pollInterval = 2

    public var id: UUID
    public var deviceCodeHash: String
    /// Normalised: eight characters of the user-code alphabet, without the dash.
    public var userCode: String
    public var createdAt: Date
    public var expiresAt: Date
    /// Set by the confirmation: who approved it, for which team, under which name.
    public var confirmedBy: UUID?
    public var teamId: UUID?
    public var deviceName: String?
    /// What the device said of itself when it started (shown on the approval page): its name, and the address the
    /// request came from.
    public var requestedName: String?
    public var requestedFrom: String?

    public init(
        id: UUID, deviceCodeHash: String, userCode: String, createdAt: Date, expiresAt: Date, confirmedBy: UUID? = nil, teamId: UUID? = nil,
        deviceName: String? = nil, requestedName: String? = nil, requestedFrom: String? = nil
    ) {
        self.id = id
        self.deviceCodeHash = deviceCodeHash
        self.userCode = userCode
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.confirmedBy = confirmedBy
        self.teamId = teamId
        self.deviceName = deviceName
        self.requestedName = requestedName
        self.requestedFrom = requestedFrom
    }

    /// Letters and digits that cannot be confused (no 0/O, 1/I/L, 5/S, 2/Z).
    public static let userCodeAlphabet = Array("ABCDEFGHJKMNPQRTUVWXY346789")

    /// A fresh code of eight characters from `userCodeAlphabet`.
    public static func makeUserCode(using generator: inout some RandomNumberGenerator) -> String {
        String((0..<8).map { _ in userCodeAlphabet[Int.random(in: 0..<userCodeAlphabet.count, using: &generator)] })
    }

    /// `ABCD-EFGH`, as shown to people.
    public static func display(_ code: String) -> String {
        "\(code.prefix(4))-\(code.dropFirst(4))"
    }

    /// What a person typed, normalised: case-insensitive, dashes and spaces ignored. Nil when it cannot be a code.
    public static func normalise(_ typed: String) -> String? {
        let cleaned = typed.uppercased().filter { $0 != "-" && !$0.isWhitespace }
        guard cleaned.count == 8, cleaned.allSatisfy(userCodeAlphabet.contains) else { return nil }
        return cleaned
    }
}
