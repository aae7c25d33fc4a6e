#!/usr/bin/env python3
"""Hostile traffic for scripts/torture.sh: frames a forger on gateway B's segment can send, built from
scapy templates (not ipipd's codecs) and mutated at random, sent as fast as one raw packet socket goes.

Usage: hostile.py IFACE B_MAC COUNT SEED [KIND,KIND...] [ENCAP]   (default: every kind of ENCAP; plain)
ENCAP is the tunnel's outer header — plain (protocol 4), fou (UDP to 5555), gue (UDP to 6080, a GUE
header), ip6tnl (IPv6 to B's IPv6 address, next header 4 behind the encapsulation limit) — and the
frames claiming to be tunnel packets use it.
Prints one JSON object: how many frames of each kind went out, in total and to B's capture (what its
filter takes: tunnel packets and ICMP to B), and to its ARP responder.

Addresses (the seed lab): gateway A 198.51.100.37 / 2001:db8:a::37 (B's peer), gateway B 203.0.113.86 /
2001:db8:b::86, the ghost host 203.0.113.87 (B answers ARP for it). Inner destinations lie in
198.18.0.0/15, which nothing routes.
"""
import json
import random
import socket
import struct
import sys

from scapy.all import (ARP, ICMP, IP, UDP, Ether, IPOption_NOP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, HBHOptUnknown, PadN, ICMPv6PacketTooBig,
                       ICMPv6DestUnreach, Raw, raw)

iface, b_mac, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
only = set(sys.argv[5].split(",")) if len(sys.argv) > 5 and sys.argv[5] else None
encap = sys.argv[6] if len(sys.argv) > 6 else "plain"
A, B, GHOST = "198.51.100.37", "203.0.113.86", "203.0.113.87"
A6, B6 = "2001:db8:a::37", "2001:db8:b::86"
PORT = {"fou": 5555, "gue": 6080}.get(encap)
IPV6 = encap == "ip6tnl"
rng = random.Random(seed)
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((iface, 0))
src_mac = sock.getsockname()[4]


def ether(payload, dst=b_mac, kind=None):
    kind = kind or (0x86DD if payload[0] >> 4 == 6 else 0x0800)
    return bytes.fromhex(dst.replace(":", "")) + src_mac + struct.pack("!H", kind) + payload


def inner():
    return IP(src="198.18.%d.%d" % (rng.randrange(256), rng.randrange(1, 255)),
              dst="198.19.%d.%d" % (rng.randrange(256), rng.randrange(1, 255)), ttl=rng.randrange(1, 65)) / UDP(dport=9) / Raw(b"x" * rng.randrange(0, 64))


def tel(limit=4):
    return IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=bytes([limit])), PadN(optdata=b"\x00")])


def tunnel(source, payload, identification=0):
    """`payload` as the tunnel carries it from `source` to B, in the encapsulation's outer header."""
    if IPV6:
        return IPv6(src=source, dst=B6) / tel() / payload
    if PORT == 5555:
        return IP(src=source, dst=B, id=identification) / UDP(sport=rng.randrange(32768, 61000), dport=PORT) / payload
    if PORT == 6080:
        return IP(src=source, dst=B, id=identification) / UDP(sport=rng.randrange(32768, 61000), dport=PORT) / Raw(b"\x00\x04\x00\x00") / payload
    return IP(src=source, dst=B, proto=4, id=identification) / payload


def keep_filtered_fields(frame, template):
    """Mutations keep what B's capture filter looks at (EtherType, protocol or next header, destination,
    and a UDP destination port with the header length and fragment offset that place it), so that every
    mutated frame reaches the decapsulator and can be accounted for."""
    frame[12:14] = template[12:14]
    if IPV6:
        frame[14 + 6] = template[14 + 6]
        frame[14 + 24:14 + 40] = template[14 + 24:14 + 40]
    else:
        frame[14 + 9] = template[14 + 9]
        frame[14 + 16:14 + 20] = template[14 + 16:14 + 20]
        if PORT:
            frame[14] = template[14]
            frame[14 + 6:14 + 8] = template[14 + 6:14 + 8]
            frame[14 + 22:14 + 24] = template[14 + 22:14 + 24]
    return bytes(frame)


