// Thin C shims for what Swift cannot see or call on Linux. Each function states why it exists.
// Every shim returns -1 with errno set on failure, like the system call it wraps.
#ifndef CIPIPSHIMS_H
#define CIPIPSHIMS_H

#include <stddef.h>
#include <stdint.h>

// TUNSETIFF and TUNSETOFFLOAD are _IOW() macros, which Swift's importer cannot evaluate ("structure not
// supported").
// Attaches `fd` (an open /dev/net/tun) to a TUN device named `name` (a template such as "tun%d" works)
// with IFF_TUN|IFF_NO_PI (plus IFF_VNET_HDR when `virtioHeader`: each packet read is preceded by a
// struct virtio_net_hdr), and writes the kernel's chosen name into `nameOut` (at least IFNAMSIZ bytes).
int CIPIPShims_tunAttach(int fd, const char *name, int virtioHeader, char *nameOut);
// Lets the kernel hand over packets with their TCP/UDP checksum left partial and TCP packets over IPv4
// and IPv6 of up to 64 KiB to be segmented by the reader (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6; a kernel
// that refuses TSO6 gets TSO4 alone). Needs IFF_VNET_HDR.
int CIPIPShims_tunEnableTCPSegmentationOffload(int fd);

// The ifreq accessor macros (ifr_mtu, ifr_hwaddr, ifr_flags) do not import; these wrap the SIOC*IF*
// ioctls on a throw-away AF_INET datagram socket.
int CIPIPShims_interfaceMTU(const char *name);
int CIPIPShims_interfaceHardwareAddress(const char *name, uint8_t out[6]);

// mmsghdr/sendmmsg/recvmmsg are hidden behind _GNU_SOURCE in glibc's headers, so Swift never sees them.
// Sends `count` (at most 64) datagrams (buffers[i], lengths[i]) to IPv4 destinations[i] (network byte
// order) on `fd` with one system call; returns how many were sent.
int CIPIPShims_sendBatch(int fd, const void *const *buffers, const long *lengths,
                         const uint32_t *destinations, unsigned int count);

// The same to IPv6 destinations (16 bytes each, in network byte order): an IPv6 underlay's outer packets.
int CIPIPShims_sendBatch6(int fd, const void *const *buffers, const long *lengths,
                          const uint8_t *destinations, unsigned int count);

// A UDP socket bound to `port` on `address` (4 or 16 bytes, network order; IPV6_V6ONLY for IPv6), with
// IP_FREEBIND so that an HA standby can hold the port before its address arrives, and the drop-all filter
// below: the port is claimed, the kernel answers no "port unreachable", nothing is ever queued. Returns
// the descriptor, or -1 with errno.
int CIPIPShims_openUDPPortClaim(int ipv6, const uint8_t *address, uint16_t port);

// Classic BPF program structures are macros in <linux/filter.h>; Swift cannot build them.
// Attaches a one-instruction filter that accepts nothing, so a socket exists (and claims its protocol
// from the kernel's point of view) without ever queueing a packet.
int CIPIPShims_attachDropAllFilter(int fd);

// PACKET_IGNORE_OUTGOING is in <linux/if_packet.h>, which Swift does not import. Tells a packet socket
// (libpcap's) to skip the packets this machine sends, so the kernel no longer clones every outgoing
// packet for it just to have the direction check discard it (libpcap 1.10 checks in user space).
int CIPIPShims_ignoreOutgoingPackets(int fd);
/// PACKET_ADD_MEMBERSHIP (join != 0) or PACKET_DROP_MEMBERSHIP of a link-layer multicast address (6 bytes)
/// on a packet socket: 0 or -1 (errno).
int CIPIPShims_linkMulticast(int fd, int ifindex, const unsigned char *mac, int join);
// Whether the option above is on for `fd` (1 or 0).
int CIPIPShims_ignoresOutgoingPackets(int fd);

// bpf(2) has no glibc wrapper, and union bpf_attr and struct bpf_insn are built field by field.
// Loads a small eBPF program and attaches it at the TCX ingress hook (Linux 6.6+) of interface
// `ifindex`: untagged frames addressed to `local` (4 bytes, or 16 with `ipv6`, network order) that carry
// protocol (next header) 4 or 41 — over IPv6 also behind an 8-byte Destination Options header, the
// encapsulation limit's — or UDP to one of `ports` (at most 8; IPv4: no later fragment) are dropped,
// everything else goes on. The hook runs after packet sockets have had their copy, so the capture still
// takes these packets; the kernel just skips its own local delivery of them (route lookup, the claim
// sockets, the unknown-protocol path, and an IPv6 header's options). Returns the link's descriptor: the
// program stays attached while it is open and is detached by the kernel when it is closed, also when
// the process dies.
int CIPIPShims_attachIngressConsumer(unsigned int ifindex, int ipv6, const uint8_t *local, const uint16_t *ports,
                                     unsigned int portCount);

