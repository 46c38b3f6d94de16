import Foundation
import Logging
import SwitchyardWire
import Synchronization

/// What a sync is doing, for the agent's `syncing` status (`sync_phase`, `sync_detail`, `sync_percent`).
public struct SyncProgress: Sendable, Equatable {
    public var phase: SyncPhase
    public var detail: String
    /// 0–1 over what this sync fetches.
    public var fraction: Double
}

/// Keeps the models root in step with the team's sync set (docs/agent.md, "Models"): each `update` (the gateway's
/// `models`, on connect and on every change) queues what is missing — a few downloads at once, the rest in the
/// set's order — stops the downloads of models that left the set (removing their partial files), and removes the
/// files it placed that left the set once `removalGrace` has passed (a task that started with one keeps it).
/// A download that fails on its bytes (a hash or size mismatch) or the disk is reported broken and not tried again
/// until the next set arrives; one whose URL expired asks for a fresh one; a dropped connection resumes.
/// With a budget (`maximumBytes`) it fetches the set's models, oldest first, only while they fit; an attempt that
/// needs one of the others gets it on demand (`ensure`), which makes room by removing the least recently used files
/// no running attempt needs.
actor ModelSync {
    /// What the agent tells the gateway, in order.
    enum Event: Sendable, Equatable {
        /// The sync's progress; nil once nothing is missing.
        case progress(SyncProgress?)
        case holdings(AgentMessage.ModelsHeld)
        /// A download's URL expired: ask the gateway for a fresh one (answer with `answerURL`).
        case needsURL(AgentMessage.ModelURLRequest)
    }

    let cache: ModelCache
    let maximumConcurrent: Int
    let removalGrace: Duration
    let maximumBytes: Int?
    let logger: Logger
    nonisolated let events: AsyncStream<Event>
    private let output: AsyncStream<Event>.Continuation

    private var wanted: [UUID: GatewayMessage.ModelEntry] = [:]
    private var queue: [UUID] = []
    private var downloads: [UUID: Task<Void, Never>] = [:]
    private var broken: [UUID: AgentMessage.BrokenModel] = [:]
    /// Bytes each running download holds so far (written by the download's progress callback).
    private nonisolated let received = ByteCounts()
    /// The bytes this sync fetches in all, and those of its downloads that finished.
    private var total = 0
    private var finished = 0
    private var reporter: Task<Void, Never>?
    private var lastProgress: SyncProgress?
    private var removals: [String: ContinuousClock.Instant] = [:]
    private var remover: Task<Void, Never>?
    private var urlWaiters: [String: CheckedContinuation<GatewayMessage.ModelURL?, Never>] = [:]
    /// Attempts waiting for a model's download, told whether it was placed.
    private var placedWaiters: [UUID: [CheckedContinuation<Bool, Never>]] = [:]
    /// The placements each running attempt needs (never removed to make room).
    private var inUse: [String: Set<String>] = [:]

    init(
        cache: ModelCache, maximumConcurrent: Int = 2, removalGrace: Duration = .seconds(600), maximumBytes: Int? = nil, logger: Logger
    ) {
        self.cache = cache
        self.maximumConcurrent = max(1, maximumConcurrent)
        self.removalGrace = removalGrace
        self.maximumBytes = maximumBytes
        self.logger = logger
        (events, output) = AsyncStream.makeStream(of: Event.self)
    }

    /// The placements the agent holds (its hello lists them).
    var held: [String] {
        get async { await cache.holdings.map(\.relativePath) }
    }

    /// The gateway's sync set (the whole set, not a difference).
    func update(_ set: GatewayMessage.Models) async {
        // A new set: what broke is tried once more.
        broken = [:]
        var next: [UUID: GatewayMessage.ModelEntry] = [:]
        var order: [UUID] = []
        var placements: [String: UUID] = [:]
        for entry in set.models {
            guard let id = UUID(uuidString: entry.modelId) else { continue }
            do {
                _ = try ModelPlacement(relativePath: entry.placement)
            } catch {
                broken[id] = .init(modelId: entry.modelId, placement: entry.placement, error: "\(error)")
                continue
            }
            if let first = placements[entry.placement] {
                broken[id] = .init(
                    modelId: entry.modelId, placement: entry.placement, error: "model \(first.uuidString.lowercased()) is placed at the same path")
                continue
            }
            placements[entry.placement] = id
            next[id] = entry
            order.append(id)
        }
        for (id, download) in downloads where next[id]?.placement != wanted[id]?.placement || next[id] == nil {
            download.cancel()
        }
        queue.removeAll { next[$0] == nil }
        wanted = next
        // Files placed for models that left the set go after the grace; one back in the set stays.
        let now = ContinuousClock.now
        let holdings = await cache.holdings
        for held in holdings {
            if placements[held.relativePath] == nil {
                if removals[held.relativePath] == nil { removals[held.relativePath] = now + removalGrace }
            } else {
                removals[held.relativePath] = nil
            }
        }
        // Without a grace, at once: the sets are handled in order, so one that drops a model has removed it before
        // the next message is read.
        if removalGrace == .zero { await removeDue() } else { scheduleRemovals() }
        // Within a budget, what fits (oldest first); the rest is fetched when a task needs it.
        var planned = holdings.reduce(0) { $0 + $1.size } + downloads.keys.reduce(0) { $0 + Int(wanted[$1]?.fileSize ?? 0) }
        for id in order where downloads[id] == nil && !queue.contains(id) {
            guard let model = Self.wanted(id, next[id]!), await !cache.holds(model) else { continue }
            if let maximumBytes, planned + model.size > maximumBytes { continue }
            planned += model.size
            queue.append(id)
            total += model.size
        }
        pump()
        if downloads.isEmpty {
            // Nothing to fetch: the check this set started is over (the agent connected `checking`).
            lastProgress = nil
            output.yield(.progress(nil))
        }
        await reportHoldings()
    }

    /// What the agent says while it waits for the gateway's set (at every connection: it may have changed meanwhile).
    static let checking = SyncProgress(phase: .checking, detail: "Checking models against the team's set", fraction: 0)

    /// Makes sure the set's models at `placements` are in place before attempt `attemptId` runs: fetched now if
    /// missing (beyond the concurrency bound, and making room within the budget), marked used if held. Placements
    /// that are not in the team's set are left to whoever manages them. Nil when all are in place, else why not.
    func ensure(_ placements: [String], for attemptId: String, fetching: @Sendable (String) -> Void = { _ in }) async -> String? {
        inUse[attemptId, default: []].formUnion(placements)
        for placement in placements {
            guard let (id, entry) = wanted.first(where: { $0.value.placement == placement }), let model = Self.wanted(id, entry) else { continue }
            if await cache.holds(model) {
                try? await cache.touch(placement)
                continue
            }
            fetching("syncing model \(placement) (\(Self.size(entry.fileSize))) before the task runs")
            if downloads[id] == nil {
                if let reason = broken[id]?.error { return "model \(placement) could not be placed: \(reason)" }
                guard await makeRoom(for: model.size) else {
                    return "model \(placement) (\(Self.size(entry.fileSize))) does not fit in --models-max-bytes next to the models running tasks use"
                }
                queue.removeAll { $0 == id }
                total += model.size
                logger.info("fetching a model a task needs", metadata: ["placement": "\(placement)", "attempt_id": "\(attemptId)"])
                downloads[id] = Task { await self.download(id, entry) }
                report(progress())
                startReporter()
            }
            guard await withCheckedContinuation({ placedWaiters[id, default: []].append($0) }) else {
                return "model \(placement) could not be placed: \(broken[id]?.error ?? "it left the team's set")"
            }
        }
        return nil
    }

    /// The attempt ended: its models may be removed to make room again.
    func release(_ attemptId: String) {
        inUse[attemptId] = nil
    }

    /// Removes placed files no running attempt needs — those that left the set first, then the least recently used
    /// — until `size` more bytes fit the budget; false when they cannot.
    private func makeRoom(for size: Int) async -> Bool {
        guard let maximumBytes else { return true }
        let held = await cache.holdings
        var used = held.reduce(0) { $0 + $1.size } + downloads.keys.reduce(0) { $0 + Int(wanted[$1]?.fileSize ?? 0) }
        guard used + size > maximumBytes else { return true }
        let needed = inUse.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        let placed = Set(wanted.values.map(\.placement))
        let candidates = held.filter { !needed.contains($0.relativePath) }.sorted {
            (placed.contains($0.relativePath) ? 1 : 0, $0.lastUsedAt) < (placed.contains($1.relativePath) ? 1 : 0, $1.lastUsedAt)
        }
        for victim in candidates where used + size > maximumBytes {
            guard (try? await cache.remove(victim.relativePath)) == true else { continue }
            removals[victim.relativePath] = nil
            used -= victim.size
            logger.info("model removed to make room", metadata: ["placement": "\(victim.relativePath)"])
        }
        await reportHoldings()
        return used + size <= maximumBytes
    }

    /// The gateway's answer to a `needsURL`.
    func answerURL(_ answer: GatewayMessage.ModelURL) {
        urlWaiters.removeValue(forKey: answer.requestId)?.resume(returning: answer)
    }

    // MARK: Downloads

    private func pump() {
        while downloads.count < maximumConcurrent, !queue.isEmpty {
            let id = queue.removeFirst()
            guard let entry = wanted[id] else { continue }
            downloads[id] = Task { await self.download(id, entry) }
        }
        if downloads.isEmpty {
            total = 0
            finished = 0
            reporter?.cancel()
            reporter = nil
            report(nil)
        } else if reporter == nil {
            report(progress())
            startReporter()
        }
    }

    private func startReporter() {
        guard reporter == nil else { return }
        reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                self.report(self.progress())
            }
        }
    }

    private func download(_ id: UUID, _ first: GatewayMessage.ModelEntry) async {
        var entry = first
        var drops = 0
        var refreshes = 0
        guard let model = Self.wanted(id, entry) else { return done(id) }
        let received = self.received
        while !Task.isCancelled {
            do {
                try await cache.place(model, from: entry.url) { held in received.set(id, held) }
                logger.info("model placed", metadata: ["model": "\(entry.displayName)", "placement": "\(entry.placement)"])
                return done(id, placed: true)
            } catch ModelSyncError.refused(let status, _) where (status == 403 || status == 400) && refreshes < 3 && !Task.isCancelled {
                // An expired (or otherwise refused) URL: a fresh one, unless the model left the set meanwhile.
                refreshes += 1
                guard let fresh = await freshURL(entry.modelId), let url = fresh.url else { break }
                entry.url = url
            } catch let error as ModelSyncError {
                if Task.isCancelled { break }
                logger.error("model not placed", metadata: ["model": "\(entry.displayName)", "error": "\(error)"])
                if case .integrity = error { await cache.discardPartial(id) }
                broken[id] = .init(modelId: entry.modelId, placement: entry.placement, error: error.description)
                return done(id)
            } catch {
                // The connection dropped (or the store did not answer): resumed from what the partial file holds.
                if Task.isCancelled { break }
                drops += 1
                guard drops <= 5 else {
                    broken[id] = .init(modelId: entry.modelId, placement: entry.placement, error: "the download kept failing: \(error)")
                    return done(id)
                }
                logger.warning("model download interrupted; resuming", metadata: ["model": "\(entry.displayName)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1 << (drops - 1)))
            }
        }
        // Left the set (or the agent stops): its partial file goes.
        await cache.discardPartial(id)
        done(id)
    }

    private func done(_ id: UUID, placed: Bool = false) {
        for waiter in placedWaiters.removeValue(forKey: id) ?? [] { waiter.resume(returning: placed) }
        downloads[id] = nil
        if let model = wanted[id] { finished += Int(model.fileSize) }
        received.set(id, nil)
        pump()
        Task { await self.reportHoldings() }
    }

    private func freshURL(_ modelId: String) async -> GatewayMessage.ModelURL? {
        let requestId = UUID().uuidString.lowercased()
        return await withCheckedContinuation { continuation in
            urlWaiters[requestId] = continuation
            output.yield(.needsURL(.init(requestId: requestId, modelId: modelId)))
        }
    }

    // MARK: Reports

    private func progress() -> SyncProgress? {
        guard !downloads.isEmpty else { return nil }
        let live = received.all
        let held = finished + downloads.keys.reduce(0) { $0 + (live[$1] ?? 0) }
        let running = downloads.keys.compactMap { wanted[$0] }.sorted { $0.placement < $1.placement }
        var detail = running.first.map { "Downloading model \($0.displayName) (\(Self.size($0.fileSize)))" } ?? "Downloading models"
        let others = running.count - 1 + queue.count
        if others > 0 { detail += " and \(others) more" }
        return SyncProgress(phase: .downloading, detail: detail, fraction: total > 0 ? min(1, Double(held) / Double(total)) : 0)
    }

    /// Sends a progress that moved by at least half a percent or says something new.
    private func report(_ progress: SyncProgress?) {
        if let progress, let last = lastProgress, last.detail == progress.detail, progress.fraction - last.fraction < 0.005 { return }
        if progress == nil, lastProgress == nil { return }
        lastProgress = progress
        output.yield(.progress(progress))
    }

    private func reportHoldings() async {
        let held = await cache.holdings.map(\.relativePath)
        output.yield(.holdings(.init(held: held, broken: broken.values.sorted { $0.placement < $1.placement })))
    }

    // MARK: Removals

    private func scheduleRemovals() {
        remover?.cancel()
        guard let due = removals.values.min() else { return }
        remover = Task {
            try? await Task.sleep(until: due, clock: .continuous)
            guard !Task.isCancelled else { return }
            await self.removeDue()
        }
    }

    private func removeDue() async {
        let now = ContinuousClock.now
        let placedNow = Set(wanted.values.map(\.placement))
        for (path, due) in removals where due <= now {
            removals[path] = nil
            guard !placedNow.contains(path) else { continue }
            do {
                if try await cache.remove(path) { logger.info("model removed: no longer in the team's set", metadata: ["placement": "\(path)"]) }
            } catch {
                logger.error("model not removed", metadata: ["placement": "\(path)", "error": "\(error)"])
            }
        }
        scheduleRemovals()
        await reportHoldings()
    }

    // MARK: Helpers

    private static func wanted(_ id: UUID, _ entry: GatewayMessage.ModelEntry) -> ModelCache.Wanted? {
        guard let placement = try? ModelPlacement(relativePath: entry.placement) else { return nil }
        return ModelCache.Wanted(modelId: id, placement: placement, size: Int(entry.fileSize), digest: entry.fileHash)
    }

    static func size(_ bytes: Int64) -> String { AgentConfiguration.sizeText(Int(bytes)) }
}

/// Bytes held per download, written from the download's progress callback and read by the progress reports.
final class ByteCounts: Sendable {
    private let counts = Mutex<[UUID: Int]>([:])

    func set(_ id: UUID, _ bytes: Int?) { counts.withLock { $0[id] = bytes } }

    var all: [UUID: Int] { counts.withLock { $0 } }
}
