#!/usr/bin/env python3
"""Frames with a virtio-net header of the sender's choosing, as a neighbour on the uplink's segment that
hands the kernel its packets with PACKET_VNET_HDR (a container on a veth) could send them. A GSO header
cannot cross: no virtio-net header can say "IP-in-IP" (SKB_GSO_IPXIP4), and the sending kernel, unable
to segment what it cannot describe, refuses it. A checksum left partial can: the header says where
the receiver is to complete it. Built by hand and scapy, not by ipipd's codecs.

Usage: craft_offload.py SCENARIO IFACE DST_MAC
Sent from router R's interface facing gateway B, outer source gateway A's endpoint unless the scenario
says otherwise. Prints "sent" or "refused: ..." per frame, then how many frames the kernel took.
Addresses: gateway A 198.51.100.37, gateway B 203.0.113.86, h1 192.0.2.10, h2 192.0.2.130.
"""
import socket
import struct
import sys

from scapy.all import IP, TCP, UDP, Ether, Raw, raw

A, B, H1, H2 = "198.51.100.37", "203.0.113.86", "192.0.2.10", "192.0.2.130"
SOL_PACKET, PACKET_VNET_HDR = 263, 15
NEEDS_CSUM, GSO_TCPV4 = 1, 1
scenario, iface, dst_mac = sys.argv[1], sys.argv[2], sys.argv[3]


def virtio(gso_type, gso_size, csum_start, csum_offset, flags=NEEDS_CSUM):
    return struct.pack("<BBHHHH", flags, gso_type, 0, gso_size, csum_start, csum_offset)


def pseudo_partial(packet):
    """The inner TCP or UDP checksum field as the kernel leaves it partial: the pseudo-header's sum."""
    data = bytearray(raw(packet))
    inner = 20
    ihl = (data[inner] & 0x0F) * 4
    length = len(data) - inner - ihl
    words = struct.unpack("!4H", bytes(data[inner + 12:inner + 20]))
    total = sum(words) + data[inner + 9] + length
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    offset = inner + ihl + (16 if data[inner + 9] == 6 else 6)
    data[offset:offset + 2] = struct.pack("!H", total)
    return bytes(data)


def tcp_super(payload_length=3000):
    inner = IP(src=H1, dst=H2, flags="DF") / TCP(sport=40000, dport=5201, seq=1000, flags="A") / Raw(b"g" * payload_length)
    return pseudo_partial(IP(src=A, dst=B, proto=4, flags="DF") / inner)


def udp_super(payload_length):
    inner = IP(src=H1, dst=H2, flags="DF") / UDP(sport=40000, dport=7777) / Raw(b"u" * payload_length)
    return pseudo_partial(IP(src=A, dst=B, proto=4, flags="DF") / inner)


ETHERNET = 14
INNER_UDP = ETHERNET + 20 + 20                   # where the inner UDP header starts in the frame
frames = {
    # A local sender's datagram, its checksum left for the NIC: delivered, the checksum completed.
    "partial-checksum": [(virtio(0, 0, INNER_UDP, 6), udp_super(600))],
    # The checksum to complete starts inside the outer header, or at the inner IP header.
    "checksum-start-in-outer-header": [(virtio(0, 0, ETHERNET + 4, 6), udp_super(600))],
    "checksum-start-at-inner-header": [(virtio(0, 0, ETHERNET + 20, 6), udp_super(600))],
    # A GSO header: refused by the sending kernel (see above).
    "gso": [(virtio(GSO_TCPV4, 1000, INNER_UDP, 16), tcp_super())],
}[scenario]

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
sock.bind((iface, 0))
mac = bytes.fromhex(dst_mac.replace(":", ""))
taken = 0
for header, packet in frames:
    frame = mac + sock.getsockname()[4][:6] + b"\x08\x00" + packet
    try:
        # hdr_len: the whole frame is linear (the kernel refuses a GSO packet it would have to gather).
        sock.send(header[:2] + struct.pack("<H", len(frame)) + header[4:] + frame)
        taken += 1
        print("sent")
    except OSError as error:
        print(f"refused: {error}")
print(taken)
