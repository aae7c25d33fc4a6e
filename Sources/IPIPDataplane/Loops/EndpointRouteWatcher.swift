import IPIPCore

/// Watches the kernel's route to every peer endpoint; one netlink socket, owned by the encapsulator's
/// thread.
struct EndpointRouteWatcher {
    let tunnel: String
    let endpoints: [IPv4Address]
    private let netlink = try? NetlinkSocket()

    init(tunnel: String, endpoints: [IPv4Address]) {
        self.tunnel = tunnel
        self.endpoints = endpoints
    }

    /// For each endpoint: true when the kernel would send packets for it into the tunnel.
    func check() -> [Bool] {
        let tunnelIndex = SystemProbe.interfaceIndex(tunnel)
        return endpoints.map { endpoint in
            guard let netlink, let tunnelIndex, let route = try? netlink.route(to: endpoint) else { return false }
            return route.outputInterface == tunnelIndex
        }
    }
}
