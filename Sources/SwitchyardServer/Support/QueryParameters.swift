import Foundation
import HummingbirdCore

extension URI {
    /// The first value of the query parameter `name`, decoded as browsers, curl's `--data-urlencode -G`, Python's
    /// `requests` and schemathesis encode it (application/x-www-form-urlencoded): `+` is a space, then `%XX`
    /// escapes. Hummingbird's `queryParameters` leaves `+` as it is, so `user_code=AB7K+PNQ3` would not be the
    /// `AB7K PNQ3` the client meant. A value with a malformed escape is returned with only `+` decoded.
    func formQueryValue(_ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard Self.formDecode(parts[0]) == name else { continue }
            return parts.count > 1 ? Self.formDecode(parts[1]) : ""
        }
        return nil
    }

    static func formDecode(_ raw: Substring) -> String {
        let spaced = raw.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
