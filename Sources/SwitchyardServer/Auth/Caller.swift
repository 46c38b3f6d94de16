import Foundation
import SwitchyardCore

/// Who is making an authenticated request, and in which team (api.md §1.2).
public struct Caller: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A user session JWT from `POST /auth/login`.
        case session
        /// An `sk-` integration key.
        case integration
        /// A `dk-` device key.
        case device
    }

    public var kind: Kind
    /// The acting user; nil for integration keys.
    public var userId: UUID?
    /// The credential used; nil for sessions.
    public var credentialId: UUID?
    /// The team the request acts in; nil on per-user routes called with a session.
    public var teamId: UUID?
    /// The user's role in `teamId`; nil for integration keys and team-less calls.
    public var role: TeamRole?

    /// The team of a team-scoped route (the middleware guarantees one is set there).
    func requireTeam() throws -> UUID {
        guard let teamId else { throw SwitchyardError.invalid("X-Team-ID header is required") }
        return teamId
    }

    /// The acting user (sessions and device keys).
    func requireUser() throws -> UUID {
        guard let userId else { throw SwitchyardError.unauthenticated("this endpoint needs a user session or a dk- device key") }
        return userId
    }

    /// Throws 403 unless the caller may run and cancel tasks: integration keys (team-level) and every role but viewer.
    func requireRunner() throws {
        if kind == .integration { return }
        guard let role, role.canWrite else {
            throw SwitchyardError.forbidden("role \(role?.rawValue ?? "none") is read-only; members, admins and owners can run and cancel tasks")
        }
    }

    /// Throws 403 unless the caller's role may change workflows.
    func requireWorkflowManager() throws {
        guard let role, role.canManageWorkflows else {
            throw SwitchyardError.forbidden("role \(role?.rawValue ?? "none") cannot change workflows; an owner or admin can")
        }
    }

    /// Throws 403 unless the caller's role holds `permission`; `action` says what was refused.
    func require(_ permission: TeamPermission, to action: String) throws {
        guard let role, permission.allows(role) else {
            throw SwitchyardError.forbidden("role \(role?.rawValue ?? "none") cannot \(action); this needs one of: \(permission.rolesDescription)")
        }
    }

    /// Throws 403 unless the caller is a user session: who belongs to a team, with which role, and who owns it
    /// change only by a signed-in user, never by a `dk-` device key — a key copied off a laptop must not be able to
    /// invite an account of its own (and mint keys that outlive the device's revocation) or take the team.
    func requireSession(to action: String) throws {
        guard kind == .session else {
            throw SwitchyardError.forbidden(
                "a dk- device key cannot \(action): changes to who belongs to the team need a user session (POST /api/v1/auth/login)")
        }
    }

    /// Throws 403 unless the caller's role may manage credentials.
    func requireCredentialManager() throws {
        guard let role, role.canManageCredentials else {
            throw SwitchyardError.forbidden("role \(role?.rawValue ?? "none") cannot manage credentials; an owner or admin can")
        }
    }
}

/// Which callers a group of routes accepts (api.md §1.2 "Surfaces").
public enum AccessSurface: Sendable, CaseIterable {
    /// `/r/...`: sessions with `X-Team-ID`, `sk-`, `dk-`.
    case runtime
    /// Team resources: sessions with `X-Team-ID`, `dk-`.
    case management
    /// `/credentials` and pairing confirmation: sessions only, `X-Team-ID` required.
    case sessionOnly
    /// The caller's own profile: sessions (no team needed) and `dk-`.
    case perUser
    /// `/mcp` (api.md §2.12): `sk-` only.
    case mcp

    func accepts(_ kind: Caller.Kind) -> Bool {
        switch (self, kind) {
        case (.mcp, .integration): true
        case (.mcp, _): false
        case (_, .session): true
        case (.runtime, .integration), (.runtime, .device), (.management, .device), (.perUser, .device): true
        default: false
        }
    }

    /// Whether a session caller must name its team with `X-Team-ID`.
    var sessionNeedsTeam: Bool { self != .perUser }

    var acceptedDescription: String {
        switch self {
        case .runtime: "a user session (with X-Team-ID), an sk- integration key or a dk- device key"
        case .management: "a user session (with X-Team-ID) or a dk- device key"
        case .sessionOnly: "a user session (with X-Team-ID) only"
        case .perUser: "a user session or a dk- device key"
        case .mcp: "an sk- integration key only"
        }
    }
}
