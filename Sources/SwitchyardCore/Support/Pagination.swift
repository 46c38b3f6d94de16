/// A validated page request (api.md §1.3): `current_page` ≥ 1, `per_page` 1–100, default 20.
public struct PageRequest: Sendable, Equatable {
    public static let defaultPerPage = 20
    public static let maxPerPage = 100

    public let currentPage: Int
    public let perPage: Int

    /// Validates raw query values; `nil` means the parameter was not sent.
    public init(currentPage rawPage: String?, perPage rawPerPage: String?) throws(SwitchyardError) {
        self.currentPage = try Self.parse(rawPage, name: "current_page", default: 1, range: 1...Int(Int32.max))
        self.perPage = try Self.parse(rawPerPage, name: "per_page", default: Self.defaultPerPage, range: 1...Self.maxPerPage)
    }

    public init(currentPage: Int = 1, perPage: Int = PageRequest.defaultPerPage) {
        self.currentPage = currentPage
        self.perPage = perPage
    }

    /// Rows to skip.
    public var offset: Int { (currentPage - 1) * perPage }

    private static func parse(_ raw: String?, name: String, default value: Int, range: ClosedRange<Int>) throws(SwitchyardError) -> Int {
        guard let raw else { return value }
        let digits = raw.hasPrefix("-") ? raw.dropFirst() : Substring(raw)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else {
            throw .invalid("query parameter \"\(name)\": \"\(raw)\" is not an integer")
        }
        // Too long for an Int is as far out of range as any other too-large number.
        let number = Int(raw) ?? (raw.hasPrefix("-") ? Int.min : Int.max)
        guard number >= range.lowerBound else {
            throw .invalid("query parameter \"\(name)\": \(raw) is below the minimum \(range.lowerBound)")
        }
        guard number <= range.upperBound else {
            throw .invalid("query parameter \"\(name)\": \(raw) is above the maximum \(range.upperBound)")
        }
        return number
    }
}

/// One page of results plus the total count across all pages.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var totalCount: Int

    public init(items: [Item], totalCount: Int) {
        self.items = items
        self.totalCount = totalCount
    }
}
