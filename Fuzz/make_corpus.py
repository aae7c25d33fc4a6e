#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus (Fuzz/corpus/) in its input format — a sequence of events, each
kind (1 byte), length (2 bytes, big-endian), bytes — from the scapy fixtures of the unit tests:
each fixture as a captured frame and as a TUN read, and a few sequences that complete or abuse a
reassembly. Run from the repository root: python3 Fuzz/make_corpus.py"""
import os
import struct

FIXTURES = "Tests/IPIPCoreTests/Fixtures"
OUT = "Fuzz/corpus"
ETHER_IPV4 = bytes.fromhex("020000000037" "020000000086" "0800")
ETHER_IPV6 = bytes.fromhex("020000000037" "020000000086" "86dd")


def event(kind, payload):
    return bytes([kind]) + struct.pack("!H", len(payload)) + payload


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def from_peer_b(inner, source, destination):
    """`inner` (TCP/IPv4, no options) readdressed, checksums made anew, in an outer packet from peer B."""
    ip, tcp = bytearray(inner[:20]), bytearray(inner[20:])
    ip[12:20] = bytes(map(int, source.split("."))) + bytes(map(int, destination.split(".")))
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
    tcp[16:18] = b"\0\0"
    tcp[16:18] = struct.pack("!H", checksum(bytes(ip[12:20]) + struct.pack("!BBH", 0, 6, len(tcp)) + bytes(tcp)))
    outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(inner), 1, 0, 64, 4, 0,
                        bytes([203, 0, 113, 86]), bytes([198, 51, 100, 37]))
    outer = outer[:10] + struct.pack("!H", checksum(outer)) + outer[12:]
    return ETHER_IPV4 + outer + bytes(ip) + bytes(tcp)


def fragment(offset, length, more, options=0, datagram=0):
    # kind 1 (+ 5 × datagram selects one of the four shared IDs)
    return event(1 + 5 * 2 * datagram, struct.pack("!HHBB", offset // 8, length, 1 if more else 0, options) + b"f" * length)


os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    os.remove(os.path.join(OUT, name))
for name in sorted(os.listdir(FIXTURES)):
    if not name.endswith(".hex"):
        continue
    data = bytes.fromhex(open(os.path.join(FIXTURES, name)).read().strip())
    frame = data if name.startswith(("ether-", "arp-", "ndp-")) else (ETHER_IPV6 if data[0] >> 4 == 6 else ETHER_IPV4) + data
    packet = data[14:] if name.startswith(("ether-", "ndp-")) else data
    seed = event(0, frame) + event(3, bytes(10) + packet)
    open(os.path.join(OUT, name.replace(".hex", ".bin")), "wb").write(seed)
sequences = {
    "reassembly-complete": [fragment(0, 1480, True), fragment(2960, 100, False), fragment(1480, 1480, True)],
    "reassembly-overlap-duplicate": [fragment(0, 800, True), fragment(0, 800, True), fragment(400, 800, True)],
    "reassembly-options-oversized": [fragment(0, 1400, True, options=10)] + [fragment(i * 1400, 1400, True) for i in range(1, 46)]
                                    + [fragment(46 * 1400, 1115, False)],
    "reassembly-timeout": [fragment(8, 8, True), event(2, bytes([40])), fragment(0, 8, True)],
    "icmp-about-outer": [event(3, bytes(10) + bytes.fromhex(open(f"{FIXTURES}/ipv4-icmp-echo.hex").read().strip())),
                         event(4, bytes([0, 0, 0, 170])), event(4, bytes([0, 0, 1, 0]))],
    # An IPv6 packet into the tunnel (protocol 41), then a router's errors about it: "fragmentation
    # needed", and "unreachable" quoting the IPv6 header (C → the ghost) to relay to its source.
    "icmp-about-6in4": [event(3, bytes(10) + bytes.fromhex(open(f"{FIXTURES}/ipv6-icmpv6-echo.hex").read().strip())),
                        event(4, bytes([0, 0, 2, 170])),
                        event(4, bytes([0, 0, 3, 0]) + bytes.fromhex("20010db8000b00000000000000000020"
                                                                     "20010db8000b00000000000000000087"))],
    # Consecutive segments of one flow: joined into one super-packet with kernel delivery (an input of
    # even length; the time event pads it to one).
    "tcp-segments-coalesced": [event(0, from_peer_b(bytes.fromhex(open(f"{FIXTURES}/tcp-segment-{index}.hex").read().strip()),
                                                    "203.0.113.20", "192.0.2.10")) for index in range(3)],
}


def udp_from_peer_b(index, size=36):
    """Datagram `index` of one UDP flow (203.0.113.20 -> 192.0.2.10, DF, consecutive IDs, `size` payload
    bytes, the checksum right) in an outer packet from peer B."""
    payload = bytes((index * size + n) & 0xFF for n in range(size))
    source, destination = bytes([203, 0, 113, 20]), bytes([192, 0, 2, 10])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + size, 0x2000 + index, 0x4000, 64, 17, 0, source, destination)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", 40000, 5001, 8 + size, 0)
    udp = udp[:6] + struct.pack("!H", checksum(source + destination + struct.pack("!BBH", 0, 17, 8 + size) + udp + payload) or 0xFFFF)
    inner = ip + udp + payload
    outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(inner), 1, 0, 64, 4, 0, bytes([203, 0, 113, 86]), bytes([198, 51, 100, 37]))
    outer = outer[:10] + struct.pack("!H", checksum(outer)) + outer[12:]
    return ETHER_IPV4 + outer + inner


# Consecutive datagrams of one UDP flow: joined into one UDP_L4 super-packet with kernel delivery.
sequences["udp-datagrams-coalesced"] = [event(0, udp_from_peer_b(index)) for index in range(4)]


def merged(segments):
    """What the uplink's GRO makes of `segments` (consecutive TCP/IPv4 segments of one flow, no IP
    options): the first one's headers with lengths for the whole, the payloads one after the other, the
    TCP checksum field holding the pseudo-header's sum (CHECKSUM_PARTIAL)."""
    headers = 20 + (segments[0][32] >> 4) * 4
    packet = bytearray(segments[0][:headers] + b"".join(segment[headers:] for segment in segments))
    packet[2:4] = struct.pack("!H", len(packet))
    packet[10:12] = b"\0\0"
    packet[10:12] = struct.pack("!H", checksum(bytes(packet[:20])))
    pseudo = sum(struct.unpack("!4H", bytes(packet[12:20]))) + 6 + len(packet) - 20
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    packet[36:38] = struct.pack("!H", pseudo)
    return bytes(packet)


