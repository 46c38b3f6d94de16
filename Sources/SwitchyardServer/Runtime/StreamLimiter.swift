import Foundation
import Synchronization

/// How many event streams each team has open on this replica, against `streams.maxPerTeam`: one team following
/// thousands of tasks at once must not hold the server's memory and sockets for everyone.
final class StreamLimiter: Sendable {
    /// A held place; given back once, by `release()` or when the place is dropped.
    final class Slot: Sendable {
        private let limiter: StreamLimiter
        private let teamId: UUID
        private let released = Atomic<Bool>(false)

        fileprivate init(limiter: StreamLimiter, teamId: UUID) {
            self.limiter = limiter
            self.teamId = teamId
        }

        func release() {
            guard !released.exchange(true, ordering: .relaxed) else { return }
            limiter.open.withLock { open in
                open[teamId, default: 1] -= 1
                if open[teamId] == 0 { open[teamId] = nil }
            }
        }

        deinit { release() }
    }

    /// 0: no limit.
    let maximumPerTeam: Int
    private let open = Mutex<[UUID: Int]>([:])

    init(maximumPerTeam: Int) {
        self.maximumPerTeam = maximumPerTeam
    }

    /// Streams open now, all teams together (`switchyard_event_streams`).
    var openStreams: Int {
        open.withLock { open in open.values.reduce(0, +) }
    }

    /// A place for one more stream of `teamId`, or nil when the team has `maximumPerTeam` open.
    func acquire(_ teamId: UUID) -> Slot? {
        let taken = open.withLock { open in
            guard maximumPerTeam == 0 || open[teamId, default: 0] < maximumPerTeam else { return false }
            open[teamId, default: 0] += 1
            return true
        }
        return taken ? Slot(limiter: self, teamId: teamId) : nil
    }
}
