#!/usr/bin/env python3
"""Writes the byte fixtures the codec tests read, built by scapy (an implementation independent of
ipipd's codecs). Run from this folder: `python3 make_fixtures.py` (scapy pinned: pip install scapy==2.6.1).
Each fixture is one packet as lowercase hex on one line; FIXTURES.md lists what each one is."""
from scapy.all import Ether, Dot1Q, ARP, IP, ICMP, UDP, TCP, Raw, raw, fragment

A, B, C, GHOST = "198.51.100.37", "203.0.113.86", "203.0.113.20", "203.0.113.87"
MAC_B, MAC_C = "02:00:00:00:00:86", "02:00:00:00:00:20"

inner_echo = IP(src=C, dst=GHOST, ttl=63, id=0x1234, flags="DF", tos=0x02) / ICMP(type=8, id=0x77, seq=3) / Raw(b"ipipd-fixture-payload")

fixtures = {
    # An inner ICMP echo request (ECT(0), DF) and the same packet encapsulated by an RFC 2003 tunnel.
    "ipv4-icmp-echo": inner_echo,
    "ipip-encapsulated-echo": IP(src=B, dst=A, ttl=64, id=0x0100, flags="DF", proto=4, tos=0x02) / inner_echo,
    # IPv4 with options (IHL 6: a 4-byte NOP/NOP/NOP/EOL option block) carrying UDP.
    "ipv4-with-options-udp": IP(src=A, dst=C, ttl=17, options=b"\x01\x01\x01\x00") / UDP(sport=4000, dport=5000) / Raw(b"x" * 12),
    # A middle fragment: MF set, offset 1480 bytes.
    "ipv4-fragment": IP(src=A, dst=B, id=0xBEEF, flags="MF", frag=185, proto=17) / Raw(b"f" * 64),
    # ICMP errors: fragmentation needed (next-hop MTU 1380) and time exceeded, each quoting a packet.
    "icmp-frag-needed": IP(src="198.51.100.1", dst=A) / ICMP(type=3, code=4, nexthopmtu=1380) / IP(src=A, dst=B, flags="DF", proto=4, len=1500) / Raw(b"\x45\x00\x05\xc8" + b"\x00" * 4),
    "icmp-time-exceeded": IP(src="198.51.100.1", dst=C) / ICMP(type=11, code=0) / IP(src=C, dst=GHOST, ttl=1, proto=6) / Raw(b"\x00" * 8),
    "icmp-echo-reply": IP(src=GHOST, dst=C) / ICMP(type=0, id=0x77, seq=3) / Raw(b"pong"),
    # Ethernet II: plain and 802.1Q-tagged (VLAN 42) frames carrying the encapsulated packet.
    "ether-ipip": Ether(src=MAC_B, dst="02:00:00:00:00:37") / IP(src=B, dst=A, proto=4) / IP(src=C, dst=GHOST) / ICMP(),
    "ether-vlan-ipip": Ether(src=MAC_B, dst="02:00:00:00:00:37") / Dot1Q(vlan=42, prio=5) / IP(src=B, dst=A, proto=4) / IP(src=C, dst=GHOST) / ICMP(),
    # ARP: a request, a reply, a gratuitous announcement, an RFC 5227 probe, and a non-Ethernet one.
    "arp-request": Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC_C, psrc=C, pdst=GHOST),
    "arp-reply": Ether(src=MAC_B, dst=MAC_C) / ARP(op=2, hwsrc=MAC_B, psrc=GHOST, hwdst=MAC_C, pdst=C),
    "arp-gratuitous": Ether(src=MAC_B, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC_B, psrc=GHOST, pdst=GHOST),
    "arp-probe": Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC_C, psrc="0.0.0.0", pdst=GHOST),
    "arp-bad-hwtype": Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwtype=6, hwsrc=MAC_C, psrc=C, pdst=GHOST),
}

