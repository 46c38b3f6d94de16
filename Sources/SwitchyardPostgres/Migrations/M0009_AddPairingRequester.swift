import SwitchyardCore

extension PostgresMigrations {
    /// What a pairing device says of itself at start, for the approval page: its name and its address.
    static let m0009AddPairingRequester = SchemaMigration(
        version: 9,
        name: "add_pairing_requester",
        statements: [
            "ALTER TABLE device_pairings ADD COLUMN requested_name text",
            "ALTER TABLE device_pairings ADD COLUMN requested_from text",
        ]
    )
}
