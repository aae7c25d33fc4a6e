import ArgumentParser
import IPIPCore

@main
struct Ipipd: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "ipipd",
        abstract: "A user-space IP-in-IP (RFC 2003) and 6in4 (RFC 4213) tunnel gateway with proxy ARP and proxy NDP for ghost hosts.",
        discussion: """
        ipipd makes a remote machine appear on a local LAN through an IP-in-IP tunnel (IP protocol 4), \
        without the kernel's ipip module, and carries IPv6 through the same IPv4 tunnel as protocol 41 \
        (what Linux's sit does) — or, per peer, over UDP (Foo-over-UDP and GUE, as Linux's fou: through \
        NATs and firewalls that pass only UDP, spread over ECMP paths), and both families inside IPv6 over \
        an IPv6-only underlay (RFC 2473, as ip6tnl). It reads inner packets from a TUN device, wraps them \
        and sends them to the peer that the longest matching prefix names; it captures protocol-4 and \
        protocol-41 packets (and UDP to its fou ports) on the uplink (a packet socket whose filter libpcap compiles; frames the NIC's GRO merged are taken \
        whole), checks and unwraps them, and hands the inner packet back to the kernel's routing; and it answers ARP (IPv4) and Neighbor Solicitations (IPv6, proxy NDP) on the LAN for \
        "ghost hosts", the addresses of remote machines.

        Everything comes from one YAML file (default \(ConfigOptions.defaultPath)). Run `ipipd check` to \
        validate it, `ipipd plan` to see every change `ipipd run` would make to the kernel, then `ipipd run` \
        as root.

        Exit status: 0 on success, 1 when the config is invalid or the gateway cannot run, 64 on a usage error. \
        ipipd(8) and ipipd.yaml(5) describe the commands and the config file.
        """,
        version: version,
        subcommands: [Check.self, Plan.self, Run.self, Reload.self, Status.self, Version.self]
    )
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print ipipd's version.")

    func run() {
        print("ipipd \(Ipipd.version)")
    }
}
