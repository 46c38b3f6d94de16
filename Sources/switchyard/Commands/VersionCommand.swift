import ArgumentParser
import SwitchyardAgent
import SwitchyardServer

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version and exit.")

    func run() {
        print("switchyard \(SwitchyardVersion.current) (agent protocol v\(AgentVersion.wireProtocol))")
    }
}
