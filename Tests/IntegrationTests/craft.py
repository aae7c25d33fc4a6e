#!/usr/bin/env python3
"""Hostile and hand-made packets for the conformance tests, built by scapy (not by ipipd's codecs).

Usage: craft.py SCENARIO IFACE DST_MAC
Most scenarios are sent from router R's interface facing gateway B, with the outer source forged to be
gateway A's endpoint (a configured peer), so that only what the scenario changes is wrong; the
"inner-marks", "big-no-df" and "big-df-burst" scenarios are sent from host h1 to gateway A, and
"forged-frag-needed" and "forged-report-spray" from router R to gateway A.
Addresses: gateway A 198.51.100.37, gateway B 203.0.113.86, h1 192.0.2.10, h2 192.0.2.130.
"""
import sys
import time

from scapy.all import ICMP, IP, UDP, Ether, IPOption_NOP, Raw, fragment, sendp

A, B, H1, H2 = "198.51.100.37", "203.0.113.86", "192.0.2.10", "192.0.2.130"
scenario, iface, dst_mac = sys.argv[1], sys.argv[2], sys.argv[3]


def outer_to_b(inner, **fields):
    return IP(src=A, dst=B, proto=4, **fields) / inner


def send(packets, gap=0.02):
    for packet in packets:
        sendp(Ether(dst=dst_mac) / packet, iface=iface, verbose=0)
        time.sleep(gap)


echo = IP(src=H1, dst=H2, id=1) / ICMP(id=7) / Raw(b"conformance")

if scenario == "malformed":
    good_inner = bytes(echo)
    outer_bad = [
        IP(src=A, dst=B, proto=4, chksum=0x1234) / echo,                  # bad outer checksum
        IP(src=A, dst=B, proto=4, ihl=4) / echo,                          # outer IHL < 5
        IP(src=A, dst=B, proto=4, version=5) / echo,                      # outer version not 4
        IP(src=A, dst=B, proto=4, len=2000) / echo,                       # outer total length > data
        IP(src=A, dst=B, proto=4, len=24) / echo,                         # outer total length < data
    ]
    inner_bad = [
        outer_to_b(IP(src=H1, dst=H2, chksum=0x4321) / ICMP()),           # bad inner checksum
        outer_to_b(IP(src=H1, dst=H2, ihl=3) / ICMP()),                   # inner IHL < 5
        outer_to_b(Raw(b"\x65" + good_inner[1:])),                        # inner version 6
        outer_to_b(IP(src=H1, dst=H2, len=200) / ICMP()),                 # inner total length > data
        outer_to_b(Raw(good_inner[:12])),                                 # truncated inner header
        outer_to_b(Raw(good_inner + b"trailing")),                        # inner total length < data
    ]
    send(outer_bad + inner_bad)
elif scenario == "fragmented":
    # One outer packet, fragmented by scapy into 4 pieces, sent out of order.
    whole = outer_to_b(IP(src=H1, dst=H2) / ICMP(id=0xF4A6) / Raw(b"f" * 1000), id=0xABCD)
    pieces = fragment(whole, fragsize=304)
    send(list(reversed(pieces)))
elif scenario == "overlapping":
    whole = outer_to_b(IP(src=H1, dst=H2) / ICMP(id=0x0BAD) / Raw(b"o" * 600), id=0x0BAD)
    pieces = fragment(whole, fragsize=304)
    forged = pieces[1].copy()
    forged.frag -= 2                                                       # overlaps the first piece by 16 bytes
    del forged.chksum
    send([pieces[0], forged] + pieces[1:])
elif scenario == "ecn":
    send([
        outer_to_b(IP(src=H1, dst=H2, tos=0x00) / ICMP(id=0xEC00), tos=0x03),   # inner Not-ECT, outer CE: drop
        outer_to_b(IP(src=H1, dst=H2, tos=0x02) / ICMP(id=0xEC02), tos=0x03),   # inner ECT(0), outer CE: inner CE
        outer_to_b(IP(src=H1, dst=H2, tos=0x01) / ICMP(id=0xEC01), tos=0x02),   # outer ECT(0): inner unchanged
    ])
elif scenario == "ttl":
    send([
        outer_to_b(IP(src=H1, dst=H2, ttl=5) / ICMP(id=0x7705)),                # forwarded with TTL 4
        outer_to_b(IP(src=H1, dst=H2, ttl=1) / ICMP(id=0x7701)),                # expires: time exceeded to h1
    ])
elif scenario == "no-icmp-about":
    send([
        # An ICMP error with TTL 1: never an error about an error.
        outer_to_b(IP(src=H1, dst=H2, ttl=1) / ICMP(type=3, code=1) / IP(src=H2, dst=H1) / UDP()),
        # To a broadcast address.
        outer_to_b(IP(src=H1, dst="255.255.255.255", ttl=1) / UDP(dport=9)),
        # A non-first fragment.
        outer_to_b(IP(src=H1, dst=H2, ttl=1, frag=100, proto=17) / Raw(b"x" * 16)),
    ])
elif scenario == "inner-marks":
    # From h1 into gateway A: inner packets whose TOS, TTL and DF the outer header must reflect.
    send([IP(src=H1, dst=H2, tos=0xBB, ttl=33, flags="DF") / ICMP(id=0xE1),
          IP(src=H1, dst=H2, tos=0x29, ttl=20) / ICMP(id=0xE2)])
