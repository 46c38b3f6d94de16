import SwitchyardConcurrency
import Testing

@Suite("AsyncLatch")
struct AsyncLatchTests {
    struct Refused: Error, Equatable {}

    /// A latch and a stream that yields the number of waiters each time one starts waiting.
    private func latch() -> (AsyncLatch, AsyncStream<Int>) {
        let (waits, wait) = AsyncStream.makeStream(of: Int.self)
        return (AsyncLatch(onWait: { wait.yield($0) }), waits)
    }

    @Test("waiters before the opening pass when it opens; a caller after passes at once")
    func opens() async throws {
        let (latch, waits) = latch()
        #expect(!latch.isOpen)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<5 { group.addTask { try await latch.wait() } }
            for await count in waits where count == 5 { break }
            latch.open()
            try await group.waitForAll()
        }
        #expect(latch.isOpen)
        try await latch.wait()
        latch.fail(Refused())
        try await latch.wait()
    }

    @Test("a failure reaches every waiter, present and future; a later open changes nothing")
    func fails() async throws {
        let (latch, waits) = latch()
        await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<3 {
                group.addTask { await #expect(throws: Refused()) { try await latch.wait() } != nil }
            }
            for await count in waits where count == 3 { break }
            latch.fail(Refused())
            for await threw in group { #expect(threw) }
        }
        latch.open()
        #expect(!latch.isOpen)
        await #expect(throws: Refused()) { try await latch.wait() }
    }

    @Test("a cancelled waiter leaves with CancellationError; the others still pass at the opening")
    func cancelled() async throws {
        let (latch, waits) = latch()
        let staying = Task { try await latch.wait() }
        let leaving = Task { try await latch.wait() }
        for await count in waits where count == 2 { break }
        leaving.cancel()
        await #expect(throws: CancellationError.self) { try await leaving.value }
        latch.open()
        try await staying.value
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await AsyncLatch().wait()
        }
        await #expect(throws: CancellationError.self) { try await early.value }
    }
}