def mutated_from_peer():
    template = ether(raw(tunnel(A6 if IPV6 else A, inner(), rng.randrange(65536))))
    frame = bytearray(template)
    for _ in range(rng.randrange(1, 6)):
        frame[rng.randrange(14, len(frame))] = rng.randrange(256)
    if rng.random() < 0.2:
        frame = frame[:rng.randrange(54 if IPV6 else 38, len(frame) + 1)]   # truncated
    return keep_filtered_fields(frame, template)


def stranger():
    if IPV6:
        return ether(raw(tunnel("2001:db8:%x::%x" % (rng.randrange(1, 65535), rng.randrange(1, 65535)), inner())))
    return ether(raw(tunnel("%d.%d.%d.%d" % (rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)), inner())))


def fragment(identification, offset, length, more, options=()):
    if IPV6:
        return ether(raw(IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=identification, offset=offset // 8, m=1 if more else 0, nh=4)
                         / Raw(b"f" * length)))
    # The first piece of a UDP datagram carries the port B's filter takes.
    data = (struct.pack("!HHHH", 40000, PORT, 8 + length, 0) + b"f" * (length - 8)) if PORT and offset == 0 else b"f" * length
    return ether(raw(IP(src=A, dst=B, proto=17 if PORT else 4, id=identification, flags="MF" if more else 0, frag=offset // 8,
                        options=list(options)) / Raw(data)))


def tiny_fragments():
    identification = rng.randrange(1 << 32 if IPV6 else 65536)
    return [fragment(identification, 8 * rng.randrange(1, 8000), 8, True) for _ in range(16)]


def overlapping_fragments():
    identification = rng.randrange(1 << 32 if IPV6 else 65536)
    return [fragment(identification, 0, 800, True), fragment(identification, 400, 800, True)]


def oversized_fragments():
    identification = rng.randrange(1 << 32 if IPV6 else 65536)
    pieces = [fragment(identification, 0, 1400, True, [] if IPV6 else [IPOption_NOP()] * 40)]
    pieces += [fragment(identification, index * 1400, 1400, True) for index in range(1, 46)]
    # Over IPv4 the first piece's 40 bytes of options take the datagram past 65,535; IPv6 has no room for
    # options in front of a fragment, so its last piece is longer: 65,800 bytes behind the fragment header.
    pieces.append(fragment(identification, 46 * 1400, 1400 if IPV6 else 1115, False))
    return pieces


def forged_icmp():
    if IPV6:
        quoted = IPv6(src=B6, dst=A6) / tel() / Raw(b"\x45\x00\x05\xc8" + bytes(rng.randrange(256) for _ in range(40)))
        message = ICMPv6PacketTooBig(mtu=rng.choice([0, 1000, 1280, 1400])) if rng.random() < 0.5 else ICMPv6DestUnreach(code=rng.choice([0, 1, 3]))
        return ether(raw(IPv6(src="2001:db8:b::%x" % rng.randrange(2, 65535), dst=B6) / message / quoted))
    quoted = IP(src=B, dst=A, proto=17 if PORT else 4, id=rng.randrange(65536), flags="DF")
    quoted = quoted / Raw((struct.pack("!HHHH", 40000, PORT, 28, 0) if PORT else b"") + b"\x45\x00\x05\xc8" + b"\x00" * 4)
    if rng.random() < 0.5:
        message = ICMP(type=3, code=4, nexthopmtu=rng.choice([68, 296, 576, 1000]))
    else:
        message = ICMP(type=rng.choice([3, 11]), code=rng.choice([0, 1, 3]))
    if rng.random() < 0.3:
        quoted = IP(src="192.0.2.1", dst="192.0.2.2", proto=17) / Raw(b"\x00" * 8)   # about nothing of ours
    return ether(raw(IP(src="203.0.113.%d" % rng.randrange(2, 250), dst=B) / message / quoted))


def bad_udp():
    """FOU or GUE with a UDP header that lies: short, a length beyond or below the datagram, a wrong checksum."""
    payload = raw(inner())
    length = rng.choice([2, 6, 7, 8 + len(payload) + rng.randrange(1, 500)])
    checksum = rng.randrange(1, 65536)
    udp = struct.pack("!HHHH", 40000, PORT, length, checksum)[:rng.choice([4, 8])]
    return ether(raw(IP(src=A, dst=B, proto=17) / Raw(udp + payload)))


