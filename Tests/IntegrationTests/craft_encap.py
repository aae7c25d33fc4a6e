#!/usr/bin/env python3
"""Hostile and hand-made FOU, GUE and IPv6-underlay packets for the tests of issue 25, built by scapy
(not by ipipd's codecs).

Usage: craft_encap.py SCENARIO IFACE DST_MAC
Sent from router R's interface facing machine B (the seed's LAN), with the outer source forged to be
machine A's endpoint (a configured peer), so that only what the scenario changes is wrong; "tel-zero" is
sent from host C to machine B (its route to A's ghost address). Each scenario prints how many packets
of each kind it sent, one `name count` per line, so the test can hold the counters to them.
Addresses: A 198.51.100.37 / 2001:db8:a::37, B 203.0.113.86 / 2001:db8:b::86, C 203.0.113.20 / 2001:db8:b::20.
"""
import sys
import time

from scapy.all import (ICMP, IP, UDP, Ether, fragment, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, HBHOptUnknown, PadN, ICMPv6EchoRequest, Raw, fragment6, raw, sendp)

A, B, C, GHOST = "198.51.100.37", "203.0.113.86", "203.0.113.20", "203.0.113.87"
A6, B6, C6, GHOST6 = "2001:db8:a::37", "2001:db8:b::86", "2001:db8:b::20", "2001:db8:b::87"
scenario, iface, dst_mac = sys.argv[1], sys.argv[2], sys.argv[3]

# What A's tunnel may send B: from its ghost address to host C.
echo = IP(src=GHOST, dst=C, id=1) / ICMP(id=7) / Raw(b"encapsulations")
echo6 = IPv6(src=GHOST6, dst=C6) / ICMPv6EchoRequest(id=7) / Raw(b"encapsulations")
tel = IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b"\x04"), PadN(optdata=b"\x00")])
counts = {}


def send(name, packets, gap=0.01):
    for packet in packets:
        sendp(Ether(dst=dst_mac) / packet, iface=iface, verbose=0)
        time.sleep(gap)
    counts[name] = counts.get(name, 0) + len(packets)


def udp_raw(sport, dport, payload, length=None, checksum=0):
    """A UDP header written by hand (scapy would mend a wrong length), then `payload`."""
    length = 8 + len(payload) if length is None else length
    return Raw(sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + length.to_bytes(2, "big") + checksum.to_bytes(2, "big") + payload)


if scenario == "fou-hostile":
    # B listens on 5555 (IPv4 inside) and 5556 (IPv6 inside) and takes FOU from A only.
    send("delivered", [IP(src=A, dst=B) / UDP(sport=40000, dport=5555) / echo])
    send("malformed-outer", [
        IP(src=A, dst=B, proto=17) / Raw(b"\x9c\x40\x15\xb3"),                       # a UDP header cut short
        IP(src=A, dst=B, proto=17) / udp_raw(40000, 5555, raw(echo), length=4000),   # UDP length beyond the packet
        IP(src=A, dst=B, proto=17) / udp_raw(40000, 5555, raw(echo), length=6),      # UDP length below its header
        IP(src=A, dst=B, proto=17) / udp_raw(40000, 5555, raw(echo), checksum=0x1234),  # a checksum that does not verify
    ])
    send("encapsulation-mismatch", [
        IP(src=A, dst=B) / UDP(sport=40000, dport=5555) / echo6,                      # IPv6 to the port for IPv4
        IP(src=A, dst=B) / UDP(sport=40000, dport=5556) / echo,                       # and the other way round
        IP(src=A, dst=B, proto=4) / echo,                                             # plain IP-in-IP from a FOU peer
    ])
    send("malformed-inner", [IP(src=A, dst=B) / UDP(sport=40000, dport=5555) / Raw(raw(echo)[:12])])
    # Later fragments of a UDP datagram carry no port: captured, held, and dropped once complete.
    whole = IP(src=A, dst=B, id=0x5555) / UDP(sport=40000, dport=5555) / IP(src=GHOST, dst=C) / ICMP() / Raw(b"f" * 1200)
    send("fragmented-delivered", list(reversed(fragment(whole, fragsize=600))))
