/// A reason `run` would refuse to start with a config on this system, found by the plan before any step
/// is taken (rather than by `run` half-way, which would undo what it did). Tests ask for the case;
/// admins read the description, which says what to do about it.
public enum PlanProblem: Sendable, Equatable, CustomStringConvertible {
    case uplinkMissing(interface: String)
    case uplinkAddressNotAssigned(address: IPAddress, interface: String)
    /// The tunnel carries IPv6, whose least MTU is 1280, and its MTU is below.
    case tunnelMTUBelowIPv6Minimum(mtu: Int)
    case ipv6TurnedOff
    /// IPv6 is disabled by a sysctl (e.g. net.ipv6.conf.all.disable_ipv6 = 1).
    case ipv6Disabled(sysctl: String, tunnel: String)
    /// The endpoint lies inside a tunneled prefix and no route outside the tunnel leads to it.
    case endpointWithoutRouteToPin(peer: String, endpoint: IPAddress)
    /// The only route to the endpoint goes through the tunnel itself.
    case endpointRoutedIntoTunnel(peer: String, endpoint: IPAddress)
    /// Another socket holds a `fou` port on the uplink address (or on every address of its family).
    case udpPortInUse(port: UInt16, address: IPAddress, holder: String)
    /// A route the kernel would refuse to add as "File exists": `existing` is how `ip route` shows it.
    case routeInTheWay(prefix: IPPrefix, existing: String, peer: String)
    case ghostInterfaceMissing(interface: String)
    /// The ghost address is one of this machine's own on its interface.
    case ghostAssignedLocally(address: IPAddress, interface: String)

    public var description: String {
        switch self {
        case .uplinkMissing(let interface):
            "uplink interface \(interface) does not exist here"
        case let .uplinkAddressNotAssigned(address, interface):
            "\(address) is not assigned to \(interface); the uplink address must be one of its addresses "
                + "(or, for an HA pair whose other box holds it, set uplink.standby-when-absent: yes)"
        case .tunnelMTUBelowIPv6Minimum(let mtu):
            "the tunnel carries IPv6 but its MTU is \(mtu), below IPv6's least 1280 (RFC 8200 §5): "
                + "the uplink needs an MTU of 1300 or more, or set tunnel.mtu"
        case .ipv6TurnedOff:
            "the config routes IPv6, but this kernel has IPv6 turned off (no /proc/sys/net/ipv6)"
        case let .ipv6Disabled(sysctl, tunnel):
            "the config carries IPv6, but IPv6 is disabled on this machine (\(sysctl) = 1): \(tunnel) could take no "
                + "IPv6 address or route; set it to 0 (sysctl -w \(sysctl)=0) or leave the IPv6 prefixes and tunnel.address6 out"
        case let .endpointWithoutRouteToPin(peer, endpoint):
            "peer \(peer): endpoint \(endpoint) lies inside a tunneled prefix and there is no route to it outside the tunnel to pin"
        case let .endpointRoutedIntoTunnel(peer, endpoint):
            "peer \(peer): the only route to endpoint \(endpoint) goes through the tunnel itself (a looping tunnel)"
        case let .routeInTheWay(prefix, existing, peer):
            "a route to \(prefix) already exists (`\(Self.ip(prefix)) route show \(prefix)`: \(existing)): run could not add peer \(peer)'s "
                + "route through the tunnel; remove it (\(Self.ip(prefix)) route del \(prefix)) or take the prefix out of the config"
        case let .udpPortInUse(port, address, holder):
            "UDP port \(port) is already bound on \(address) (\(holder)): run could not claim it for tunnel packets "
                + "(`ss -ulnp 'sport = :\(port)'` shows who holds it); free it or choose another port in `fou`"
        case .ghostInterfaceMissing(let interface):
            "ghost-host interface \(interface) does not exist here"
        case let .ghostAssignedLocally(address, interface):
            "ghost host \(address) is assigned to \(interface) on this machine: the kernel "
                + "answers \(address.isIPv6 ? "Neighbor Solicitations" : "ARP") for it itself, and traffic to it would never enter the tunnel"
        }
    }

    private static func ip(_ prefix: IPPrefix) -> String { prefix.isIPv6 ? "ip -6" : "ip" }
}
