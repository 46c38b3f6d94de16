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
    func methods(matching path: String) -> [String] {
        let requested = path.split(separator: "/", omittingEmptySubsequences: true)
        return entries.filter { entry in
            let pattern = entry.path.split(separator: "/", omittingEmptySubsequences: true)
            guard pattern.count == requested.count else { return false }
            return zip(pattern, requested).allSatisfy { patternSegment, segment in
                patternSegment.hasPrefix("{") || patternSegment == segment
            }
        }.map(\.method).sorted()
    }
}
