/// The agent ↔ gateway protocol. Message types arrive with the agents issue; the version is fixed now so
/// the first agent and server ever released can already refuse each other cleanly.
public enum WireProtocol {
    /// Bumped on every incompatible change of the message schema.
    public static let version = 1
}
