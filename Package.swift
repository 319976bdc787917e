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
    ],
    targets: [
        .executableTarget(name: "dagctl", dependencies: ["DagctlCLI"]),
        .target(name: "DagctlCLI", dependencies: [
            "DagctlEngine", "DagctlSpec", "DagctlPlanning", "DagctlState", "DagctlGit", "DagctlBackends", "DagctlWeb",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "DagctlSpec", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "DagctlPlanning", dependencies: ["DagctlSpec"]),
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        .target(name: "DagctlGit", dependencies: ["CLibGit2"]),
        .target(name: "DagctlState", dependencies: ["DagctlPlanning", "DagctlSpec"]),
        .target(name: "DagctlBackends", dependencies: ["DagctlSpec", "DagctlPlanning"]),
        .target(name: "DagctlEngine", dependencies: [
            "DagctlSpec", "DagctlPlanning", "DagctlGit", "DagctlState", "DagctlBackends",
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
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
    ]
)
