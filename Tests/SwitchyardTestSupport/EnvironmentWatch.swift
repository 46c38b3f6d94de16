import Foundation
import Synchronization

/// Where each test environment is — cloning its database, in the test, closing its storage, dropping its
/// database — printed to standard error when one has stayed in one phase for over a minute. A test run that hangs
/// then says which tests hang and where, instead of going quiet. Each phase has a deadline of its own, cancelled
/// when the phase ends: only a stuck test reaches it.
final class EnvironmentWatch: Sendable {
    static let shared = EnvironmentWatch()
    static let limit: Duration = .seconds(60)

    private let watched = Mutex<[UUID: (site: String, deadline: Task<Void, Never>)]>([:])

    func enter(_ id: UUID, site: String, phase: String) {
        let deadline = Self.deadline(site: site, phase: phase)
        watched.withLock { $0[id] = (site, deadline) }
    }

    func phase(_ id: UUID, _ phase: String) {
        watched.withLock { watched in
            guard let entry = watched[id] else { return }
            entry.deadline.cancel()
            watched[id] = (entry.site, Self.deadline(site: entry.site, phase: phase))
        }
    }

    func leave(_ id: UUID) {
        watched.withLock { $0.removeValue(forKey: id) }?.deadline.cancel()
    }

    private static func deadline(site: String, phase: String) -> Task<Void, Never> {
        Task.detached {
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            FileHandle.standardError.write(Data("test environment of \(site): \(phase) for over \(limit)\n".utf8))
        }
    }
}
