/// The agent ↔ gateway protocol. Message types arrive with the agents issue; the version is fixed now so
/// the first agent and server ever released can already refuse each other cleanly.
public enum WireProtocol {
    /// Bumped on every incompatible change of the message schema.
    public static let version = 1

    /// Why `agentId` cannot name an agent, or nil: 1–128 characters of ASCII letters, digits, `.`, `_`, `-`, `:`
    /// and `@` (a host name fits). The id reaches logs, object keys and dashboards; nothing else needs escaping.
    public static func agentIdViolation(_ agentId: String) -> String? {
        guard (1...128).contains(agentId.utf8.count) else { return "agent_id must be 1–128 characters" }
        let allowed = agentId.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || ".-_:@".utf8.contains(byte)
        }
        return allowed
            ? nil
            : "agent_id \"\(agentId.unicodeScalars.map { $0.escaped(asASCII: true) }.joined())\" may hold only letters, digits, '.', '_', '-', ':' and '@'"
    }
}
