#!/usr/bin/env python3
"""Hostile traffic for scripts/torture.sh: frames a forger on gateway B's segment can send, built from
scapy templates (not ipipd's codecs) and mutated at random, sent as fast as one raw packet socket goes.

Usage: hostile.py IFACE B_MAC COUNT SEED [KIND,KIND...]   (default: every kind)
Prints one JSON object: how many frames of each kind went out, in total and to B's capture (what its
filter takes: IPv4 to B, protocol 4 or ICMP), and to its ARP responder.

Addresses (the seed lab): gateway A 198.51.100.37 (B's peer), gateway B 203.0.113.86, the ghost host
203.0.113.87 (B answers ARP for it). Inner destinations lie in 198.18.0.0/15, which nothing routes.
"""
import json
import random
import socket
import struct
import sys

from scapy.all import ARP, ICMP, IP, UDP, Ether, IPOption_NOP, Raw, raw

iface, b_mac, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
only = set(sys.argv[5].split(",")) if len(sys.argv) > 5 else None
A, B, GHOST = "198.51.100.37", "203.0.113.86", "203.0.113.87"
rng = random.Random(seed)
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((iface, 0))
src_mac = sock.getsockname()[4]


def ether(payload, dst=b_mac, kind=0x0800):
    return bytes.fromhex(dst.replace(":", "")) + src_mac + struct.pack("!H", kind) + payload


def inner():
    return IP(src="198.18.%d.%d" % (rng.randrange(256), rng.randrange(1, 255)),
              dst="198.19.%d.%d" % (rng.randrange(256), rng.randrange(1, 255)), ttl=rng.randrange(1, 65)) / UDP(dport=9) / Raw(b"x" * rng.randrange(0, 64))


def keep_filtered_fields(frame, template):
    """Mutations keep what B's capture filter looks at (EtherType, protocol, destination), so that every
    mutated frame reaches the decapsulator and can be accounted for."""
    frame[12:14] = template[12:14]
    frame[14 + 9] = template[14 + 9]
    frame[14 + 16:14 + 20] = template[14 + 16:14 + 20]
    return bytes(frame)


def mutated_from_peer():
    template = ether(raw(IP(src=A, dst=B, proto=4, id=rng.randrange(65536)) / inner()))
    frame = bytearray(template)
    for _ in range(rng.randrange(1, 6)):
        frame[rng.randrange(14, len(frame))] = rng.randrange(256)
    if rng.random() < 0.2:
        frame = frame[:rng.randrange(34, len(frame) + 1)]   # truncated
    return keep_filtered_fields(frame, template)


def stranger():
    return ether(raw(IP(src="%d.%d.%d.%d" % (rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)),
                        dst=B, proto=4) / inner()))


def fragment(identification, offset, length, more, options=()):
    return ether(raw(IP(src=A, dst=B, proto=4, id=identification, flags="MF" if more else 0, frag=offset // 8,
                        options=list(options)) / Raw(b"f" * length)))


def tiny_fragments():
    identification = rng.randrange(65536)
    return [fragment(identification, 8 * rng.randrange(1, 8000), 8, True) for _ in range(16)]


def overlapping_fragments():
    identification = rng.randrange(65536)
    return [fragment(identification, 0, 800, True), fragment(identification, 400, 800, True)]


def oversized_fragments():
    identification = rng.randrange(65536)
    pieces = [fragment(identification, 0, 1400, True, [IPOption_NOP()] * 40)]
    pieces += [fragment(identification, index * 1400, 1400, True) for index in range(1, 46)]
    pieces.append(fragment(identification, 46 * 1400, 1115, False))
    return pieces


def forged_icmp():
    quoted = IP(src=B, dst=A, proto=4, id=rng.randrange(65536), flags="DF") / Raw(b"\x45\x00\x05\xc8" + b"\x00" * 4)
    if rng.random() < 0.5:
        message = ICMP(type=3, code=4, nexthopmtu=rng.choice([68, 296, 576, 1000]))
    else:
        message = ICMP(type=rng.choice([3, 11]), code=rng.choice([0, 1, 3]))
    if rng.random() < 0.3:
        quoted = IP(src="192.0.2.1", dst="192.0.2.2", proto=17) / Raw(b"\x00" * 8)   # about nothing of ours
    return ether(raw(IP(src="203.0.113.%d" % rng.randrange(2, 250), dst=B) / message / quoted))


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
}
print(json.dumps(summary))
