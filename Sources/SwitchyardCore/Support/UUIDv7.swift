import Foundation

/// Time-ordered UUIDs (RFC 9562 version 7): 48 bits of Unix milliseconds, then random bits.
///
/// ```swift
/// let id = UUIDv7.make(at: Date())
/// ```
public enum UUIDv7 {
    /// Makes a version-7 UUID whose timestamp is `date`.
    public static func make(at date: Date) -> UUID {
        var generator = SystemRandomNumberGenerator()
        return make(at: date, using: &generator)
    }

    /// Makes a version-7 UUID from `date` and a caller-supplied random source (tests use a seeded one).
    public static func make(at date: Date, using generator: inout some RandomNumberGenerator) -> UUID {
        let millis = UInt64(max(0, (date.timeIntervalSince1970 * 1000).rounded(.down)))
        let randA = generator.next() as UInt64
        let randB = generator.next() as UInt64
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 {
            bytes[index] = UInt8(truncatingIfNeeded: millis >> UInt64(8 * (5 - index)))
        }
        bytes[6] = 0x70 | UInt8(truncatingIfNeeded: randA & 0x0F)
        bytes[7] = UInt8(truncatingIfNeeded: randA >> 8)
        bytes[8] = 0x80 | UInt8(truncatingIfNeeded: randB & 0x3F)
        for index in 9..<16 {
            bytes[index] = UInt8(truncatingIfNeeded: randB >> UInt64(8 * (index - 8)))
        }
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