# TCP segmentation offload: a 3000-byte TCP/IPv4 "super-packet" (timestamps option, FIN+PSH+ACK) as the
# kernel hands it to a TUN device with TSO, and the three segments (MSS 1200) a NIC would cut from it:
# IP identification counting up, sequence advancing, FIN and PSH on the last segment only.
payload = bytes(range(256)) * 11 + bytes(184)
def tcp_packet(ip_id, seq, flags, data):
    return IP(src=C, dst=GHOST, ttl=63, id=ip_id, flags="DF") / TCP(sport=40000, dport=5201, seq=seq, ack=77, flags=flags, window=500, options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / Raw(data)
fixtures["tcp-super-packet"] = tcp_packet(0x2000, 1000, "FPA", payload)
for index in range(3):
    fixtures[f"tcp-segment-{index}"] = tcp_packet(0x2000 + index, 1000 + 1200 * index, "FPA" if index == 2 else "A", payload[1200 * index:1200 * (index + 1)])

# Checksum offload: a UDP packet whose checksum field holds only the pseudo-header sum (how the kernel
# leaves it for the device to complete), and the same packet with the checksum scapy computes.
udp_complete = IP(raw(IP(src=C, dst=GHOST, ttl=63) / UDP(sport=4000, dport=5000) / Raw(b"offload" * 9)))
def words(address):
    octets = [int(octet) for octet in address.split(".")]
    return [octets[0] << 8 | octets[1], octets[2] << 8 | octets[3]]
pseudo = sum(words(udp_complete.src) + words(udp_complete.dst)) + 17 + udp_complete[UDP].len
while pseudo >> 16:
    pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
udp_partial = udp_complete.copy()
udp_partial[UDP].chksum = pseudo
fixtures["udp-checksum-partial"] = udp_partial
fixtures["udp-checksum-complete"] = udp_complete

# An outer packet B → A and the four fragments scapy cuts it into (fragsize 304): reassembly must give
# back exactly the whole packet (with flags and offset cleared), whatever the order of the pieces.
fragmented_whole = IP(src=B, dst=A, id=0xF4A6, ttl=64, proto=4) / IP(src=C, dst=GHOST, ttl=63) / ICMP(id=0xF4A6) / Raw(b"f" * 1000)
fixtures["ipip-fragmented-whole"] = fragmented_whole
for index, piece in enumerate(fragment(fragmented_whole, fragsize=304)):
    fixtures[f"ipip-fragment-{index}"] = piece

# IPv6 (issue 15): an inner ICMPv6 echo (ECT(0), a flow label), the same packet in a 6in4 (protocol 41)
# outer header, the ICMPv6 errors ipipd writes about it (source :: until the ICMPv6 socket picks one), and
# Neighbor Discovery: a solicitation for the ghost, a DAD probe, and the advertisements a proxy sends.
from scapy.all import IPv6, ICMPv6EchoRequest, ICMPv6PacketTooBig, ICMPv6DestUnreach, ICMPv6ND_NS, ICMPv6ND_NA, \
    ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr
C6, GHOST6 = "2001:db8:b::20", "2001:db8:b::87"
inner_echo6 = IPv6(src=C6, dst=GHOST6, hlim=63, tc=0x02, fl=0x12345) / ICMPv6EchoRequest(id=0x77, seq=3) / Raw(b"ipipd-fixture-payload")
fixtures["ipv6-icmpv6-echo"] = inner_echo6
fixtures["sit-encapsulated-echo"] = IP(src=B, dst=A, ttl=63, id=0x0100, flags="DF", proto=41, tos=0x02) / inner_echo6
fixtures["ether-sit"] = Ether(src=MAC_B, dst="02:00:00:00:00:37") / IP(src=B, dst=A, proto=41) / inner_echo6
fixtures["icmpv6-packet-too-big"] = IPv6(src="::", dst=C6, hlim=64) / ICMPv6PacketTooBig(mtu=1380) / inner_echo6
fixtures["icmpv6-address-unreachable"] = IPv6(src="::", dst=C6, hlim=64) / ICMPv6DestUnreach(code=3) / inner_echo6
solicited_node, solicited_mac = "ff02::1:ff00:87", "33:33:ff:00:00:87"
fixtures["ndp-ns"] = Ether(src=MAC_C, dst=solicited_mac) / IPv6(src=C6, dst=solicited_node, hlim=255) / ICMPv6ND_NS(tgt=GHOST6) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_C)
fixtures["ndp-ns-dad"] = Ether(src=MAC_C, dst=solicited_mac) / IPv6(src="::", dst=solicited_node, hlim=255) / ICMPv6ND_NS(tgt=GHOST6)
fixtures["ndp-na-solicited"] = Ether(src=MAC_B, dst=MAC_C) / IPv6(src=GHOST6, dst=C6, hlim=255) / ICMPv6ND_NA(tgt=GHOST6, R=0, S=1, O=0) / ICMPv6NDOptDstLLAddr(lladdr=MAC_B)
fixtures["ndp-na-unsolicited"] = Ether(src=MAC_B, dst="33:33:00:00:00:01") / IPv6(src=GHOST6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=GHOST6, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=MAC_B)

