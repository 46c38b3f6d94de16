import PostgresNIO
import SwitchyardCore

extension PostgresStorage {
    public func setting(_ key: String) async throws -> String? {
        try await rows("SELECT value FROM settings WHERE key = \(key)").first?.decode(String.self)
    }

    public func settingInsertingIfAbsent(_ key: String, value: String) async throws -> String {
        _ = try await rows("INSERT INTO settings (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO NOTHING")
        return try await setting(key) ?? value
    }

    public func replaceSetting(_ key: String, from old: String, to new: String) async throws -> Bool {
        try await rows("UPDATE settings SET value = \(new) WHERE key = \(key) AND value = \(old) RETURNING key").count == 1
    }
}
