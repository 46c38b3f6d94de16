import Foundation
import SwitchyardSQL
import Synchronization
import Testing

@Suite("GroupCommitQueue")
struct GroupCommitQueueTests {
    /// What the harness's flushes saw.
    final class Recorder: Sendable {
        let batches = Mutex<[[String]]>([])
        /// Whether a flush found its task cancelled (a real flush's statements would then fail).
        let flushSawCancellation = Mutex(false)
        /// Whose task each flush ran in (`submitter`, as the caller that submitted set it).
        let flushedBy = Mutex<[String?]>([])
    }

    /// The item a test's caller submits, visible to a flush that runs in a task the caller started.
    @TaskLocal static var submitter: String?

    /// A queue whose first flush holds until `gate` opens, recording every batch it is given, and telling when
    /// that first flush began and how long the callers' line grows.
    struct Harness: Sendable {
        let queue: GroupCommitQueue<String, String>
        let recorder = Recorder()
        let gate = Gate()
        let lineLengths: AsyncStream<Int>
        let firstFlush: AsyncStream<Void>

        init(maxBatch: Int, failing: Set<String> = []) {
            let (recorder, gate) = (self.recorder, self.gate)
            let (lineLengths, report) = AsyncStream.makeStream(of: Int.self)
            let (firstFlush, began) = AsyncStream.makeStream(of: Void.self)
            (self.lineLengths, self.firstFlush) = (lineLengths, firstFlush)
            queue = GroupCommitQueue(maxBatch: maxBatch, onWait: { report.yield($0) }) { items in
                let first = recorder.batches.withLock { batches in
                    batches.append(items)
                    return batches.count == 1
                }
                if first {
                    began.yield()
                    await gate.wait()
                }
                if Task.isCancelled { recorder.flushSawCancellation.withLock { $0 = true } }
                recorder.flushedBy.withLock { $0.append(GroupCommitQueueTests.submitter) }
                return items.map { failing.contains($0) ? .failure(Refused(item: $0)) : .success("wrote \($0)") }
            }
        }

        var recorded: [[String]] { recorder.batches.withLock { $0 } }
    }

    struct Refused: Error, Equatable {
        let item: String
    }

    /// Starts `item` and returns once its flush (alone: nobody else is in line yet) has begun and holds.
    static func startFlushing(_ item: String, on harness: Harness) async -> Task<String, any Error> {
        let task = Task { try await $submitter.withValue(item) { try await harness.queue.submit(item) } }
        var began = harness.firstFlush.makeAsyncIterator()
        _ = await began.next()
        return task
    }

    /// Starts `items` one after another, each once the previous one is in line (so the line's order is known).
    static func enqueue(_ items: [String], on harness: Harness, line: inout AsyncStream<Int>.Iterator, from start: Int)
        async -> [Task<String, any Error>]
    {
        var tasks: [Task<String, any Error>] = []
        for (offset, item) in items.enumerated() {
            tasks.append(Task { try await $submitter.withValue(item) { try await harness.queue.submit(item) } })
            _ = await line.next()
            precondition(harness.queue.waiting == start + offset + 1)
        }
        return tasks
    }

    @Test("the first item flushes alone; the next batch is everything that queued meanwhile, at most maxBatch, in order")
    func batchBoundaries() async throws {
        let harness = Harness(maxBatch: 3)
        let first = await Self.startFlushing("a", on: harness)
        var line = harness.lineLengths.makeAsyncIterator()
        // "a" leads and its flush holds: the next four queue behind it.
        let queued = await Self.enqueue(["b", "c", "d", "e"], on: harness, line: &line, from: 0)
        #expect(harness.recorded == [["a"]])
        await harness.gate.open()
        #expect(try await first.value == "wrote a")
        for (task, item) in zip(queued, ["b", "c", "d", "e"]) { #expect(try await task.value == "wrote \(item)") }
        #expect(harness.recorded == [["a"], ["b", "c", "d"], ["e"]])
        // One drain, started by "a", flushed every batch: no task was made or woken per batch.
        #expect(harness.recorder.flushedBy.withLock { $0 } == ["a", "a", "a"])
    }

    @Test("an item that fails fails alone: its neighbours in the batch get their own results")
    func failureIsolated() async throws {
        let harness = Harness(maxBatch: 10, failing: ["bad"])
        let first = await Self.startFlushing("a", on: harness)
        var line = harness.lineLengths.makeAsyncIterator()
        let queued = await Self.enqueue(["b", "bad", "c"], on: harness, line: &line, from: 0)
        await harness.gate.open()
        _ = try await first.value
        #expect(try await queued[0].value == "wrote b")
        await #expect(throws: Refused(item: "bad")) { try await queued[1].value }
        #expect(try await queued[2].value == "wrote c")
        #expect(harness.recorded == [["a"], ["b", "bad", "c"]])
    }

    @Test("a caller cancelled while its item waits takes the item back; the batch goes without it")
    func cancelledWaiter() async throws {
        let harness = Harness(maxBatch: 10)
        let first = await Self.startFlushing("a", on: harness)
        var line = harness.lineLengths.makeAsyncIterator()
        let queued = await Self.enqueue(["b", "c"], on: harness, line: &line, from: 0)
        queued[0].cancel()
        await #expect(throws: CancellationError.self) { try await queued[0].value }
        #expect(harness.queue.waiting == 1)
        await harness.gate.open()
        _ = try await first.value
        #expect(try await queued[1].value == "wrote c")
        #expect(harness.recorded == [["a"], ["c"]], "the cancelled item was never written")
    }

    @Test("a caller cancelled while its flush runs gets the flush's outcome; the flush and the next batch go on")
    func cancelledLeader() async throws {
        let harness = Harness(maxBatch: 10)
        let first = await Self.startFlushing("a", on: harness)
        var line = harness.lineLengths.makeAsyncIterator()
        let queued = await Self.enqueue(["b"], on: harness, line: &line, from: 0)
        first.cancel()
        await harness.gate.open()
        #expect(try await first.value == "wrote a")
        #expect(try await queued[0].value == "wrote b")
        #expect(harness.recorded == [["a"], ["b"]])
        #expect(harness.recorder.flushSawCancellation.withLock { $0 } == false, "the caller's cancellation does not reach the flush")
    }

    @Test("a flush that returns the wrong number of results fails every item of its batch")
    func resultCountMismatch() async throws {
        let queue = GroupCommitQueue<Int, Int>(maxBatch: 4) { _ in [] }
        await #expect(throws: GroupCommitError.self) { try await queue.submit(1) }
    }
}
