import PostgresNIO
import SwitchyardCore
import _ConnectionPoolModule

extension PostgresStorage {
    public var isReachable: Bool { notifications.listening.load(ordering: .relaxed) }

    /// The database is down, restarting or unreachable: a connection could not be made (the pool's circuit breaker
    /// tripped), was lost, or the server is shutting down or starting (SQLSTATE classes 08 and 57P).
    public func isUnavailable(_ error: any Error) -> Bool {
        if error is ConnectionPoolError { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            return true
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57P")
        default:
            return false
        }
    }
}
