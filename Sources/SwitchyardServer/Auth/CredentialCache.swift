import Foundation
import SwitchyardCore
import Synchronization

/// Recently seen `sk-` integration keys by hash, so a runtime request authenticates without a database read.
/// A revocation on this server removes the entry at once; entries also expire after `ttl`, which bounds how
/// long another replica (PostgreSQL deployments) may keep accepting a key revoked elsewhere. Expiry dates are
/// checked on every use. Unknown keys are never cached.
final class CredentialCache: Sendable {
    private struct Entry {
        var credential: Credential
        let loadedAt: Date
    }

    let ttl: TimeInterval
    private let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(ttl: TimeInterval, capacity: Int = 10_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    func credential(keyHash: String, now: Date) -> Credential? {
        guard ttl > 0 else { return nil }
        return entries.withLock { entries in
            guard let entry = entries[keyHash] else { return nil }
            guard now.timeIntervalSince(entry.loadedAt) < ttl else {
                entries[keyHash] = nil
                return nil
            }
            return entry.credential
        }
    }

    func store(_ credential: Credential, now: Date) {
        guard ttl > 0 else { return }
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[credential.keyHash] = Entry(credential: credential, loadedAt: now)
        }
    }

    /// Records a `last_used_at` write, so the once-a-minute throttle sees it.
    func markUsed(keyHash: String, at date: Date) {
        entries.withLock { entries in entries[keyHash]?.credential.lastUsedAt = date }
    }

    func invalidate(teamId: UUID) {
        entries.withLock { entries in
            entries = entries.filter { $0.value.credential.teamId != teamId }
        }
    }

    func invalidate(credentialId: UUID) {
        entries.withLock { entries in
            entries = entries.filter { $0.value.credential.id != credentialId }
        }
    }
}
