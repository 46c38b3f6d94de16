import SwitchyardConcurrency
import Testing

@Suite("AsyncSemaphore")
struct AsyncSemaphoreTests {
    actor Counter {
        var inside = 0
        var maxInside = 0
        func enter() { inside += 1; maxInside = max(maxInside, inside) }
        func leave() { inside -= 1 }
    }

    @Test("one permit: holds across suspension points")
    func exclusive() async throws {
        let semaphore = AsyncSemaphore()
        let counter = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await semaphore.withPermit {
                        await counter.enter()
                        await Task.yield()
                        await counter.leave()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(await counter.maxInside == 1)
    }

    @Test("with permits: that many bodies run at once, never more, the rest wait their turn")
    func permits() async throws {
        let semaphore = AsyncSemaphore(permits: 3)
        let counter = Counter()
        let gate = Gate()
        let (entered, enter) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    try await semaphore.withPermit {
                        await counter.enter()
                        enter.yield()
                        await gate.wait()
                        await counter.leave()
                    }
                }
            }
            var iterator = entered.makeAsyncIterator()
            for _ in 0..<3 { await iterator.next() }  // three are inside together; none has left yet
            await gate.open()
            try await group.waitForAll()
        }
        #expect(await counter.maxInside == 3)
    }

    @Test("a waiter cancelled in line leaves it at once with CancellationError; the holder and the others are unaffected")
    func cancelledWaiter() async throws {
        let (waits, waited) = AsyncStream.makeStream(of: Int.self)
        let semaphore = AsyncSemaphore(onWait: { waited.yield($0) })
        let gate = Gate()
        let (held, hold) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await semaphore.withPermit {
                hold.yield()
                await gate.wait()
                return "holder"
            }
        }
        var heldIterator = held.makeAsyncIterator()
        await heldIterator.next()
        let cancelled = Task { try await semaphore.withPermit { "cancelled ran" } }
        var waitIterator = waits.makeAsyncIterator()
        #expect(await waitIterator.next() == 1)
        let next = Task { try await semaphore.withPermit { "next" } }
        #expect(await waitIterator.next() == 2)
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(semaphore.waiting == 1, "the cancelled waiter left the line while the permit is still held")
        await gate.open()
        #expect(try await holder.value == "holder")
        #expect(try await next.value == "next")
        #expect(try await semaphore.withPermit { "free again" } == "free again", "the permit came back, not lost to the cancelled waiter")
    }

    @Test("a task cancelled before it asks never gets a permit, even a free one")
    func cancelledBeforeAsking() async throws {
        let semaphore = AsyncSemaphore()
        let (started, start) = AsyncStream.makeStream(of: Void.self)
        let gate = Gate()
        let task = Task {
            start.yield()
            await gate.wait()
            return try await semaphore.withPermit { "ran" }
        }
        var iterator = started.makeAsyncIterator()
        await iterator.next()
        task.cancel()
        await gate.open()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(try await semaphore.withPermit { "free" } == "free")
    }
}
