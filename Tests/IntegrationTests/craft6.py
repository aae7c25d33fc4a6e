#!/usr/bin/env python3
"""IPv6 packets for the IPv6 tests, built by scapy (not by ipipd's codecs).

Usage: craft6.py SCENARIO IFACE DST_MAC [EXTRA]
Protocol-41 scenarios are sent from router R's interface facing gateway B in the two-site lab, with the
outer source forged to be gateway A's endpoint (a configured peer) unless the scenario is about that.
NDP scenarios are sent from host C (or D) on the seed lab's LAN; "ns-cases" prints, as JSON, the
Neighbor Advertisements each solicitation drew within a second; "reflector-cases" the Ethernet
destinations of the ARP replies and advertisements that each request naming a group link-layer
address, coming from a martian source or tagged for another VLAN drew (IPv4 ghost 203.0.113.87,
C 203.0.113.20).
Addresses: gateway A 198.51.100.37, gateway B 203.0.113.86, h1 2001:db8:1::10, h2 2001:db8:2::10,
C 2001:db8:b::20, the ghost 2001:db8:b::87.
"""
import functools
import json
import sys
import time

from scapy.all import (ARP, Dot1Q, ICMPv6EchoRequest, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, RouterAlert, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
                       IP, IPv6, Ether, Raw, AsyncSniffer, get_if_hwaddr, in6_getnsma, in6_getnsmac, inet_pton,
                       inet_ntop, sendp)
import socket

A, B, STRANGER = "198.51.100.37", "203.0.113.86", "198.51.100.99"
H1, H2 = "2001:db8:1::10", "2001:db8:2::10"
C, GHOST = "2001:db8:b::20", "2001:db8:b::87"
scenario, iface, dst_mac = sys.argv[1], sys.argv[2], sys.argv[3]


def to_b(inner, source=A, **fields):
    return IP(src=source, dst=B, proto=41, **fields) / inner


def send(packets, gap=0.02):
    for packet in packets:
        sendp(Ether(dst=dst_mac) / packet, iface=iface, verbose=0)
        time.sleep(gap)


def echo(tag, **fields):
    return IPv6(src=H1, dst=H2, **fields) / ICMPv6EchoRequest(id=0x6600 | tag) / Raw(b"six-in-four")


if scenario == "malformed":
    good = bytes(echo(1))
    send([
        to_b(Raw(bytes(IP(src="192.0.2.10", dst="192.0.2.130") / Raw(b"v4")))),   # IPv4 inside protocol 41
        to_b(Raw(good[:30])),                                                      # truncated IPv6 header
        to_b(Raw(good[:4] + b"\x04\x00" + good[6:])),                               # payload length > data
        to_b(Raw(good + b"trailing")),                                             # payload length < data
    ])
elif scenario == "non-peer":
    send([to_b(echo(2), source=STRANGER)])
elif scenario == "forged-inner":
    send([to_b(IPv6(src=source, dst=destination) / ICMPv6EchoRequest(id=0x6603)) for source, destination in [
        ("2001:db8:3::1", H2),    # source-not-allowed: not behind A
        (H2, H2),                 # source-not-allowed: h2's own side
        ("2001:db8:2::1", H2),    # martian-source: B's own LAN address
        ("::", H2),               # martian-source
        ("::1", H2),              # martian-source
        ("ff02::1", H2),          # martian-source (multicast)
        (H1, "ff02::1"),          # martian-destination (multicast)
        (H1, "::1"),              # martian-destination
    ]])
elif scenario == "hop-limit":
    send([to_b(echo(5, hlim=5)), to_b(echo(1, hlim=1))])
elif scenario == "ecn":
    send([
        to_b(echo(0xA, tc=0x00), tos=0x03),   # inner Not-ECT, outer CE: dropped
        to_b(echo(0xB, tc=0x02), tos=0x03),   # inner ECT(0), outer CE: inner becomes CE
    ])
elif scenario == "extension-headers":
    # Forwarded by B's kernel as received unless ipipd drops them: RH0 (RFC 5095) and a chain of 50.
    def tagged(tag, headers):
        return IPv6(src=H1, dst=H2) / headers / ICMPv6EchoRequest(id=0x6600 | tag) / Raw(b"six-in-four")
    send([
        to_b(tagged(0x10, IPv6ExtHdrRouting(type=0, addresses=["2001:db8:2::10"]))),   # source-route
        to_b(tagged(0x11, IPv6ExtHdrHopByHop(options=[RouterAlert()]))),                # acceptable
        to_b(tagged(0x12, functools.reduce(lambda a, b: a / b, [IPv6ExtHdrDestOpt() for _ in range(50)]))),  # extension-headers
        to_b(tagged(0x13, IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt())),                  # acceptable
    ])
