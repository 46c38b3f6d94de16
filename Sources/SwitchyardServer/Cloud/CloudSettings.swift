import Foundation
import SwitchyardComfyUI

/// How the control plane uses Comfy Cloud (`cloud.*`; docs/decisions.md, "Comfy Cloud").
public struct CloudSettings: Sendable {
    /// The service's origin (`cloud.comfyBaseURL`): every call goes to `<origin>/api/…`.
    public var comfyBaseURL = ComfyCloudClient.defaultBaseURL
    /// Jobs one team runs on Comfy Cloud at once from this server (`cloud.comfyConcurrency`): the account's plan
    /// limit (Standard 1, Creator 3, Pro 5); jobs beyond it wait here rather than in the service's queue.
    public var comfyConcurrency = 1
    /// Seconds an agent-targeted task of a team with `cloud_fallback` waits for a busy eligible agent before it goes
    /// to the cloud (`cloud.fallbackWait`); with no eligible agent connected it goes at once.
    public var fallbackWait: TimeInterval = 30
    /// Seconds between two reads of a running job (`cloud.pollInterval`): v2 is "poll first".
    public var pollInterval: TimeInterval = 1

    public init() {}
}
