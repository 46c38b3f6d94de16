import Foundation
import SwitchyardFakeComfyUI

// The fake ComfyUI as a process, for scripts (the smoke test, benchmarks): `switchyard-fake-comfyui [port]`.
// Prints `listening on <port>` once it accepts connections, and serves until killed.
let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8188
try await FakeComfyUI.with(.init(port: port)) { fake in
    print("listening on \(fake.port)")
    fflush(nil)
    while true { try await Task.sleep(for: .seconds(3600)) }
}
