import Foundation
import SwitchyardCore

/// Object key layout of DESIGN.md §5. The SigV4 signer, S3 client and embedded store join this module
/// with the storage issue.
public enum ObjectKeyLayout {
    /// `inputs/{team}/{uuid}/{base64(content_type)}/{file_name}` (api.md §2.3).
    public static func inputKey(teamId: UUID, objectId: UUID, contentType: String, fileName: String) -> String {
        let encodedType = Data(contentType.utf8).base64EncodedString()
        return "inputs/\(teamId.lowercased)/\(objectId.lowercased)/\(encodedType)/\(fileName)"
    }
}