def virtio(flags, gso_type, segment_size, checksum_start, checksum_offset):
    return struct.pack("<BBHHHH", flags, gso_type, 0, segment_size, checksum_start, checksum_offset)


segments = [bytes.fromhex(open(f"{FIXTURES}/tcp-segment-{index}.hex").read().strip()) for index in range(3)]
whole = merged(segments)
outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(whole), 1, 0x4000, 64, 4, 0, bytes([203, 0, 113, 86]), bytes([198, 51, 100, 37]))
outer = outer[:10] + struct.pack("!H", checksum(outer)) + outer[12:]
# A frame the uplink's GRO merged (kind 5: a virtio-net header first), and the same with a header that
# lies about it (another family).
sequences["gro-merged-tcp"] = [event(5, virtio(1, 1, 1200, 54, 16) + ETHER_IPV4 + outer + whole)]
sequences["gro-merged-tcp-wrong-header"] = [event(5, virtio(1, 4, 1200, 54, 16) + ETHER_IPV4 + outer + whole)]
for name, events in sequences.items():
    if name in ("tcp-segments-coalesced", "udp-datagrams-coalesced") and len(b"".join(events)) % 2:
        events.append(event(2, b""))
    open(os.path.join(OUT, name + ".bin"), "wb").write(b"".join(events))
print(f"wrote {len(os.listdir(OUT))} seeds to {OUT}")
