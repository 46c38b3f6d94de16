import Foundation
import SwitchyardSQL
import Testing

@Suite("SQLQuery and Schema")
struct SQLQueryTests {
    let id = UUID(uuidString: "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B")!

    @Test("values become placeholders in each dialect's syntax, in order; raw text and fragments splice in")
    func rendering() {
        let status: String? = nil
        var filter: SQLQuery = "team_id = \(id)"
        filter = "\(filter) AND task_status = \(status)"
        let query: SQLQuery = "SELECT \(raw: "id, slug") FROM tasks WHERE \(filter) LIMIT \(20)"
        let sqlite = query.render(.sqlite)
        #expect(sqlite.sql == "SELECT id, slug FROM tasks WHERE team_id = ? AND task_status = ? LIMIT ?")
        #expect(sqlite.binds == [.uuid(id), .text(nil), .integer(20)])
        #expect(query.render(.postgres).sql == "SELECT id, slug FROM tasks WHERE team_id = $1 AND task_status = $2 LIMIT $3")
    }

    @Test("a value is never SQL: a quote in it stays a bound value")
    func injection() {
        let name = "x'; DROP TABLE tasks; --"
        let rendered = ("SELECT 1 FROM teams WHERE display_name = \(name)" as SQLQuery).render(.sqlite)
        #expect(rendered.sql == "SELECT 1 FROM teams WHERE display_name = ?")
        #expect(rendered.binds == [.text(name)])
    }

    @Test("lists and rows: one placeholder per value; row locks only where PostgreSQL needs them")
    func listsAndLocks() {
        let query: SQLQuery = """
            SELECT id FROM d WHERE id IN \(list: ["a", "b"]) AND x = \(values: [1, "two", true]) \(lock: .forUpdateSkipLocked(of: "d"))
            """
        #expect(query.render(.postgres).sql == "SELECT id FROM d WHERE id IN ($1, $2) AND x = ($3, $4, $5) FOR UPDATE OF d SKIP LOCKED")
        #expect(query.render(.sqlite).sql == "SELECT id FROM d WHERE id IN (?, ?) AND x = (?, ?, ?) ")
        #expect(query.render(.sqlite).binds == [.text("a"), .text("b"), .integer(1), .text("two"), .bool(true)])
        #expect(("SELECT 1 \(lock: .forUpdate)" as SQLQuery).render(.postgres).sql == "SELECT 1 FOR UPDATE")
        #expect(("SELECT 1 \(lock: .forUpdateOf("w"))" as SQLQuery).render(.postgres).sql == "SELECT 1 FOR UPDATE OF w")
    }

    @Test("the schema is written once: SQLite gets STRICT tables with its storage types, PostgreSQL its own DDL and its extra index")
    func schemaTranslation() throws {
        let identity = try #require(Schema.migrations.first)
        let users = try #require(identity.statements(for: .sqlite).first)
        #expect(users.hasPrefix("CREATE TABLE users (\n    id TEXT PRIMARY KEY,"))
        #expect(users.contains("created_at INTEGER NOT NULL"))
        #expect(users.hasSuffix(") STRICT"))
        let postgres = try #require(identity.statements(for: .postgres).first)
        #expect(postgres.contains("id uuid PRIMARY KEY") && postgres.contains("created_at timestamptz NOT NULL") && !postgres.contains("STRICT"))
        let dispatch = try #require(Schema.migrations.first { $0.version == 5 })
        #expect(dispatch.statements(for: .sqlite).contains { $0.contains("gpu_seconds REAL") && !$0.contains("double") })
        #expect(dispatch.statements(for: .sqlite).contains { $0.contains("community_opt_in INTEGER NOT NULL") })
        let replicas = try #require(Schema.migrations.first { $0.version == 7 })
        #expect(replicas.statements(for: .postgres).count == replicas.statements(for: .sqlite).count + 1)
        #expect(Schema.migrations.map(\.version) == Array(1...Schema.migrations.count), "versions are consecutive from 1")
    }
}
