import Foundation

/// One pass of the retention reaper, as recorded.
public struct RetentionSweep: Sendable, Equatable {
    public var id: UUID
    public var startedAt: Date
    public var finishedAt: Date
    public var inputsDeleted: Int
    public var outputsExpired: Int
    public var uploadsAborted: Int
    /// What went wrong, if anything did; a sweep records what it did before that.
    public var error: String?

    public init(
        id: UUID, startedAt: Date, finishedAt: Date, inputsDeleted: Int, outputsExpired: Int, uploadsAborted: Int, error: String? = nil
    ) {
        self.id = id
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.inputsDeleted = inputsDeleted
        self.outputsExpired = outputsExpired
        self.uploadsAborted = uploadsAborted
        self.error = error
    }
}

/// What the retention reaper reads and records: completed tasks whose outputs are due, the expiry of those
/// outputs, and a log of sweeps.
public protocol RetentionRepository: Sendable {
    /// Completed tasks that finished before `date` and whose outputs have not been expired yet, oldest first.
    func tasksWithOutputsDue(completedBefore date: Date, limit: Int) async throws -> [(taskId: UUID, teamId: UUID)]
    /// Records that a task's outputs were deleted (the first time wins).
    func markOutputsExpired(taskId: UUID, teamId: UUID, at date: Date) async throws
    /// When the task's outputs were deleted, or nil.
    func outputsExpiredAt(taskId: UUID, teamId: UUID) async throws -> Date?
    func recordRetentionSweep(_ sweep: RetentionSweep) async throws
    /// The latest sweeps, newest first.
    func retentionSweeps(limit: Int) async throws -> [RetentionSweep]
}