elif scenario == "big-no-df":
    # From h1: one packet without DF, too big for the tunnel: ipipd must fragment it.
    send([IP(src=H1, dst=H2) / ICMP(id=0xB1D) / Raw(b"n" * 1422)])
elif scenario == "big-df-burst":
    # From h1: 30 packets with DF, too big for the tunnel, in 60 ms.
    send([IP(src=H1, dst=H2, flags="DF") / ICMP(id=0xB16, seq=n) / Raw(b"b" * 1422) for n in range(30)], gap=0.002)
elif scenario == "ttl-flood":
    send([outer_to_b(IP(src=H1, dst=H2, ttl=1) / ICMP(id=0x7700, seq=n)) for n in range(30)], gap=0.002)
elif scenario == "forged-inner":
    # Issue 13: tunnel packets with a configured peer's outer source (A) carrying what must reach
    # nothing behind B. Each UDP datagram goes to port 7777; the ICMP id names the case.
    from scapy.all import IPOption_LSRR
    cases = [
        IP(src="127.0.0.1", dst=H2) / UDP(dport=7777) / Raw(b"martian-source-loopback"),
        IP(src="0.0.0.0", dst=H2) / UDP(dport=7777) / Raw(b"martian-source-zero"),
        IP(src=B, dst=H2) / UDP(dport=7777) / Raw(b"martian-source-gateway"),
        IP(src="192.0.2.200", dst=H2) / UDP(dport=7777) / Raw(b"source-not-allowed"),
        IP(src=H1, dst="224.0.0.1") / UDP(dport=7777) / Raw(b"martian-destination-multicast"),
        IP(src=H1, dst="255.255.255.255") / UDP(dport=7777) / Raw(b"martian-destination-broadcast"),
        IP(src=H1, dst="192.0.2.255") / UDP(dport=7777) / Raw(b"martian-destination-directed-broadcast"),
        IP(src=H1, dst="127.0.0.1") / UDP(dport=7777) / Raw(b"martian-destination-loopback"),
        IP(src=H1, dst=H2, options=[IPOption_LSRR(routers=["192.0.2.131"])]) / UDP(dport=7777) / Raw(b"source-route"),
    ]
    send([outer_to_b(inner) for inner in cases])
elif scenario == "oversized-reassembly":
    # Issue 14's remote crash: a first fragment with 40 bytes of options, and 46 more ending at 65,515 —
    # fine by each fragment's own 20-byte header, 65,575 bytes with the first one's.
    def piece(offset, length, more, options=()):
        return IP(src=A, dst=B, proto=4, id=0x2E2E, flags="MF" if more else 0, frag=offset // 8,
                  options=list(options)) / Raw(b"o" * length)
    pieces = [piece(0, 1400, True, [IPOption_NOP()] * 40)]
    pieces += [piece(index * 1400, 1400, True) for index in range(1, 46)]
    pieces.append(piece(46 * 1400, 1115, False))
    send(pieces, gap=0.002)
elif scenario == "forged-frag-needed":
    # Sent to A from R's side by a stranger: "fragmentation needed, MTU 68" quoting an outer packet
    # A → B with an identification A did not use lately.
    quoted = IP(src=A, dst=B, proto=4, id=0x5A5A, flags="DF", len=1500) / Raw(b"\x45\x00\x05\xc8" + b"\x00" * 4)
    send([IP(src="198.51.100.99", dst=A) / ICMP(type=3, code=4, nexthopmtu=68) / quoted])
elif scenario == "forged-report-spray":
    # Issue 27, finding 8: a stranger brute-forces the outer IP ID. 65,536 "fragmentation needed, MTU 68",
    # one per ID, quoting an outer packet A -> B of the length h1's pings make (104 bytes, DF) and a
    # guess at the inner header; then 131,073 "host/port unreachable" the same way. Built once with
    # scapy, patched per ID and sent through one packet socket, as fast as Python goes.
    import socket
    import struct

    def checksum(data):
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        return ~total & 0xFFFF

    guess = b"\x45\x00\x00\x54\x00\x00\x40\x00"   # a ping's inner header, its ID guessed as 0
    def report(code, mtu):
        quoted = IP(src=A, dst=B, proto=4, id=0, flags="DF", len=104) / Raw(guess)
        return bytearray(bytes(Ether(dst=dst_mac) / IP(src="198.51.100.99", dst=A) / ICMP(type=3, code=code, nexthopmtu=mtu) / quoted))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    icmp_at = 14 + 20
    def spray(templates, count):
        # Report `index` quotes outer ID index // len(templates), in the template it names in turn.
        for index in range(count):
            template = templates[index % len(templates)]
            template[icmp_at + 8 + 4:icmp_at + 8 + 6] = struct.pack("!H", (index // len(templates)) & 0xFFFF)
            template[icmp_at + 2:icmp_at + 4] = b"\x00\x00"
            template[icmp_at + 2:icmp_at + 4] = struct.pack("!H", checksum(bytes(template[icmp_at:])))
            sock.send(template)
    start = time.monotonic()
    spray([report(4, 68)], 65536)
    spray([report(1, 0), report(3, 0)], 131073)
    print(f"sent 196609 forged reports in {time.monotonic() - start:.1f} s")
else:
    sys.exit(f"unknown scenario {scenario}")
