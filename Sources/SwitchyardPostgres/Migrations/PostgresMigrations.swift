import SwitchyardCore

/// The PostgreSQL schema, in order. Append only: a released migration is never edited.
enum PostgresMigrations {
    static let all: [SchemaMigration] = [
        m0001CreateIdentity,
        m0002CreateWorkflowsAndTasks,
        m0003CreateModels,
        m0004CreateRetention,
        m0005CreateDispatch,
        m0006CreateTeamsWebhooksPairing,
        m0007CreateReplicas,
        m0008AddStartDeadline,
        m0009AddPairingRequester,
        m0010CreateMultipartUploads,
        m0011AddTokenVersion,
    ]
}
