import Foundation
import SwitchyardCore
import Testing

@Suite("Roles")
struct TeamRoleTests {
    @Test("only owners and admins manage credentials; viewers cannot write")
    func permissions() {
        #expect(TeamRole.allCases.filter(\.canManageCredentials) == [.owner, .admin])
        #expect(TeamRole.allCases.filter { !$0.canWrite } == [.viewer])
    }
}
