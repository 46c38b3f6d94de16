import Logging
import SwitchyardCore
import Synchronization

/// A log handler that tells a test when a message was logged, so the test waits on what the code says it did
/// rather than polling for its effects. Messages are kept (for a failure's description) and otherwise dropped.
public final class LogSignal: Sendable {
    private struct State {
        var messages: [String] = []
        var waiters: [(message: String, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// A logger whose messages this signal sees.
    public func logger(label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(signal: self) }
        logger.logLevel = .info
        return logger
    }

    /// Returns once `message` has been logged (at once if it was already), or throws after `timeout`.
    public func wait(for message: String, within timeout: Duration = .seconds(30)) async throws {
        do {
            try await withDeadline(timeout) {
                await withCheckedContinuation { continuation in
                    let seen = self.state.withLock { state in
                        if state.messages.contains(message) { return true }
                        state.waiters.append((message, continuation))
                        return false
                    }
                    if seen { continuation.resume() }
                }
            }
        } catch is DeadlineExceeded {
            throw TestSupportError("\"\(message)\" was not logged within \(timeout); logged: \(state.withLock { $0.messages })")
        }
    }

    fileprivate func logged(_ message: String) {
        let ready = state.withLock { state in
            state.messages.append(message)
            let ready = state.waiters.filter { $0.message == message }
            state.waiters.removeAll { $0.message == message }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    private struct Handler: LogHandler {
        let signal: LogSignal
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            signal.logged(event.message.description)
        }
    }
}
