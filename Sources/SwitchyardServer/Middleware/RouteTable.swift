import Hummingbird

/// The registered routes as (method, path pattern), read back from the router once it is complete. Used to
/// answer 405 with `Allow` for a known path and another method, and by the test that keeps
/// `docs/openapi.yaml` complete.
public struct RouteTable: Sendable {
    public struct Entry: Sendable, Hashable {
        public let method: String
        /// The path with captures written `{name}`.
        public let path: String
    }

    public let entries: [Entry]

    init(_ routes: [Router<SwitchyardRequestContext>.RouteDescription]) {
        self.entries = routes.map { route in
            let segments = route.path.description.split(separator: "/", omittingEmptySubsequences: true).map { segment in
                segment.hasPrefix(":") ? "{\(segment.dropFirst())}" : String(segment)
            }
            return Entry(method: route.method.rawValue, path: "/" + segments.joined(separator: "/"))
        }
    }

    /// The methods registered for a concrete request path.
    /// As the router resolves a path, a literal segment wins over a capture: `/models/presign` is that route's,
    /// not `/models/{id}`'s. `HEAD` is served wherever `GET` is.
    func methods(matching path: String) -> [String] {
        let requested = path.split(separator: "/", omittingEmptySubsequences: true)
        let matches: [(entry: Entry, literal: [Bool])] = entries.compactMap { entry in
            let pattern = entry.path.split(separator: "/", omittingEmptySubsequences: true)
            guard pattern.count == requested.count,
                zip(pattern, requested).allSatisfy({ patternSegment, segment in patternSegment.hasPrefix("{") || patternSegment == segment })
            else { return nil }
            return (entry, pattern.map { !$0.hasPrefix("{") })
        }
        guard let best = matches.map(\.literal).max(by: { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }) else { return [] }
        let methods = Set(matches.filter { $0.literal == best }.map(\.entry.method))
        return (methods.contains("GET") ? methods.union(["HEAD"]) : methods).sorted()
    }
}
