// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "dagctl",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dagctl", targets: ["dagctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(name: "dagctl", dependencies: ["DagctlCLI"]),
        .target(name: "DagctlCLI", dependencies: [
            "DagctlEngine", "DagctlSpec", "DagctlPlanning", "DagctlState", "DagctlGit", "DagctlBackends", "DagctlWeb", "DagctlNotify",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "DagctlSpec", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "DagctlPlanning", dependencies: ["DagctlSpec"]),
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        .target(name: "DagctlGit", dependencies: ["CLibGit2"]),
        .target(name: "DagctlState", dependencies: ["DagctlPlanning", "DagctlSpec"]),
        .target(name: "DagctlBackends", dependencies: [
            "DagctlSpec", "DagctlPlanning", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "DagctlNotify", dependencies: [
            "DagctlSpec", "DagctlState",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .target(name: "DagctlEngine", dependencies: [
            "DagctlSpec", "DagctlPlanning", "DagctlGit", "DagctlState", "DagctlBackends", "DagctlNotify",
        ]),
        .target(name: "DagctlWeb", dependencies: [
            "DagctlEngine", "DagctlSpec", "DagctlPlanning", "DagctlState", "DagctlGit", "DagctlBackends",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .testTarget(name: "DagctlSpecTests", dependencies: ["DagctlSpec"]),
        .testTarget(name: "DagctlPlanningTests", dependencies: ["DagctlPlanning"]),
        .testTarget(name: "DagctlGitTests", dependencies: ["DagctlGit", "TestSupport"]),
        .testTarget(name: "DagctlStateTests", dependencies: ["DagctlState", "TestSupport"]),
        .testTarget(name: "DagctlEngineTests", dependencies: [
            "DagctlEngine", "DagctlSpec", "DagctlPlanning", "DagctlGit", "DagctlState", "DagctlBackends", "TestSupport",
        ]),
        .testTarget(name: "DagctlNotifyTests", dependencies: ["DagctlNotify", "DagctlState", "DagctlSpec", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
    ]
)
