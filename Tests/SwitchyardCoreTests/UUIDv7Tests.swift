import Foundation
import SwitchyardCore
import Testing

@Suite("UUIDv7")
struct UUIDv7Tests {
    @Test("version 7, RFC variant, millisecond timestamp in the first 48 bits")
    func layout() {
        let date = Date(timeIntervalSince1970: 1_700_000_000.123)
        let id = UUIDv7.make(at: date)
        let bytes = withUnsafeBytes(of: id.uuid) { Array($0) }
        #expect(bytes[6] >> 4 == 7)
        #expect(bytes[8] >> 6 == 0b10)
        let millis = bytes[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(millis == 1_700_000_000_123)
        #expect(id.lowercased == id.uuidString.lowercased())
    }

    @Test("ids sort by creation time")
    func ordering() {
        let earlier = UUIDv7.make(at: Date(timeIntervalSince1970: 1000))
        let later = UUIDv7.make(at: Date(timeIntervalSince1970: 1000.002))
        #expect(earlier.lowercased < later.lowercased)
    }
}