elif scenario == "ns-cases":
    # From C: each case on its own, the advertisements it drew recorded.
    my_mac = get_if_hwaddr(iface)
    group = inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, GHOST)))
    group_mac = in6_getnsmac(inet_pton(socket.AF_INET6, GHOST))

    def ns(target=GHOST, source=C, hlim=255, lladdr=True, checksum=None):
        packet = IPv6(src=source, dst=group, hlim=hlim) / ICMPv6ND_NS(tgt=target)
        if lladdr:
            packet /= ICMPv6NDOptSrcLLAddr(lladdr=my_mac)
        if checksum is not None:
            packet[ICMPv6ND_NS].cksum = checksum
        return Ether(src=my_mac, dst=group_mac) / packet

    cases = {
        "valid": ns(),
        "valid-without-lladdr": ns(lladdr=False),
        "dad": ns(source="::", lladdr=False),
        "hop-limit-64": ns(hlim=64),
        "bad-checksum": ns(checksum=0x1234),
        "not-a-ghost": ns(target="2001:db8:b::99"),
        "multicast-target": ns(target="ff02::1"),
    }
    results = {}
    for name, frame in cases.items():
        sniffer = AsyncSniffer(iface=iface, filter="icmp6 and ip6[40] = 136", store=True)
        sniffer.start()
        time.sleep(0.3)
        sendp(frame, iface=iface, verbose=0)
        time.sleep(1.0)
        answers = sniffer.stop() or []
        results[name] = [{
            "src": answer[IPv6].src, "dst": answer[IPv6].dst, "hlim": answer[IPv6].hlim,
            "eth_dst": answer[Ether].dst, "eth_src": answer[Ether].src,
            "target": answer[ICMPv6ND_NA].tgt, "R": answer[ICMPv6ND_NA].R, "S": answer[ICMPv6ND_NA].S,
            "O": answer[ICMPv6ND_NA].O,
            "lladdr": answer[ICMPv6NDOptDstLLAddr].lladdr if ICMPv6NDOptDstLLAddr in answer else None,
        } for answer in answers if answer[Ether].src != my_mac]
    print(json.dumps(results))
elif scenario == "claim":
    # From D: an unsolicited advertisement claiming the ghost address with D's own MAC.
    my_mac = get_if_hwaddr(iface)
    sendp(Ether(src=my_mac, dst="33:33:00:00:00:01") / IPv6(src=GHOST, dst="ff02::1", hlim=255)
          / ICMPv6ND_NA(tgt=GHOST, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=my_mac), iface=iface, verbose=0)
elif scenario == "reflector-cases":
    # From C: requests for the ghosts that no host can send; a reply would go where the forger points.
    my_mac = get_if_hwaddr(iface)
    group = inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, GHOST)))
    group_mac = in6_getnsmac(inet_pton(socket.AF_INET6, GHOST))

    def ns(source=C, lladdr=None):
        return (Ether(src=my_mac, dst=group_mac) / IPv6(src=source, dst=group, hlim=255) / ICMPv6ND_NS(tgt=GHOST)
                / ICMPv6NDOptSrcLLAddr(lladdr=lladdr or my_mac))

    def arp(sender_mac=None, sender_ip="203.0.113.20"):
        return Ether(src=my_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=sender_mac or my_mac, psrc=sender_ip,
                                                               pdst="203.0.113.87")

    cases = {
        "ns-valid": ns(), "arp-valid": arp(),
        "ns-lladdr-broadcast": ns(lladdr="ff:ff:ff:ff:ff:ff"), "ns-lladdr-multicast": ns(lladdr="33:33:00:00:00:01"),
        "ns-from-loopback": ns(source="::1"), "ns-from-v4-mapped": ns(source="::ffff:203.0.113.20"),
        "ns-from-multicast": ns(source="ff02::1"),
        "arp-sender-broadcast": arp(sender_mac="ff:ff:ff:ff:ff:ff"), "arp-sender-multicast": arp(sender_mac="01:00:5e:00:00:01"),
        "arp-from-loopback": arp(sender_ip="127.0.0.1"), "arp-from-multicast": arp(sender_ip="224.0.0.1"),
        "arp-from-broadcast": arp(sender_ip="255.255.255.255"),
        # Of another VLAN than the LAN interface's own (none): not B's to answer.
        "arp-vlan-10": Ether(src=my_mac, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10)
                       / ARP(op=1, hwsrc=my_mac, psrc="203.0.113.20", pdst="203.0.113.87"),
        "ns-vlan-10": Ether(src=my_mac, dst=group_mac) / Dot1Q(vlan=10) / IPv6(src=C, dst=group, hlim=255)
                      / ICMPv6ND_NS(tgt=GHOST) / ICMPv6NDOptSrcLLAddr(lladdr=my_mac),
    }
    results = {}
    for name, frame in cases.items():
        # No kernel filter: a tagged answer (VLAN offload puts the tag aside) must be seen too.
        sniffer = AsyncSniffer(iface=iface, store=True, promisc=True,
                               lfilter=lambda p: (ARP in p and p[ARP].op == 2) or ICMPv6ND_NA in p)
        sniffer.start()
        time.sleep(0.3)
        sendp(frame, iface=iface, verbose=0)
        time.sleep(0.8)
        answers = sniffer.stop() or []
        results[name] = [answer[Ether].dst for answer in answers if answer[Ether].src != my_mac]
    print(json.dumps(results))
else:
    sys.exit(f"unknown scenario {scenario}")
