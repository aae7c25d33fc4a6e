// swift-tools-version: 6.1
// Micro-benchmarks of ipipd's per-packet core (ordo-one/benchmark), with allocation counts.
// Run: cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "ipipd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "ipipd", path: ".."),   // named: the checkout's folder may be called anything
        .package(url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PacketPath",
            dependencies: [
                .product(name: "IPIPCore", package: "ipipd"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/PacketPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
