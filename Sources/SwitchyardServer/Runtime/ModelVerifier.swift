import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCore

/// Checks the `file_hash` of large model files after their registration (`models.verifyInlineMaxBytes`): the
/// request answers at once with the model `verifying`, and this service streams the stored object through SHA-256,
/// then marks it active (agents get it) or rejected with the reason. One file at a time; at start it takes up the
/// checks a stopped server left pending. Several replicas may check the same model: the outcome is written only
/// while the check is pending, so the first one counts.
actor ModelVerifier: Service {
    private let storage: any SwitchyardStorage
    private let objects: ObjectStorage
    private let clock: any WallClock
    private let logger: Logger
    private let dispatcher: Dispatcher
    private var queue: [(id: UUID, teamId: UUID)] = []
    private var working = false
    private var wakeUp: CheckedContinuation<Void, Never>?
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    init(storage: any SwitchyardStorage, objects: ObjectStorage, clock: any WallClock, dispatcher: Dispatcher, logger: Logger) {
        self.storage = storage
        self.objects = objects
        self.clock = clock
        self.dispatcher = dispatcher
        var logger = logger
        logger[metadataKey: "component"] = "model-verifier"
        self.logger = logger
    }

    /// Queues the check of a model registered `pending`.
    func enqueue(id: UUID, teamId: UUID) {
        queue.append((id, teamId))
        wakeUp?.resume()
        wakeUp = nil
    }

    /// Returns once every queued check is done (for tests).
    func idle() async {
        guard working || !queue.isEmpty else { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    func run() async throws {
        do {
            for model in try await storage.modelsToVerify(limit: 10_000) { queue.append((model.id, model.teamId)) }
        } catch {
            logger.error("could not read the models whose check is pending", metadata: ["error": "\(error)"])
        }
        await cancelWhenGracefulShutdown { await self.work() }
    }

    private func work() async {
        while !Task.isCancelled {
            if queue.isEmpty {
                for waiter in idleWaiters { waiter.resume() }
                idleWaiters = []
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        if queue.isEmpty && !Task.isCancelled { wakeUp = continuation } else { continuation.resume() }
                    }
                } onCancel: {
                    Task { await self.stopWaiting() }
                }
                continue
            }
            working = true
            let next = queue.removeFirst()
            await verify(next.id, teamId: next.teamId)
            working = false
        }
    }

    private func stopWaiting() {
        wakeUp?.resume()
        wakeUp = nil
    }

    private func verify(_ id: UUID, teamId: UUID) async {
        do {
            guard let model = try await storage.model(id: id, teamId: teamId), model.verification == .pending, let expected = model.fileHash else {
                return
            }
            let (digest, _) = try await objects.client.sha256(key: model.storageKey)
            let outcome: ModelRecord.Verification =
                "sha256:\(digest)" == expected ? .done : .failed("the uploaded file hashes to sha256:\(digest), not \(expected)")
            guard try await storage.finishVerification(id: id, teamId: teamId, outcome, at: clock.now()) else { return }
            if case .failed(let reason) = outcome {
                logger.warning("model rejected", metadata: ["model": "\(id)", "reason": "\(reason)"])
            } else {
                logger.info("model verified", metadata: ["model": "\(id)", "bytes": "\(model.fileSize)"])
                await dispatcher.modelsChanged(teamId: teamId)
            }
        } catch {
            // The store or the database did not answer: it stays pending and is tried again in 30 s.
            logger.error("model check failed; trying again in 30 s", metadata: ["model": "\(id)", "error": "\(error)"])
            Task {
                try? await Task.sleep(for: .seconds(30))
                self.enqueue(id: id, teamId: teamId)
            }
        }
    }
}
