// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
        .library(name: "SwitchyardClient", targets: ["SwitchyardClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.30.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.19"),
    ],
    targets: [
        .target(
            name: "SwitchyardCore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardWire",
            dependencies: ["SwitchyardCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardObjectStore",
            dependencies: [
                "SwitchyardCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardConcurrency",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardSQL",
            dependencies: ["SwitchyardCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardSQLite",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardSQL",
                "SwitchyardConcurrency",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardPostgres",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardSQL",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardServer",
            dependencies: [
                "SwitchyardComfyUI",
                "SwitchyardCore",
                "SwitchyardConcurrency",
                "SwitchyardWire",
                "SwitchyardObjectStore",
                "SwitchyardSQLite",
                "SwitchyardPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/openapi.yaml"), .copy("Resources/dashboard.js"), .copy("Resources/dashboard.css")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardClient",
            dependencies: [
                "SwitchyardCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardComfyUI",
            dependencies: [
                "SwitchyardCore",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardAgent",
            dependencies: [
                "SwitchyardCore", "SwitchyardWire", "SwitchyardComfyUI",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "SwitchyardServer",
                "SwitchyardAgent",
                "SwitchyardClient",
                "SwitchyardWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchyard-bench",
            dependencies: ["SwitchyardObjectStore"],
            path: "Benchmarks/Sources/switchyard-bench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchyard-model-bench",
            dependencies: ["SwitchyardAgent", "SwitchyardObjectStore"],
            path: "Benchmarks/Sources/switchyard-model-bench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchyard-agent-bench",
            dependencies: [
                "SwitchyardCore", "SwitchyardWire",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Sources/switchyard-agent-bench",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardFakeComfyUI",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "SwitchyardCore",
                "SwitchyardServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/SwitchyardFakeComfyUI",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchyard-fake-comfyui",
            dependencies: ["SwitchyardFakeComfyUI"],
            path: "Tests/switchyard-fake-comfyui",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardTestSupport",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardConcurrency",
                "SwitchyardSQLite",
                "SwitchyardPostgres",
                "SwitchyardServer",
                "SwitchyardWire",
                "SwitchyardAgent",
                "SwitchyardFakeComfyUI",
                "SwitchyardClient",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/SwitchyardTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardSQLTests",
            dependencies: ["SwitchyardSQL", "SwitchyardConcurrency", "SwitchyardCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardCoreTests",
            dependencies: ["SwitchyardCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardAgentTests",
            dependencies: [
                "SwitchyardAgent", "SwitchyardComfyUI", "SwitchyardFakeComfyUI", "SwitchyardTestSupport", "SwitchyardServer", "SwitchyardWire",
                "SwitchyardConcurrency", "SwitchyardClient", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardWireTests",
            dependencies: ["SwitchyardWire", "SwitchyardCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardObjectStoreTests",
            dependencies: [
                "SwitchyardObjectStore", "SwitchyardServer", "SwitchyardTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardStorageTests",
            dependencies: [
                "SwitchyardCore", "SwitchyardSQLite", "SwitchyardPostgres", "SwitchyardTestSupport",
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardServerTests",
            dependencies: [
                "SwitchyardServer",
                "SwitchyardObjectStore",
                "SwitchyardTestSupport",
                "SwitchyardClient",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
