/// The three key families of api.md §1.2 (session JWTs are not stored credentials).
public enum CredentialKind: String, Sendable, CaseIterable, Codable {
    /// `sk-`: team-bound, no user identity; runtime surface only.
    case integration
    /// `ak-`: team-bound; accepted by the agent gateway only.
    case agent
    /// `dk-`: a user's device in one team; management and runtime.
    case device

    /// The prefix every secret of this kind starts with.
    public var secretPrefix: String {
        switch self {
        case .integration: "sk-"
        case .agent: "ak-"
        case .device: "dk-"
        }
    }

    /// The kind a raw secret claims by its prefix, if any.
    public init?(secret: some StringProtocol) {
        guard let kind = Self.allCases.first(where: { secret.hasPrefix($0.secretPrefix) }) else { return nil }
        self = kind
    }
}
