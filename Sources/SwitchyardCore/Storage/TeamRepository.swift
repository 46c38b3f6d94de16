import Foundation

/// What deleting a team did, for the server to finish outside the database (stop agents' work, remove files).
public struct TeamDeletion: Sendable, Equatable {
    /// Tasks that were pending, waiting, queued or running and are now cancelled.
    public var cancelledTaskIds: [UUID]
    /// Object keys of the team's models, whose rows were deleted.
    public var modelStorageKeys: [String]

    public init(cancelledTaskIds: [UUID], modelStorageKeys: [String]) {
        self.cancelledTaskIds = cancelledTaskIds
        self.modelStorageKeys = modelStorageKeys
    }
}

/// Teams, members and invitations (api.md §2.11, §3.9). Every call is scoped by team; a deleted team is missing.
public protocol TeamRepository: Sendable {
    /// Renames a team; false when it does not exist.
    func renameTeam(id: UUID, displayName: String, at date: Date) async throws -> Bool
    /// Makes `newOwner` (already a member) the owner and the current owner an admin, atomically. False when
    /// `newOwner` is not a member.
    func transferOwnership(teamId: UUID, from currentOwner: UUID, to newOwner: UUID, at date: Date) async throws -> Bool
    /// Deletes a team in one transaction: cancels its unfinished tasks (with their events), revokes every
    /// credential, removes members, invitations, workflows, models, webhooks, agents and pairings, and marks the
    /// team deleted (its finished tasks stay until retention removes their files). Nil when no such team.
    func deleteTeam(id: UUID, at date: Date) async throws -> TeamDeletion?

    /// The team's members, owner first, then by when they joined.
    func members(teamId: UUID, page: PageRequest) async throws -> Page<TeamMember>
    /// Sets a member's role; false when the user is not a member.
    func setRole(userId: UUID, teamId: UUID, role: TeamRole) async throws -> Bool
    /// Removes a member; false when the user is not a member. Their device keys for the team are revoked (a
    /// device key acts as its user); the integration and agent keys they created stay (api.md §3.9).
    func removeMember(userId: UUID, teamId: UUID, at date: Date) async throws -> Bool

    /// Stores an invitation; `.conflict` when the address is a member or has a pending invitation in the team.
    func insertInvitation(_ invitation: Invitation, at date: Date) async throws
    /// The team's pending (unexpired) invitations, newest first.
    func invitations(teamId: UUID, at date: Date, page: PageRequest) async throws -> Page<Invitation>
    /// Deletes a pending invitation; false when missing.
    func deleteInvitation(id: UUID, teamId: UUID) async throws -> Bool
    /// The unexpired invitation whose token hashes to `tokenHash`.
    func invitation(tokenHash: String, at date: Date) async throws -> Invitation?
    /// Accepts an invitation: creates `newUser` when given, adds the membership and deletes the invitation, in one
    /// transaction. False when the invitation is gone (used, cancelled or expired); `.conflict` when the user is
    /// already a member.
    func acceptInvitation(id: UUID, userId: UUID, newUser: User?, at date: Date) async throws -> Bool
}

/// Device pairing (api.md §2.10).
public protocol PairingRepository: Sendable {
    func insertPairing(_ pairing: DevicePairing) async throws
    /// Confirms the unexpired, unconfirmed pairing with `userCode`; false when there is none.
    func confirmPairing(userCode: String, userId: UUID, teamId: UUID, deviceName: String, at date: Date) async throws -> Bool
    /// The unexpired pairing whose device code hashes to `deviceCodeHash`.
    func pairing(deviceCodeHash: String, at date: Date) async throws -> DevicePairing?
    /// The unexpired pairing with `userCode` that nobody confirmed yet (for the approval page).
    func pendingPairing(userCode: String, at date: Date) async throws -> DevicePairing?
    /// Collects a confirmed pairing: deletes it and stores `device` and `agent` (the companion key), in one
    /// transaction. False when the pairing was already collected.
    func completePairing(id: UUID, device: Credential, agent: Credential) async throws -> Bool
}

extension PairingRepository where Self: CredentialRepository {
    /// Revokes a device credential and its companion agent key; false when it is not a device key of the team.
    public func revokeDevice(credentialId: UUID, teamId: UUID, at date: Date) async throws -> Bool {
        guard let credential = try await credential(id: credentialId, teamId: teamId), credential.kind == .device else { return false }
        return try await revokeCredential(id: credentialId, teamId: teamId, at: date)
    }
}

/// Webhooks and their delivery outbox (api.md §2.8, §3.10). Deliveries are written by the task storage in the
/// transaction that ends a task (see `TaskRepository`); the sender claims and records them here.
public protocol WebhookRepository: Sendable {
    func insertWebhook(_ webhook: Webhook) async throws
    func webhook(id: UUID, teamId: UUID) async throws -> Webhook?
    /// The team's webhooks, newest first.
    func webhooks(teamId: UUID, page: PageRequest) async throws -> Page<Webhook>
    /// Replaces the mutable fields (name, URL, sealed secret, events, status, updated_at); false when missing.
    func updateWebhook(_ webhook: Webhook) async throws -> Bool
    /// Deletes a webhook and its delivery log; false when missing.
    func deleteWebhook(id: UUID, teamId: UUID) async throws -> Bool

    /// A webhook's deliveries, newest first, each with its attempts; nil when the webhook is not the team's.
    func webhookDeliveries(webhookId: UUID, teamId: UUID, page: PageRequest) async throws -> Page<WebhookDelivery>?
    func webhookDelivery(id: UUID, webhookId: UUID, teamId: UUID) async throws -> WebhookDelivery?
    /// Puts a delivered or dead delivery back in the queue, due at `date`, with a fresh retry schedule. Nil when
    /// missing; `.conflict` while it is still pending.
    func redeliver(id: UUID, webhookId: UUID, teamId: UUID, at date: Date) async throws -> WebhookDelivery?

    /// Claims up to `limit` pending deliveries due at `date` (of active webhooks, across teams), hiding them from
    /// other senders until `leaseUntil`.
    func claimDueDeliveries(at date: Date, leaseUntil: Date, limit: Int) async throws -> [ClaimedDelivery]
    /// Records an attempt of a claimed delivery and its outcome: delivered on a 2xx, otherwise pending again at
    /// `attempt.nextRetryAt`, or dead when that is nil. False when the claim was lost.
    func recordDeliveryAttempt(_ attempt: WebhookAttempt, claimToken: UUID) async throws -> Bool
    /// When the earliest pending delivery is due; nil when none is pending.
    func nextDeliveryDue() async throws -> Date?
}
