import Foundation
import SwitchyardCore
import Testing

@Suite("Pagination")
struct PaginationTests {
    @Test(
        "valid query values",
        arguments: [
            (nil, nil, 1, 20), ("1", "1", 1, 1), ("3", "100", 3, 100), ("2147483647", "20", 2_147_483_647, 20),
        ] as [(String?, String?, Int, Int)]
    )
    func valid(page: String?, perPage: String?, expectedPage: Int, expectedPerPage: Int) throws {
        let request = try PageRequest(currentPage: page, perPage: perPage)
        #expect(request.currentPage == expectedPage)
        #expect(request.perPage == expectedPerPage)
        #expect(request.offset == (expectedPage - 1) * expectedPerPage)
    }

    @Test(
        "invalid query values name the parameter",
        arguments: [
            ("0", nil, "current_page"), ("-1", nil, "current_page"), ("x", nil, "current_page"), ("1.5", nil, "current_page"),
            (nil, "0", "per_page"), (nil, "101", "per_page"), (nil, "", "per_page"), (nil, "ten", "per_page"),
        ] as [(String?, String?, String)]
    )
    func invalid(page: String?, perPage: String?, name: String) {
        #expect {
            try PageRequest(currentPage: page, perPage: perPage)
        } throws: { error in
            guard case .invalid(let message) = error as? SwitchyardError else { return false }
            return message.contains("\"\(name)\"")
        }
    }

    @Test(
        "an out-of-range page says which bound it crosses, however large the number",
        arguments: [
            ("2147483648", "above the maximum 2147483647"), ("99999999999999999999999", "above the maximum 2147483647"),
            ("0", "below the minimum 1"), ("-99999999999999999999999", "below the minimum 1"),
        ])
    func bounds(page: String, message: String) {
        #expect {
            try PageRequest(currentPage: page, perPage: nil)
        } throws: { error in
            guard case .invalid(let text) = error as? SwitchyardError else { return false }
            return text == "query parameter \"current_page\": \(page) is \(message)"
        }
        #expect(throws: (any Error).self) { try PageRequest(currentPage: "１２", perPage: nil) }
    }
}
