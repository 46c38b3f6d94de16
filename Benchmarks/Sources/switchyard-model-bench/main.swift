// The agent's model download path (ModelCache: streamed GET, SHA-256 on the fly, rename into place), for
// Benchmarks/model-sync.sh. Two modes:
//   switchyard-model-bench presign <bootstrap.json> <key>          prints a presigned GET of the embedded store
//   switchyard-model-bench fetch <url> <size> <sha256:hex> <root>  places the file; prints seconds, MB/s, peak RSS
import Foundation
import SwitchyardAgent
import SwitchyardObjectStore

let arguments = CommandLine.arguments
switch arguments.dropFirst().first {
case "presign" where arguments.count == 4:
    let bootstrap = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: arguments[2])))
    let configuration = S3Configuration(
        origin: S3Origin(bootstrap["s3_endpoint"]!)!, bucket: bootstrap["s3_bucket"]!, region: bootstrap["s3_region"]!,
        credentials: S3Credentials(accessKeyId: bootstrap["s3_access_key_id"]!, secretAccessKey: bootstrap["s3_secret_access_key"]!))
    print(S3Client(configuration: configuration).presignedGet(key: arguments[3], expires: 3600, now: Date()))
case "fetch" where arguments.count == 6:
    let size = Int(arguments[3])!
    let cache = try ModelCache(root: URL(fileURLWithPath: arguments[5]))
    let model = ModelCache.Wanted(
        modelId: UUID(), placement: try ModelPlacement(modelType: "checkpoints", modelPath: "bench.safetensors"), size: size,
        digest: arguments[4])
    let start = DispatchTime.now().uptimeNanoseconds
    let transferred = try await cache.place(model, from: arguments[2])
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    print(String(format: "%.3f %.1f %d %d", seconds, Double(transferred) / seconds / 1e6, usage.ru_maxrss / 1024, transferred))
default:
    FileHandle.standardError.write(Data("usage: switchyard-model-bench presign <bootstrap.json> <key> | fetch <url> <size> <digest> <root>\n".utf8))
    exit(2)
}
