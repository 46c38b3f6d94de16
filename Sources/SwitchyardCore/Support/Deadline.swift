import Synchronization

/// A call that did not answer in time.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "no answer within \(limit)" }
}

/// Runs `body`, giving up after `limit`: the caller gets `DeadlineExceeded` and `body` is cancelled (and left to
/// finish on its own if it ignores that). For calls that must never hold their caller forever — a database client
/// that loses a query when its server is killed mid-flight, say.
public func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation, limit: limit, body: body)
    }
}

/// Whichever of the call and the timer ends first resumes the caller, once, and cancels the other.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>, limit: Duration, body: @escaping @Sendable () async throws -> T) {
        state.withLock { $0.continuation = continuation }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            self.finish(result)
        }
        let timer = Task {
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            self.finish(.failure(DeadlineExceeded(limit: limit)))
        }
        let done = state.withLock { state in
            state.work = work
            state.timer = timer
            return state.continuation == nil
        }
        // Answered before the tasks were stored: the timer must not sleep on.
        if done { timer.cancel() }
    }

    private func finish(_ result: Result<T, any Error>) {
        let (continuation, work, timer) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, state.work, state.timer)
        }
        guard let continuation else { return }
        continuation.resume(with: result)
        if case .failure(let error) = result, error is DeadlineExceeded { work?.cancel() } else { timer?.cancel() }
    }
}
