import Foundation
import Synchronization

/// Where each test environment is — cloning its database, in the test, closing its storage, dropping its
/// database — printed to standard error for any that has been in one place for over a minute. A test run that
/// hangs then says which tests hang and where, instead of going quiet.
final class EnvironmentWatch: Sendable {
    static let shared = EnvironmentWatch()

    private struct Entry {
        var site: String
        var phase: String
        var since: ContinuousClock.Instant
        var reported = false
    }

    private let entries = Mutex<[UUID: Entry]>([:])
    private let watching = Atomic<Bool>(false)

    func enter(_ id: UUID, site: String, phase: String) {
        entries.withLock { $0[id] = Entry(site: site, phase: phase, since: .now) }
        // One watcher for the test process; it lives as long as the process does.
        if watching.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            Task.detached { [self] in
                while true {
                    try? await Task.sleep(for: .seconds(20))
                    report()
                }
            }
        }
    }

    func phase(_ id: UUID, _ phase: String) {
        entries.withLock { entries in
            entries[id]?.phase = phase
            entries[id]?.since = .now
            entries[id]?.reported = false
        }
    }

    func leave(_ id: UUID) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    private func report() {
        let now = ContinuousClock.now
        let stuck = entries.withLock { entries in
            var stuck: [Entry] = []
            for (id, entry) in entries where !entry.reported && entry.since.duration(to: now) > .seconds(60) {
                entries[id]?.reported = true
                stuck.append(entry)
            }
            return stuck
        }
        for entry in stuck {
            let seconds = Int(entry.since.duration(to: now).components.seconds)
            FileHandle.standardError.write(Data("test environment of \(entry.site): \(entry.phase) for \(seconds) s\n".utf8))
        }
    }
}
