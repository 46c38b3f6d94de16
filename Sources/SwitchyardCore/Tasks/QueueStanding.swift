import Foundation

/// Where a waiting task stands (Switchyard's addition to `GET /r/tasks/{id}`): the tasks queued ahead of it that
/// compete for the same agents, and how long recent runs of its workflow took, from which an estimated start
/// follows.
public struct QueueStanding: Sendable, Equatable {
    /// `pending`/`waiting` tasks of the same team, pool and required labels, submitted before it.
    public var ahead: Int
    /// Run times (started → completed, seconds) of the workflow's latest completed tasks in the team, newest first.
    public var recentRunSeconds: [Double]

    public init(ahead: Int, recentRunSeconds: [Double]) {
        self.ahead = ahead
        self.recentRunSeconds = recentRunSeconds
    }

    /// How many recent runs the estimate looks at.
    public static let sampleSize = 20

    /// 1 for the next task to go.
    public var position: Int { ahead + 1 }

    /// The median of the recent run times, or nil with none yet.
    public var typicalRunSeconds: Double? {
        guard !recentRunSeconds.isEmpty else { return nil }
        let sorted = recentRunSeconds.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// When the task should start if `slots` eligible agent slots keep draining the queue at the typical run time:
    /// the tasks ahead, plus half a run for the slot it waits on, spread over the slots. Nil when no eligible agent
    /// is connected or no run of the workflow has completed yet — an estimate would be a guess.
    public func estimatedStart(now: Date, slots: Int) -> Date? {
        guard slots > 0, let typical = typicalRunSeconds else { return nil }
        return now.addingTimeInterval((Double(ahead) + 0.5) * typical / Double(slots))
    }
}
