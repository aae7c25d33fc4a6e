// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "ipipd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ipipd", targets: ["ipipd"]),
        // For the micro-benchmarks in Benchmarks/ (a package of their own, so CI does not build them).
        .library(name: "IPIPCore", targets: ["IPIPCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    ],
    targets: [
        // Debian's libpcap (libpcap-dev ships libpcap.pc).
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        // Debian's libnet 1.1 (libnet1-dev ships no .pc file: the module map links "net").
        .systemLibrary(
            name: "CLibnet",
            providers: [.apt(["libnet1-dev"])]
        ),
        // What Swift cannot see or call: ioctl request macros, mmsg, socket filters.
        .target(name: "CIPIPShims"),
        // Pure core: the packet paths and their codecs, checksums, routing table, config model, RFC 2003
        // rules, the kernel plan. No C, no I/O.
        .target(
            name: "IPIPCore",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        // Dataplane I/O: the loops around the packet paths, TUN, the uplink's capture, libpcap, libnet injection,
        // rtnetlink, the kernel setup, the control socket.
        .target(
            name: "IPIPDataplane",
            dependencies: [
                "IPIPCore", "CPcap", "CLibnet", "CIPIPShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "ipipd",
            dependencies: [
                "IPIPCore", "IPIPDataplane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "IPIPCoreTests",
            dependencies: [
                "IPIPCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Fixtures"]
        ),
        // Root-free tests of the dataplane's pure helpers (netlink messages, the state file, sysctl paths).
        .testTarget(
            name: "IPIPDataplaneTests",
            dependencies: ["IPIPCore", "IPIPDataplane"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["IPIPCore", "IPIPDataplane"],
            exclude: ["craft.py", "craft6.py", "craft_offload.py", "craft_encap.py", "notify_listener.py"]   // helper scripts the tests run by path
        ),
    ],
    swiftLanguageModes: [.v6]
)
