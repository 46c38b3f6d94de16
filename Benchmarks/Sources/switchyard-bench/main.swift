// In-process micro-benchmarks for hot paths that HTTP would hide behind its own ceiling. Run through
// Benchmarks/object-store.sh (release build). Prints one line per measurement.
import Foundation
import SwitchyardObjectStore

let credentials = S3Credentials(accessKeyId: "SYBENCHMARKKEY000000", secretAccessKey: "benchmark-secret-benchmark-secret-000000")
let configuration = S3Configuration(
    origin: S3Origin("http://127.0.0.1:8081")!, bucket: "switchyard", region: "us-east-1", credentials: credentials)
let client = S3Client(configuration: configuration)
let teamId = UUID()

/// Runs `body` `count` times on each of `threads` threads; returns operations per second.
func rate(threads: Int, count: Int, _ body: @escaping @Sendable (Int) -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
        for index in 0..<count { body(thread &* count &+ index) }
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    return Double(threads * count) / seconds
}

let cores = ProcessInfo.processInfo.activeProcessorCount
let now = Date()
// The same work as POST /r/files/presign after validation: a key and a presigned PUT with two signed headers.
let presign: @Sendable (Int) -> Void = { index in
    let key = "inputs/\(teamId.uuidString.lowercased())/\(index)/aW1hZ2UvcG5n/photo.png"
    let (url, _) = client.presignedPut(key: key, contentLength: 1_048_576, expires: 3600, now: now)
    precondition(url.count > 100)
}
_ = rate(threads: 1, count: 2_000, presign)  // warm-up
print(String(format: "presign (key + SigV4 PUT URL), 1 thread:   %8.0f /s", rate(threads: 1, count: 50_000, presign)))
print(String(format: "presign (key + SigV4 PUT URL), %d threads: %8.0f /s", cores, rate(threads: cores, count: 50_000, presign)))

let verifier = SigV4Verifier(region: "us-east-1") { $0 == credentials.accessKeyId ? credentials.secretAccessKey : nil }
let signed = client.presignedPut(key: "inputs/x/y/aW1hZ2UvcG5n/photo.png", contentLength: 11, expires: 3600, now: now)
let components = URLComponents(string: signed.url)!
let request = SigV4Request(
    method: "PUT", rawPath: components.percentEncodedPath, rawQuery: components.percentEncodedQuery,
    headers: signed.headers + [("host", "127.0.0.1:8081")])
let verify: @Sendable (Int) -> Void = { _ in precondition((try? verifier.verify(request, now: now)) != nil) }
print(String(format: "verify a presigned PUT, 1 thread:          %8.0f /s", rate(threads: 1, count: 50_000, verify)))
