import SQLiteNIO
import SwitchyardCore

extension SQLiteStorage {
    public func setting(_ key: String) async throws -> String? {
        try await read("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?.string("value")
    }

    public func settingInsertingIfAbsent(_ key: String, value: String) async throws -> String {
        try await write { connection in
            _ = try await connection.query(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [.text(key), .text(value)])
            return try await connection.query("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?.string("value") ?? value
        }
    }

    public func replaceSetting(_ key: String, from old: String, to new: String) async throws -> Bool {
        try await write { connection in
            try await connection.query(
                "UPDATE settings SET value = ? WHERE key = ? AND value = ? RETURNING key", [.text(new), .text(key), .text(old)]
            ).count == 1
        }
    }
}
