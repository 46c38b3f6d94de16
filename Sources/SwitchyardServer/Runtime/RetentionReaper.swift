import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardObjectStore

/// Deletes what the retention policy says must go (api.md §2.3, §3.12): workflow inputs a day after upload,
/// task outputs a week after the task completed (and records it, so results say "expired" instead of handing
/// out dead URLs), and multipart uploads left open for a day. Every `retention.interval` it sweeps through
/// the object store's listings — the same S3 calls for the embedded store and an external one — and records
/// what it did. Deleting is idempotent, so replicas sweeping at once do no harm.
public struct RetentionReaper: Service {
    public struct Policy: Sendable {
        /// Seconds an input lives after upload (0: forever).
        public var inputs: TimeInterval
        /// Seconds a task's outputs live after it completed (0: forever).
        public var outputs: TimeInterval
        /// Seconds a multipart upload may stay open (0: forever).
        public var multipartUploads: TimeInterval
        /// Seconds between sweeps.
        public var interval: TimeInterval
    }

    let storage: any SwitchyardStorage
    let objects: ObjectStorage
    /// The store it sweeps (tests use it to look at what is left).
    public var client: S3Client { objects.client }
    public let policy: Policy
    let clock: any WallClock
    let logger: Logger

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                // The first sweep waits an interval too: the embedded store is still starting now.
                while true {
                    try await Task.sleep(for: .seconds(policy.interval))
                    _ = await sweep()
                }
            }
        } catch is CancellationError {
            return
        }
    }

    /// One pass; returns (and records) what it did. Errors end the pass early and are recorded with it.
    @discardableResult
    public func sweep() async -> RetentionSweep {
        let started = clock.now()
        var sweep = RetentionSweep(
            id: UUIDv7.make(at: started), startedAt: started, finishedAt: started, inputsDeleted: 0, outputsExpired: 0, uploadsAborted: 0)
        do {
            if policy.inputs > 0 {
                let cutoff = started.addingTimeInterval(-policy.inputs)
                for object in try await client.listObjects(prefix: "inputs/") where object.lastModified < cutoff {
                    try await client.deleteObject(key: object.key)
                    sweep.inputsDeleted += 1
                }
            }
            if policy.outputs > 0 {
                let cutoff = started.addingTimeInterval(-policy.outputs)
                while true {
                    let due = try await storage.tasksWithOutputsDue(completedBefore: cutoff, limit: 100)
                    for task in due {
                        for object in try await client.listObjects(prefix: "outputs/\(task.teamId.lowercased)/\(task.taskId.lowercased)/") {
                            try await client.deleteObject(key: object.key)
                        }
                        try await storage.markOutputsExpired(taskId: task.taskId, teamId: task.teamId, at: clock.now())
                        sweep.outputsExpired += 1
                    }
                    if due.count < 100 { break }
                }
            }
            if policy.multipartUploads > 0 {
                let cutoff = started.addingTimeInterval(-policy.multipartUploads)
                for upload in try await client.listMultipartUploads(prefix: "") where upload.initiated < cutoff {
                    try await client.abortMultipartUpload(key: upload.key, uploadId: upload.uploadId)
                    sweep.uploadsAborted += 1
                }
            }
        } catch {
            sweep.error = "\(error)"
            logger.error("retention sweep failed", metadata: ["error": "\(error)"])
        }
        sweep.finishedAt = clock.now()
        do {
            try await storage.recordRetentionSweep(sweep)
        } catch {
            logger.error("retention sweep not recorded", metadata: ["error": "\(error)"])
        }
        if sweep.inputsDeleted + sweep.outputsExpired + sweep.uploadsAborted > 0 {
            logger.info(
                "retention sweep",
                metadata: [
                    "inputs_deleted": "\(sweep.inputsDeleted)", "outputs_expired": "\(sweep.outputsExpired)",
                    "uploads_aborted": "\(sweep.uploadsAborted)",
                ])
        }
        return sweep
    }
}
