#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IPIPCore
import Logging

/// A running tunnel gateway: the kernel setup, the encapsulator (TUN → peers), the capture engine and
/// decapsulator (uplink → kernel), and the control socket, each loop on its own thread.
public final class Gateway: @unchecked Sendable {
    public struct Options: Sendable {
        public var configFile: String
        public var runtimeDirectory: String
        public var version: String
        public init(configFile: String, runtimeDirectory: String, version: String) {
            self.configFile = configFile
            self.runtimeDirectory = runtimeDirectory
            self.version = version
        }
    }

    public let config: GatewayConfig
    public let plan: KernelPlan
    public let counters: TunnelCounters
    /// What is known of the path to each peer (learned MTU, error window, loop guard).
    public let paths: [PeerPathState]
    private let options: Options
    private let logger: Logger
    private let stop = StopSignal()
    private let startedAt = Date()

    private var configurator: KernelConfigurator?
    private var protocolClaim: ProtocolClaim?
    private var controlSocket: ControlSocket?
    private var threads: [DedicatedThread] = []

    public init(config: GatewayConfig, plan: KernelPlan, options: Options, logger: Logger) {
        self.config = config
        self.plan = plan
        self.options = options
        self.logger = logger
        paths = config.peers.map { _ in PeerPathState() }
        counters = TunnelCounters(peerNames: config.peers.map(\.name),
                                  ghostHosts: config.ghostHosts.map { ($0.address, $0.interface) })
    }

    public static func controlSocketPath(runtimeDirectory: String, tunnel: String) -> String {
        "\(runtimeDirectory)/\(tunnel).sock"
    }

    /// Sets everything up and starts the loops. On failure nothing stays applied.
    public func start() throws {
        try createRuntimeDirectory()
        let configurator = try KernelConfigurator(runtimeDirectory: options.runtimeDirectory,
                                                  tunnelName: config.tunnel.name, logger: logger)
        self.configurator = configurator
        do {
            try configurator.apply(plan, uplink: config.uplink.interface)
            guard let tun = configurator.tun else { throw SystemError("create the TUN device") }

            protocolClaim = try ProtocolClaim()
            logger.info("claimed IP protocol 4: the kernel will not answer tunnel packets with ICMP protocol-unreachable")

            // Everything that can fail is opened here, before any thread starts.
            let encapsulationSender = try RawIPv4Sender()
            let reinjectionSender = try RawIPv4Sender()
            let uplinkMTU = SystemProbe.interfaceMTU(config.uplink.interface) ?? KernelPlan.fallbackUplinkMTU
            var settings = PacketCapture.Settings(snapshotLength: Int32(uplinkMTU + 14 + 8))
            settings.immediate = true
            let filter = CaptureFilter.tunnel(local: config.uplink.address)
            let capture = try PacketCapture(interface: config.uplink.interface, filter: filter, settings: settings)
            logger.info("capturing", metadata: ["interface": "\(config.uplink.interface)", "filter": "\(filter)",
                                                "snaplen": "\(settings.snapshotLength)"])
            let responders = try openProxyARPResponders()
            let control = try ControlSocket(path: Self.controlSocketPath(runtimeDirectory: options.runtimeDirectory,
                                                                          tunnel: config.tunnel.name))
            controlSocket = control

            // What fits the uplink, even when the config set a larger tunnel MTU: larger inner packets get
            // "fragmentation needed" or are fragmented by ipipd, as raw sends are never fragmented.
            let pathCeiling = min(plan.tunnelMTU, uplinkMTU - KernelPlan.encapsulationOverhead)
            let encapsulator = Encapsulator(config: config, tunnelMTU: pathCeiling, paths: paths,
                                            initialIdentification: UInt16.random(in: 1...UInt16.max))
            let decapsulator = Decapsulator(config: config, localAddresses: Set(SystemProbe.localAddresses()))
            let loops = DataplaneLoops(counters: counters, paths: paths, peerNames: config.peers.map(\.name),
                                       stop: stop, logger: logger)
            let ttlInherited = config.tunnel.ttl == .inherit
            let tunnelMTU = pathCeiling
            threads.append(try DedicatedThread(name: "ipipd-tun") {
                loops.encapsulate(from: tun, with: encapsulator, sender: encapsulationSender)
            })
            threads.append(try DedicatedThread(name: "ipipd-capture") {
                loops.decapsulate(from: capture, with: decapsulator, ttlInherited: ttlInherited, tunnelMTU: tunnelMTU,
                                  sender: reinjectionSender)
            })
            for (interface, capture, responder) in responders {
                threads.append(try DedicatedThread(name: "ipipd-arp-\(interface)") {
                    loops.answerARP(on: capture, with: responder)
                })
            }
            threads.append(try DedicatedThread(name: "ipipd-control") { [self] in
                control.serve(until: stop) { self.statusDocument() }
            })
        } catch {
            shutdownLoops()
            configurator.teardown()
            throw error
        }
        logger.info("tunnel up", metadata: ["device": "\(config.tunnel.name)", "mtu": "\(plan.tunnelMTU)",
                                           "local": "\(config.uplink.address)",
                                           "peers": "\(config.peers.map { "\($0.name)=\($0.remote)" }.joined(separator: ","))"])
    }