elif scenario == "gue-hostile":
    # B listens for GUE on 6080 and takes it from A only.
    def gue(first, proto, flags=b"\x00\x00", extra=b"", inner=echo):
        return IP(src=A, dst=B) / UDP(sport=40000, dport=6080) / Raw(bytes([first, proto]) + flags + extra + raw(inner))
    send("delivered", [gue(0x00, 4), gue(0x00, 41, inner=echo6),
                       gue(0x01, 4, flags=b"\x00\x01", extra=b"\x00\x00\x00\x00"),           # the private flag, no private flags
                       IP(src=A, dst=B) / UDP(sport=40000, dport=6080) / echo])              # variant 1: direct IPv4
    send("unsupported-gue", [
        gue(0x80, 4), gue(0xC0, 4),                                                  # versions 2 and 3
        gue(0x20, 4),                                                                # a control message
        gue(0x00, 4, flags=b"\x80\x00"),                                             # an unknown flag
        gue(0x01, 4, flags=b"\x00\x01", extra=b"\x80\x00\x00\x00"),                  # remote checksum offload asked
        gue(0x00, 47),                                                               # GRE inside
        IP(src=A, dst=B) / UDP(sport=40000, dport=6080) / Raw(b"\x55" + raw(echo)[1:]),  # variant 1, version 5 inside
    ])
    send("malformed-outer", [
        IP(src=A, dst=B) / UDP(sport=40000, dport=6080) / Raw(b"\x00\x04"),           # a GUE header cut short
        gue(0x1F, 4),                                                                # 124 bytes of options claimed
    ])
elif scenario == "ip6tnl-hostile":
    # B's underlay is IPv6; it takes next header 4 and 41 from A, behind whatever extension headers.
    def outer(*headers, inner=echo):
        packet = IPv6(src=A6, dst=B6)
        for header in headers:
            packet = packet / header
        return packet / inner
    send("delivered", [
        outer(tel), outer(inner=echo),
        outer(IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b"\x00"), PadN(optdata=b"\x00")])),   # limit 0: not ours to enforce
        outer(IPv6ExtHdrHopByHop(), tel, inner=echo6),
        outer(IPv6ExtHdrRouting(segleft=0, addresses=[]), inner=echo6),
    ])
    send("outer-options", [
        outer(IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x5E, optdata=b"\x00\x00\x00\x00")])),          # an option to discard
        outer(IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0xC2, optdata=b"\x00\x00\x00\x00")])),          # and one to answer
        outer(IPv6ExtHdrRouting(segleft=1, addresses=["2001:db8:a::99"])),                                    # a routing header in use
        outer(*[IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])] * 9),                        # nine headers
    ])
    send("malformed-outer", [
        outer(tel, IPv6ExtHdrHopByHop()),                                           # Hop-by-Hop out of place
        IPv6(src=A6, dst=B6, nh=60) / Raw(b"\x04\x05\x04\x01\x04\x01\x01\x00"),     # a header longer than the packet
        IPv6(src=A6, dst=B6, nh=4, plen=0) / echo,                                   # a jumbogram's payload length
    ])
    # Outer fragments: a whole train (delivered once), and one whose pieces overlap.
    big = outer(IPv6ExtHdrFragment(id=0x11), tel, inner=IP(src=GHOST, dst=C) / ICMP(id=0x66) / Raw(b"g" * 1300))
    send("fragmented-delivered", list(reversed(fragment6(big, 600))))
    bad = fragment6(outer(IPv6ExtHdrFragment(id=0x22), tel, inner=IP(src=GHOST, dst=C) / ICMP(id=0x67) / Raw(b"o" * 1300)), 600)
    forged = bad[1].copy()
    forged[IPv6ExtHdrFragment].offset -= 2                                          # 16 bytes into the first piece
    send("fragment-overlap", [bad[0], forged])
elif scenario == "tel-zero":
    # From host C to A's ghost address through B: an IPv6 packet that may enter no more tunnels.
    zero = IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=b"\x00"), PadN(optdata=b"\x00")])
    send("encapsulation-limit", [IPv6(src=C6, dst=GHOST6) / zero / ICMPv6EchoRequest(id=9) / Raw(b"limit")])
else:
    sys.exit(f"unknown scenario {scenario}")

for name, count in counts.items():
    print(name, count)
