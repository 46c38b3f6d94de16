import Synchronization

/// A value the server reads from its database when it starts (`beforeServerStarts`), not when it is built: the
/// signing key ring, the embedded store's key pair, the login decoy hash. Nothing reads it before the start: the
/// server listens, and the services run, only after it is set.
final class StartupValue<Value: Sendable>: Sendable {
    private let value: Mutex<Value?>

    init(_ value: Value? = nil) {
        self.value = Mutex(value)
    }

    func set(_ newValue: Value) {
        value.withLock { $0 = newValue }
    }

    /// The value, once set.
    var ifSet: Value? { value.withLock { $0 } }

    /// The value; reading it before the start is a programming error.
    var current: Value {
        guard let current = ifSet else { preconditionFailure("\(Value.self) is read before the server's start set it") }
        return current
    }
}
