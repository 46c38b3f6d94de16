import ArgumentParser
import Foundation
import SwitchyardClient

struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout", abstract: "Revoke the stored device key (and its agent key) and delete the stored credentials.")

    @Option(name: .long, help: "Where the keys are stored (default \(StoredLogin.defaultPath)).")
    var credentials: String?

    func run() async throws {
        let path = credentials ?? StoredLogin.defaultPath
        guard let stored = try StoredLogin.load(from: path) else {
            print("Not logged in (no \(path)).")
            return
        }
        try await DeviceLogin(server: stored.server).revoke(deviceKey: stored.deviceKey)
        try FileManager.default.removeItem(atPath: path)
        print("Revoked the device key and its agent key; removed \(path).")
    }
}