# TCP segmentation offload for IPv6 (issue 24, TSO6): the same 3000-byte payload over TCP/IPv6 (traffic
# class ECT(0), a flow label) as the kernel hands it over, and the three segments at MSS 1200: payload
# length and sequence per segment, FIN and PSH on the last only; IPv6 has no identification to count.
def tcp6_packet(seq, flags, data):
    return IPv6(src=C6, dst=GHOST6, hlim=63, tc=0x02, fl=0x54321) / TCP(sport=40000, dport=5201, seq=seq, ack=77, flags=flags, window=500, options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / Raw(data)
fixtures["tcp6-super-packet"] = tcp6_packet(1000, "FPA", payload)
for index in range(3):
    fixtures[f"tcp6-segment-{index}"] = tcp6_packet(1000 + 1200 * index, "FPA" if index == 2 else "A", payload[1200 * index:1200 * (index + 1)])

# UDP encapsulations and an IPv6 underlay (issue 25), as Linux sends them: FOU (the inner packet right
# behind UDP, no checksum over IPv4 by default, one with encap-csum), GUE variant 0 (a 4-byte header
# naming the inner protocol), and ip6tnl (IPv6 outer, the Tunnel Encapsulation Limit option 4 with a PadN
# in a Destination Options header, then the inner packet); the outer IPv6 packets' flow label is the
# sender's hash (scapy's 0 here: tests compare it apart). And fragments of an ip6tnl packet as the
# kernel's ip6_fragment cuts them, and a router's "packet too big" about one.
from scapy.all import IPv6ExtHdrDestOpt, HBHOptUnknown, PadN, fragment6, IPv6ExtHdrFragment
A6, B6 = "2001:db8:a::37", "2001:db8:b::86"
fixtures["fou-encapsulated-echo"] = IP(src=B, dst=A, ttl=63, id=0x0100, flags="DF", tos=0x02) / UDP(sport=4242, dport=5555, chksum=0) / inner_echo
fixtures["fou-encapsulated-echo-csum"] = IP(src=B, dst=A, ttl=63, id=0x0100, flags="DF", tos=0x02) / UDP(sport=4242, dport=5555) / inner_echo
fixtures["gue-encapsulated-echo6"] = IP(src=B, dst=A, ttl=63, id=0x0100, flags="DF", tos=0x02) / UDP(sport=4242, dport=6080, chksum=0) / Raw(b"\x00\x29\x00\x00") / inner_echo6
tel = IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b"\x04"), PadN(optdata=b"\x00")])
fixtures["ip6tnl-encapsulated-echo"] = IPv6(src=B6, dst=A6, hlim=63, tc=0x02) / tel / inner_echo
fixtures["ip6tnl-encapsulated-echo6-nolimit"] = IPv6(src=B6, dst=A6, hlim=63, tc=0x02, nh=41) / inner_echo6
fixtures["fou6-encapsulated-echo"] = IPv6(src=B6, dst=A6, hlim=63, tc=0x02) / tel / UDP(sport=4242, dport=5555) / inner_echo
big6 = IPv6(src=B6, dst=A6, hlim=64) / IPv6ExtHdrFragment(id=0xABCD0001) / tel / IP(src=C, dst=GHOST, ttl=63) / ICMP(id=0x6464) / Raw(b"g" * 1300)
fixtures["ip6tnl-fragmented-whole"] = IPv6(src=B6, dst=A6, hlim=64) / tel / IP(src=C, dst=GHOST, ttl=63) / ICMP(id=0x6464) / Raw(b"g" * 1300)
for index, piece in enumerate(fragment6(big6, 600)):
    fixtures[f"ip6tnl-fragment-{index}"] = piece
# A router's "packet too big" (MTU 1300) to A about an outer ip6tnl packet A sent to B, quoting it whole.
sent = IPv6(src=A6, dst=B6, hlim=64) / tel / IP(src=GHOST, dst=C, ttl=63, id=0x4242) / ICMP(id=0x77, seq=9) / Raw(b"h" * 1352)
fixtures["icmpv6-packet-too-big-outer"] = IPv6(src="2001:db8:a::1", dst=A6, hlim=64) / ICMPv6PacketTooBig(mtu=1300) / raw(sent)[:1232]
# Other routers' errors about outer ip6tnl packets A sent: "address unreachable" and "hop limit exceeded"
# about one carrying IPv6 (relayed to its source, RFC 2473 §8.1), "address unreachable" about one carrying IPv4.
from scapy.all import ICMPv6TimeExceeded
sent6 = IPv6(src=A6, dst=B6, hlim=64) / tel / IPv6(src=GHOST6, dst=C6, hlim=63) / ICMPv6EchoRequest(id=0x78, seq=1) / Raw(b"i" * 56)
fixtures["icmpv6-unreachable-outer6"] = IPv6(src="2001:db8:a::1", dst=A6, hlim=64) / ICMPv6DestUnreach(code=3) / raw(sent6)
fixtures["icmpv6-time-exceeded-outer6"] = IPv6(src="2001:db8:a::1", dst=A6, hlim=64) / ICMPv6TimeExceeded(code=0) / raw(sent6)
fixtures["icmpv6-unreachable-outer4"] = IPv6(src="2001:db8:a::1", dst=A6, hlim=64) / ICMPv6DestUnreach(code=3) / raw(sent)[:400]

for name, packet in fixtures.items():
    with open(f"{name}.hex", "w") as f:
        f.write(raw(packet).hex() + "\n")
print(f"wrote {len(fixtures)} fixtures")