    /// One capture per LAN interface with ghost hosts, with a responder that knows them.
    private func openProxyARPResponders() throws -> [(String, PacketCapture, ProxyARPResponder)] {
        var options = ProxyARPResponder.Options()
        options.answerProbes = config.proxyARP.answerProbes
        options.yieldOnConflict = config.proxyARP.onConflict == .yield
        let byInterface = Dictionary(grouping: config.ghostHosts, by: \.interface)
        return try byInterface.keys.sorted().map { interface in
            let ghosts = byInterface[interface]!
            guard let mac = SystemProbe.interfaceMAC(interface) else {
                throw SystemError("find the MAC address of \(interface)", errno: ENODEV)
            }
            var settings = PacketCapture.Settings(snapshotLength: 128)
            settings.bufferBytes = 1 << 20
            let filter = CaptureFilter.proxyARP(ghosts: ghosts.map(\.address))
            let capture = try PacketCapture(interface: interface, filter: filter, settings: settings)
            var responder = ProxyARPResponder(interfaceMAC: mac, options: options)
            let now = monotonicSeconds()
            for ghost in ghosts {
                responder.add(ghost.address, mac: ghost.mac, now: now)
                logger.info("answering ARP for ghost host", metadata: [
                    "ghost": "\(ghost.address)", "interface": "\(interface)", "mac": "\(ghost.mac ?? mac)",
                    "answer-probes": "\(options.answerProbes)", "on-conflict": "\(config.proxyARP.onConflict.rawValue)"])
            }
            return (interface, capture, responder)
        }
    }

    /// Stops the loops and undoes every kernel change.
    public func shutdown() {
        shutdownLoops()
        configurator?.teardown()
        configurator = nil
        logger.info("stopped; every change to the kernel was undone")
    }

    private func shutdownLoops() {
        stop.stop()
        for thread in threads { thread.join() }
        threads.removeAll()
        controlSocket?.close()
        controlSocket = nil
        protocolClaim = nil
    }

    public var status: GatewayStatus {
        GatewayStatus(version: options.version, pid: getpid(), configFile: options.configFile,
                      startedAt: startedAt.timeIntervalSince1970, uptimeSeconds: Date().timeIntervalSince(startedAt),
                      config: config, tunnelMTU: plan.tunnelMTU, counters: counters, paths: paths, now: monotonicSeconds())
    }

    private func statusDocument() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(status)) ?? Data("{}".utf8))
    }

    private func createRuntimeDirectory() throws {
        let path = options.runtimeDirectory
        if mkdir(path, 0o750) != 0 && errno != EEXIST {
            throw SystemError.fromErrno("create the runtime directory \(path)")
        }
    }
}

extension SystemProbe {
    /// Every IPv4 address configured on this machine (in this network namespace).
    public static func localAddresses() -> [IPv4Address] {
        interfaces().values.flatMap(\.addresses)
    }
}
