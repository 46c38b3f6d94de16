import Foundation
import SwitchyardCore
import Testing

@Suite("Deadlines")
struct DeadlineTests {
    @Test("a call that answers in time gives its answer or its error; one that never answers gives DeadlineExceeded")
    func deadline() async throws {
        #expect(try await withDeadline(.seconds(5)) { 42 } == 42)
        await #expect(throws: SwitchyardError.self) { try await withDeadline(.seconds(5)) { throw SwitchyardError.invalid("x") } }
        // Never answers, like a query its client lost: it waits on a stream nothing is sent to until it is cancelled.
        let (silence, keepOpen) = AsyncStream.makeStream(of: Int.self)
        defer { keepOpen.finish() }
        let error = await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(50)) {
                for await value in silence { return value }
                return 0
            }
        }
        #expect(error?.limit == .milliseconds(50))
    }
}