def bad_gue():
    """GUE headers Linux refuses: other versions, control messages, unknown flags, remote checksum offload."""
    first = rng.choice([0x40 | rng.randrange(0x40), 0x80, 0xC0, 0x20, rng.randrange(1, 32)])
    header = bytes([first, rng.choice([4, 41, 47, 17])]) + struct.pack("!H", rng.choice([0, 1, 0x8000, rng.randrange(65536)]))
    header += bytes(rng.randrange(256) for _ in range((first & 0x1F) * 4 if first >> 6 == 0 else 0))
    return ether(raw(IP(src=A, dst=B) / UDP(sport=40000, dport=PORT) / Raw(header + raw(inner()))))


def extension_headers():
    """An IPv6 outer header with a chain B must judge: options to skip or to refuse, routing headers in use
    or done, too many headers, Hop-by-Hop out of place, an encapsulation limit of 0."""
    choices = [
        lambda: tel(0), lambda: tel(rng.randrange(256)),
        lambda: IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=rng.randrange(256), optdata=bytes(rng.randrange(256) for _ in range(4)))]),
        lambda: IPv6ExtHdrRouting(segleft=rng.choice([0, 1]), addresses=["2001:db8:a::99"]),
        lambda: IPv6ExtHdrHopByHop(),
    ]
    packet = IPv6(src=A6, dst=B6)
    for _ in range(rng.randrange(1, 11)):
        packet = packet / rng.choice(choices)()
    return ether(raw(packet / inner()))


def random_mac():
    return bytes([0x02] + [rng.randrange(256) for _ in range(5)])


def arp_request_for_ghost():
    mac = random_mac()
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc="203.0.113.%d" % rng.randrange(100, 200), pdst=GHOST)
    return raw(frame)


def arp_claiming_ghost():
    mac = random_mac()
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=rng.choice([1, 2]), hwsrc=mac, psrc=GHOST, pdst=GHOST)
    return raw(frame)


# (kind, weight, generator, where it goes: "capture" for B's decapsulator, "arp" for its responder)
kinds = [
    ("mutated-from-peer", 30, lambda: [mutated_from_peer()], "capture"),
    ("stranger", 15, lambda: [stranger()], "capture"),
    ("tiny-fragments", 12, tiny_fragments, "capture"),
    ("overlapping-fragments", 8, overlapping_fragments, "capture"),
    ("oversized-fragments", 2, oversized_fragments, "capture"),
    ("forged-icmp", 10, lambda: [forged_icmp()], "capture"),
    ("arp-request-flood", 15, lambda: [arp_request_for_ghost()], "arp"),
    ("arp-claims", 8, lambda: [arp_claiming_ghost()], "arp"),
]
if PORT:
    kinds.append(("bad-udp", 10, lambda: [bad_udp()], "capture"))
if PORT == 6080:
    kinds.append(("bad-gue", 10, lambda: [bad_gue()], "capture"))
if IPV6:
    kinds.append(("extension-headers", 10, lambda: [extension_headers()], "capture"))
kinds = [entry for entry in kinds if only is None or entry[0] in only]
# Batches prebuilt per kind and sent round-robin by weight: building with scapy is slower than sending.
pools = {name: [frame for _ in range(64) for frame in make()] for name, _, make, _ in kinds}
sent = {name: 0 for name, _, _, _ in kinds}
schedule = [entry for entry in kinds for _ in range(entry[1])]
total = 0
while total < count:
    name, _, make, _ = schedule[rng.randrange(len(schedule))]
    pool = pools[name]
    if rng.random() < 0.05:
        pools[name] = pool = [frame for _ in range(16) for frame in make()]
    for frame in pool[:min(len(pool), count - total)]:
        try:
            sock.send(frame)
        except OSError:
            continue   # the socket's buffer was full: not sent, not counted
        sent[name] += 1
        total += 1
summary = {
    "sent": sent,
    "total": total,
    "to_capture": sum(sent[name] for name, _, _, where in kinds if where == "capture"),
    "to_arp": sum(sent[name] for name, _, _, where in kinds if where == "arp"),
    "encap": encap,
}
print(json.dumps(summary))