// pthread_setname_np is a GNU extension hidden behind _GNU_SOURCE. Names the calling thread (shown by
// top -H and in /proc/PID/task/*/comm); longer names are cut to 15 bytes.
int CIPIPShims_setThreadName(const char *name);

// capset(2) and PR_CAPBSET_DROP have no glibc wrapper (libcap provides them; we need two calls).
// Switches the process to `uid`/`gid` (no supplementary groups) keeping only CAP_NET_ADMIN and
// CAP_NET_RAW, permitted and effective, and drops every other capability from the bounding set.
// Threads created afterwards inherit this; call it before starting any.
int CIPIPShims_switchUserKeepingNetworkCapabilities(unsigned int uid, unsigned int gid);

// struct sockaddr_nl is in <linux/netlink.h>, which Swift does not import. Binds a NETLINK_ROUTE socket
// to the multicast `groups` (RTMGRP_* bits), so that it receives the kernel's change notifications.
int CIPIPShims_netlinkSubscribe(int fd, unsigned int groups);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC): Glibc's module map leaves out <sys/eventfd.h>.
int CIPIPShims_eventfd(void);

/// mallopt(M_MMAP_THRESHOLD, mmapThreshold) and mallopt(M_ARENA_MAX, arenas): Glibc's module map
/// leaves out <malloc.h>. Returns 0 when glibc refused either.
int CIPIPShims_tuneMalloc(size_t mmapThreshold, int arenas);

// capset(2) again, for the calling thread only: Linux keeps capabilities per thread. Clears the
// effective, permitted and inheritable sets of the thread that calls it (the process's other threads
// keep theirs), for threads that parse packets and need no privilege for the handles they were given.
int CIPIPShims_dropThreadCapabilities(void);
// The calling thread's effective capability set (low 64 bits), to log and test what a thread holds.
unsigned long long CIPIPShims_threadEffectiveCapabilities(void);

// The uplink's capture: libpcap's packet socket cannot carry the virtio-net header (PACKET_VNET_HDR must
// be set before the ring that pcap_activate creates: EBUSY after), and only that header says how the
// kernel's GRO merged a frame (its segment size and checksum state). mmsghdr is behind _GNU_SOURCE.
// Opens an AF_PACKET SOCK_RAW socket that receives, on interface `ifindex`, only the inbound frames the
// classic BPF program `filter` (`length` instructions, as pcap_compile makes them) accepts, each preceded
// by a struct virtio_net_hdr; `bufferBytes` of receive buffer (SO_RCVBUFFORCE where allowed), blocking
// reads wait at most `timeoutMilliseconds`. Returns the descriptor.
int CIPIPShims_openUplinkCapture(unsigned int ifindex, const void *filter, unsigned int length, int bufferBytes,
                                 int timeoutMilliseconds);
// recvmmsg(2) with MSG_TRUNC: up to `count` (at most 64) frames, frame i into buffers[i] (`capacity` bytes
// each); lengths[i] is the frame's whole length, larger than `capacity` when it did not fit. `wait`: block
// until the first frame (at most the socket's timeout), else return at once. Returns how many; 0 when
// none came (EAGAIN); -1 with errno for an error the socket reported.
int CIPIPShims_receiveBatch(int fd, void *const *buffers, size_t capacity, unsigned int count, int wait, long *lengths);
// PACKET_STATISTICS of a packet socket since the last call (the kernel resets them on each reading): the
// frames that passed its filter, and those dropped for want of room.
int CIPIPShims_packetStatistics(int fd, unsigned int *received, unsigned int *dropped);
// SIOCETHTOOL's ETHTOOL_GFEATURES, looked up by the feature's name as `ethtool -k` prints it
// ("rx-gro", "rx-lro", "rx-gro-hw", "rx-gro-list", "rx-udp-gro-forwarding", "rx-checksum",
// "rx-vlan-hw-parse"): 1 when active, 0 when not, -1 when the interface or the name is unknown.
int CIPIPShims_interfaceFeature(const char *interface, const char *feature);

// struct sockaddr_un and the datagram journald reads are easier in C. Sends `length` bytes (journald's
// native protocol: KEY=value lines) to /run/systemd/journal/socket on a datagram socket opened once:
// 0, or -1 with errno (then the caller writes to standard error instead).
int CIPIPShims_journalSend(const void *data, size_t length);
// Whether standard error is the stream systemd connected to the journal: $JOURNAL_STREAM holds its
// device and inode (systemd.exec(5)). 1 or 0.
int CIPIPShims_standardErrorIsJournal(void);

#endif
