import HummingbirdBcrypt
import NIOCore
import NIOPosix
import SwitchyardCore
import Synchronization

/// bcrypt on a pool of its own (docs/security.md): half the cores. A login flood then costs those threads and
/// nothing else — the shared NIO thread pool keeps serving the object store's file work — and once the checks
/// already waiting would keep a new one waiting longer than `maxQueueWait` (judged by how long recent checks took),
/// a request's password check is a 429 at once instead of a wait.
final class PasswordHashing: Sendable {
    /// The pool every password check of this process uses.
    static let shared = PasswordHashing(threads: max(1, System.coreCount / 2))

    let threads: Int
    let maxQueueWait: Duration
    private let pool: NIOThreadPool
    private let inFlight = Atomic(0)
    /// How long one check took lately (microseconds, a moving average).
    private let typicalMicroseconds: Atomic<Int>

    init(threads: Int, maxQueueWait: Duration = .seconds(5), initialEstimate: Duration = .zero) {
        self.threads = threads
        self.maxQueueWait = maxQueueWait
        typicalMicroseconds = Atomic(Int(initialEstimate / .microseconds(1)))
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    /// Runs `work` on the password pool. With `refusable`, throws a 429 instead when the checks ahead of it would
    /// keep it waiting longer than `maxQueueWait`; start-up work (the first owner's password) always waits.
    func run<T: Sendable>(refusable: Bool = true, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        let admitted = inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        defer { inFlight.wrappingSubtract(1, ordering: .relaxed) }
        let ahead = max(0, admitted - threads)
        let expectedWait = Duration.microseconds(ahead * typicalMicroseconds.load(ordering: .relaxed) / threads)
        guard !refusable || expectedWait <= maxQueueWait else {
            throw SwitchyardError.tooManyRequests("the server is busy checking passwords; try again in a few seconds", retryAfter: 2)
        }
        return try await pool.runIfActive {
            let started = ContinuousClock.now
            defer {
                let took = Int((ContinuousClock.now - started) / .microseconds(1))
                let typical = self.typicalMicroseconds.load(ordering: .relaxed)
                self.typicalMicroseconds.store(typical == 0 ? took : (typical * 4 + took) / 5, ordering: .relaxed)
            }
            return try work()
        }
    }

    /// Stops the threads (tests' own pools; the shared one lives as long as the process).
    func shutdown() async throws {
        try await pool.shutdownGracefully()
    }

    static func hash(_ password: String, cost: Int, refusable: Bool = true) async throws -> String {
        try await shared.run(refusable: refusable) { Bcrypt.hash(password, cost: UInt8(cost)) }
    }

    static func verify(_ password: String, hash: String) async throws -> Bool {
        try await shared.run { Bcrypt.verify(password, hash: hash) }
    }
}
