#define _GNU_SOURCE
#include "CIPIPShims.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <linux/filter.h>
#include <pthread.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <sys/eventfd.h>
#include <malloc.h>
#include <linux/bpf.h>
#include <linux/netlink.h>
#include <linux/if_ether.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <stdio.h>

int CIPIPShims_tunAttach(int fd, const char *name, int virtioHeader, char *nameOut) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (virtioHeader ? IFF_VNET_HDR : 0);
    if (name != NULL) {
        strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        return -1;
    }
    if (nameOut != NULL) {
        memcpy(nameOut, ifr.ifr_name, IFNAMSIZ);
        nameOut[IFNAMSIZ - 1] = 0;
    }
    return 0;
}

int CIPIPShims_tunEnableTCPSegmentationOffload(int fd) {
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) == 0) return 0;
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4));
}

static int interfaceIoctl(const char *name, unsigned long request, struct ifreq *ifr) {
    memset(ifr, 0, sizeof *ifr);
    strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        return -1;
    }
    int result = ioctl(sock, request, ifr);
    int saved = errno;
    close(sock);
    errno = saved;
    return result;
}

int CIPIPShims_interfaceMTU(const char *name) {
    struct ifreq ifr;
    if (interfaceIoctl(name, SIOCGIFMTU, &ifr) < 0) {
        return -1;
    }
    return ifr.ifr_mtu;
}

int CIPIPShims_interfaceHardwareAddress(const char *name, uint8_t out[6]) {
    struct ifreq ifr;
    if (interfaceIoctl(name, SIOCGIFHWADDR, &ifr) < 0) {
        return -1;
    }
    memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int CIPIPShims_sendBatch(int fd, const void *const *buffers, const long *lengths,
                         const uint32_t *destinations, unsigned int count) {
    enum { maxBatch = 64 };
    struct mmsghdr messages[maxBatch];
    struct iovec vectors[maxBatch];
    struct sockaddr_in addresses[maxBatch];
    if (count > maxBatch) {
        count = maxBatch;
    }
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)buffers[i];
        vectors[i].iov_len = (size_t)lengths[i];
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        memset(&addresses[i], 0, sizeof addresses[i]);
        addresses[i].sin_family = AF_INET;
        addresses[i].sin_addr.s_addr = destinations[i];
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
    }
    return sendmmsg(fd, messages, count, 0);
}

int CIPIPShims_sendBatch6(int fd, const void *const *buffers, const long *lengths,
                          const uint8_t *destinations, unsigned int count) {
    enum { maxBatch = 64 };
    struct mmsghdr messages[maxBatch];
    struct iovec vectors[maxBatch];
    struct sockaddr_in6 addresses[maxBatch];
    if (count > maxBatch) {
        count = maxBatch;
    }
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)buffers[i];
        vectors[i].iov_len = (size_t)lengths[i];
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        memset(&addresses[i], 0, sizeof addresses[i]);
        addresses[i].sin6_family = AF_INET6;
        memcpy(&addresses[i].sin6_addr, destinations + 16 * i, 16);
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
    }
    return sendmmsg(fd, messages, count, 0);
}

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

int CIPIPShims_openUDPPortClaim(int ipv6, const uint8_t *address, uint16_t port) {
    int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1;
    int result;
    if (ipv6) {
        struct sockaddr_in6 local;
        memset(&local, 0, sizeof local);
        local.sin6_family = AF_INET6;
        local.sin6_port = htons(port);
        memcpy(&local.sin6_addr, address, 16);
        result = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        if (result == 0) result = setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof on);
        if (result == 0) result = bind(fd, (struct sockaddr *)&local, sizeof local);
    } else {
        struct sockaddr_in local;
        memset(&local, 0, sizeof local);
        local.sin_family = AF_INET;
        local.sin_port = htons(port);
        memcpy(&local.sin_addr, address, 4);
        result = setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &on, sizeof on);
        if (result == 0) result = bind(fd, (struct sockaddr *)&local, sizeof local);
    }
    if (result == 0) result = CIPIPShims_attachDropAllFilter(fd);
    if (result != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int CIPIPShims_attachDropAllFilter(int fd) {
    struct sock_filter dropAll[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
    struct sock_fprog program = { .len = 1, .filter = dropAll };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

int CIPIPShims_ignoreOutgoingPackets(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof on);
}

int CIPIPShims_ignoresOutgoingPackets(int fd) {
    int on = 0;
    socklen_t length = sizeof on;
    if (getsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, &length) < 0) return -1;
    return on != 0;
}

// Values from Linux 6.6's UAPI, which the build machine's headers may predate.
enum { attachTypeTCXIngress = 46, tcxNext = -1, tcxDrop = 2 };

static struct bpf_insn instruction(uint8_t code, uint8_t dst, uint8_t src, int16_t offset, int32_t immediate) {
    struct bpf_insn insn;
    memset(&insn, 0, sizeof insn);
    insn.code = code;
    insn.dst_reg = dst;
    insn.src_reg = src;
    insn.off = offset;
    insn.imm = immediate;
    return insn;
}

// A small eBPF assembler: instructions, and jumps to labels patched once the labels are placed.
enum { consumerMaxInstructions = 128, labelDrop = 0, labelNext, labelUDPAt54, labelCount };
struct ConsumerProgram {
    struct bpf_insn code[consumerMaxInstructions];
    int count;
    int labels[labelCount];
    int jumps[consumerMaxInstructions];     // index of a jump instruction
    int targets[consumerMaxInstructions];   // the label it goes to
    int jumpCount;
};

static void emit(struct ConsumerProgram *p, struct bpf_insn insn) {
    if (p->count < consumerMaxInstructions) p->code[p->count++] = insn;
}

/// A conditional (or, with BPF_JA, plain) jump to `label`.
static void jumpTo(struct ConsumerProgram *p, uint8_t code, uint8_t dst, uint8_t src, int32_t immediate, int label) {
    if (p->jumpCount < consumerMaxInstructions) {
        p->jumps[p->jumpCount] = p->count;
        p->targets[p->jumpCount++] = label;
    }
    emit(p, instruction(code, dst, src, 0, immediate));
}

/// r4 = r2 + `length`; past data_end (r3): not ours.
static void need(struct ConsumerProgram *p, int32_t length) {
    emit(p, instruction(BPF_ALU64 | BPF_MOV | BPF_X, 4, 2, 0, 0));
    emit(p, instruction(BPF_ALU64 | BPF_ADD | BPF_K, 4, 0, 0, length));
    jumpTo(p, BPF_JMP | BPF_JGT | BPF_X, 4, 3, 0, labelNext);
}

/// A 16-bit field as a little-endian load of its network-order bytes reads it.
static int32_t loaded16(uint16_t value) { return (int32_t)(uint16_t)((value >> 8) | (value << 8)); }

/// r5 holds a UDP destination port as loaded: to drop if it is one of `ports`, else not ours.
static void matchPorts(struct ConsumerProgram *p, const uint16_t *ports, unsigned int portCount) {
    for (unsigned int i = 0; i < portCount; i++) jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, loaded16(ports[i]), labelDrop);
    jumpTo(p, BPF_JMP | BPF_JA, 0, 0, 0, labelNext);
}

int CIPIPShims_attachIngressConsumer(unsigned int ifindex, int ipv6, const uint8_t *local, const uint16_t *ports, unsigned int portCount) {
    // r1 = struct __sk_buff *; data and data_end are its 32-bit fields at offsets 76 and 80. At the
    // ingress hook, data points at the Ethernet header. Loads are little-endian: a field is compared with
    // the value a load of its network-order bytes gives.
    struct ConsumerProgram program;
    memset(&program, 0, sizeof program);
    struct ConsumerProgram *p = &program;
    if (portCount > 8) portCount = 8;
    emit(p, instruction(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 76, 0));          // r2 = data
    emit(p, instruction(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 80, 0));          // r3 = data_end
    if (!ipv6) {
        uint32_t address;
        memcpy(&address, local, 4);
        need(p, 14 + 20);                                                   // Ethernet + IPv4 header
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_H, 5, 2, 12, 0));      // EtherType: IPv4?
        jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, loaded16(0x0800), labelNext);
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_W, 5, 2, 30, 0));      // destination: ours?
        jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, (int32_t)address, labelNext);
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_B, 5, 2, 23, 0));      // protocol 4 or 41: drop
        jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 4, labelDrop);
        jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 41, labelDrop);
        if (portCount > 0) {
            jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 17, labelNext);   // UDP, not a later fragment
            emit(p, instruction(BPF_LDX | BPF_MEM | BPF_H, 5, 2, 20, 0));
            emit(p, instruction(BPF_ALU | BPF_AND | BPF_K, 5, 0, 0, 0xFF1F));
            jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 0, labelNext);
            emit(p, instruction(BPF_LDX | BPF_MEM | BPF_B, 5, 2, 14, 0));  // r6 = data + IHL * 4
            emit(p, instruction(BPF_ALU64 | BPF_AND | BPF_K, 5, 0, 0, 0x0F));
            emit(p, instruction(BPF_ALU64 | BPF_LSH | BPF_K, 5, 0, 0, 2));
            emit(p, instruction(BPF_ALU64 | BPF_MOV | BPF_X, 6, 2, 0, 0));
            emit(p, instruction(BPF_ALU64 | BPF_ADD | BPF_X, 6, 5, 0, 0));
            emit(p, instruction(BPF_ALU64 | BPF_MOV | BPF_X, 7, 6, 0, 0)); // the UDP ports within the packet
            emit(p, instruction(BPF_ALU64 | BPF_ADD | BPF_K, 7, 0, 0, 14 + 4));
            jumpTo(p, BPF_JMP | BPF_JGT | BPF_X, 7, 3, 0, labelNext);
            emit(p, instruction(BPF_LDX | BPF_MEM | BPF_H, 5, 6, 14 + 2, 0));
            matchPorts(p, ports, portCount);
        } else {
            jumpTo(p, BPF_JMP | BPF_JA, 0, 0, 0, labelNext);
        }
    } else {
        need(p, 14 + 40);                                                   // Ethernet + IPv6 header
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_H, 5, 2, 12, 0));      // EtherType: IPv6?
        jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, loaded16(0x86DD), labelNext);
        for (int word = 0; word < 4; word++) {                              // destination: ours?
            uint32_t value;
            memcpy(&value, local + 4 * word, 4);
            emit(p, instruction(BPF_LDX | BPF_MEM | BPF_W, 5, 2, (int16_t)(14 + 24 + 4 * word), 0));
            jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, (int32_t)value, labelNext);
        }
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_B, 5, 2, 14 + 6, 0));  // next header 4 or 41: drop
        jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 4, labelDrop);
        jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 41, labelDrop);
        if (portCount > 0) jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 17, labelUDPAt54);
        // The encapsulation limit's 8-byte Destination Options header, as ipipd and ip6tnl send it.
        jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 60, labelNext);
        need(p, 14 + 40 + 8);
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_B, 5, 2, 14 + 41, 0));
        jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 0, labelNext);
        emit(p, instruction(BPF_LDX | BPF_MEM | BPF_B, 5, 2, 14 + 40, 0));
        jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 4, labelDrop);
        jumpTo(p, BPF_JMP32 | BPF_JEQ | BPF_K, 5, 0, 41, labelDrop);
        if (portCount > 0) {
            jumpTo(p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 17, labelNext);
            need(p, 14 + 48 + 4);
            emit(p, instruction(BPF_LDX | BPF_MEM | BPF_H, 5, 2, 14 + 48 + 2, 0));
            matchPorts(p, ports, portCount);
            p->labels[labelUDPAt54] = p->count;                             // UDP right behind the fixed header
            need(p, 14 + 40 + 4);
            emit(p, instruction(BPF_LDX | BPF_MEM | BPF_H, 5, 2, 14 + 40 + 2, 0));
            matchPorts(p, ports, portCount);
        } else {
            jumpTo(p, BPF_JMP | BPF_JA, 0, 0, 0, labelNext);
        }
    }
    p->labels[labelDrop] = p->count;
    emit(p, instruction(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, tcxDrop));
    emit(p, instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    p->labels[labelNext] = p->count;                                        // leave it to the kernel
    emit(p, instruction(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, tcxNext));
    emit(p, instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    for (int i = 0; i < p->jumpCount; i++) {
        p->code[p->jumps[i]].off = (int16_t)(p->labels[p->targets[i]] - (p->jumps[i] + 1));
    }
    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_SCHED_CLS;
    load.expected_attach_type = attachTypeTCXIngress;
    load.insns = (uint64_t)(uintptr_t)p->code;
    load.insn_cnt = (uint32_t)p->count;
    load.license = (uint64_t)(uintptr_t)"GPL";
    strncpy(load.prog_name, "ipipd_consume", sizeof load.prog_name - 1);
    int programFD = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    if (programFD < 0) return -1;

    union bpf_attr link;
    memset(&link, 0, sizeof link);
    link.link_create.prog_fd = (uint32_t)programFD;
    link.link_create.target_ifindex = ifindex;
    link.link_create.attach_type = attachTypeTCXIngress;
    int linkFD = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &link, sizeof link);
    int savedErrno = errno;
    close(programFD);   // the link holds the program
    errno = savedErrno;
    return linkFD;   // BPF descriptors are close-on-exec from the start
}

int CIPIPShims_setThreadName(const char *name) {
    char shortName[16];
    strncpy(shortName, name, sizeof shortName - 1);
    shortName[sizeof shortName - 1] = 0;
    return pthread_setname_np(pthread_self(), shortName);
}

int CIPIPShims_switchUserKeepingNetworkCapabilities(unsigned int uid, unsigned int gid) {
    const unsigned long keep = (1UL << CAP_NET_ADMIN) | (1UL << CAP_NET_RAW);
    for (unsigned long cap = 0; cap <= CAP_LAST_CAP; cap++) {
        if (!(keep & (1UL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            return -1;
        }
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return -1;
    if (setgroups(0, NULL) < 0) return -1;
    if (setgid(gid) < 0) return -1;
    if (setuid(uid) < 0) return -1;
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return -1;
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].effective = (unsigned int)keep;
    data[0].permitted = (unsigned int)keep;
    return (int)syscall(SYS_capset, &header, data);
}

int CIPIPShims_dropThreadCapabilities(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &header, data);
}

unsigned long long CIPIPShims_threadEffectiveCapabilities(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) < 0) return 0;
    return (unsigned long long)data[0].effective | ((unsigned long long)data[1].effective << 32);
}

int CIPIPShims_netlinkSubscribe(int fd, unsigned int groups) {
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = groups;
    return bind(fd, (struct sockaddr *)&address, sizeof address);
}

int CIPIPShims_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int CIPIPShims_tuneMalloc(size_t mmapThreshold, int arenas) {
    return mallopt(M_MMAP_THRESHOLD, (int)mmapThreshold) && mallopt(M_ARENA_MAX, arenas);
}

int CIPIPShims_linkMulticast(int fd, int ifindex, const unsigned char *mac, int join) {
    struct packet_mreq request;
    memset(&request, 0, sizeof request);
    request.mr_ifindex = ifindex;
    request.mr_type = PACKET_MR_MULTICAST;
    request.mr_alen = 6;
    memcpy(request.mr_address, mac, 6);
    return setsockopt(fd, SOL_PACKET, join ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP, &request, sizeof request);
}

int CIPIPShims_openUplinkCapture(unsigned int ifindex, const void *filter, unsigned int length, int bufferBytes,
                                 int timeoutMilliseconds) {
    // Protocol 0: nothing is queued until bind(), by which time the filter is in place.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1;
    struct sock_fprog program = { .len = (unsigned short)length, .filter = (struct sock_filter *)filter };
    struct timeval timeout = { .tv_sec = timeoutMilliseconds / 1000, .tv_usec = (timeoutMilliseconds % 1000) * 1000 };
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof on) < 0
        || setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof on) < 0
        || setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) < 0
        || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0) {
        goto fail;
    }
    // Beyond net.core.rmem_max only with CAP_NET_ADMIN; without it, as much as rmem_max allows.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufferBytes, sizeof bufferBytes) < 0
        && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferBytes, sizeof bufferBytes) < 0) {
        goto fail;
    }
    struct sockaddr_ll address;
    memset(&address, 0, sizeof address);
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = (int)ifindex;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int CIPIPShims_receiveBatch(int fd, void *const *buffers, size_t capacity, unsigned int count, int wait, long *lengths) {
    enum { maxBatch = 64 };
    struct mmsghdr messages[maxBatch];
    struct iovec vectors[maxBatch];
    if (count > maxBatch) count = maxBatch;
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = buffers[i];
        vectors[i].iov_len = capacity;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    int received;
    do {
        received = recvmmsg(fd, messages, count, wait ? MSG_WAITFORONE | MSG_TRUNC : MSG_DONTWAIT | MSG_TRUNC, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    // With MSG_TRUNC a packet socket reports the frame's whole length, also when it did not fit.
    for (int i = 0; i < received; i++) lengths[i] = (long)messages[i].msg_len;
    return received;
}

int CIPIPShims_packetStatistics(int fd, unsigned int *received, unsigned int *dropped) {
    struct tpacket_stats stats;
    socklen_t length = sizeof stats;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) < 0) return -1;
    *received = stats.tp_packets;
    *dropped = stats.tp_drops;
    return 0;
}

int CIPIPShims_interfaceFeature(const char *interface, const char *feature) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    int result = -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, interface, IFNAMSIZ - 1);
    // How many feature names there are, then the names, then the feature words.
    // struct ethtool_sset_info ends in a flexible array: one entry follows it, for the one set asked.
    uint64_t setsStorage[(sizeof(struct ethtool_sset_info) + sizeof(uint32_t) + 7) / 8];
    memset(setsStorage, 0, sizeof setsStorage);
    struct ethtool_sset_info *sets = (struct ethtool_sset_info *)setsStorage;
    sets->cmd = ETHTOOL_GSSET_INFO;
    sets->sset_mask = 1ULL << ETH_SS_FEATURES;
    ifr.ifr_data = (void *)sets;
    if (ioctl(sock, SIOCETHTOOL, &ifr) < 0 || sets->sset_mask == 0) goto done;
    uint32_t count = sets->data[0];
    if (count == 0 || count > 1024) goto done;
    struct ethtool_gstrings *names = calloc(1, sizeof *names + (size_t)count * ETH_GSTRING_LEN);
    uint32_t words = (count + 31) / 32;
    struct ethtool_gfeatures *features = calloc(1, sizeof *features + words * sizeof(struct ethtool_get_features_block));
    if (names == NULL || features == NULL) goto release;
    names->cmd = ETHTOOL_GSTRINGS;
    names->string_set = ETH_SS_FEATURES;
    names->len = count;
    ifr.ifr_data = (void *)names;
    if (ioctl(sock, SIOCETHTOOL, &ifr) < 0) goto release;
    features->cmd = ETHTOOL_GFEATURES;
    features->size = words;
    ifr.ifr_data = (void *)features;
    if (ioctl(sock, SIOCETHTOOL, &ifr) < 0) goto release;
    for (uint32_t i = 0; i < count; i++) {
        const char *name = (const char *)names->data + (size_t)i * ETH_GSTRING_LEN;
        if (strncmp(name, feature, ETH_GSTRING_LEN) == 0) {
            result = (features->features[i / 32].active >> (i % 32)) & 1;
            break;
        }
    }
release:
    free(names);
    free(features);
done:
    close(sock);
    return result;
}

static int journalSocket = -1;
static pthread_once_t journalSocketOnce = PTHREAD_ONCE_INIT;

static void openJournalSocket(void) {
    journalSocket = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

int CIPIPShims_journalSend(const void *data, size_t length) {
    pthread_once(&journalSocketOnce, openJournalSocket);
    if (journalSocket < 0) return -1;
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    strncpy(address.sun_path, "/run/systemd/journal/socket", sizeof address.sun_path - 1);
    ssize_t sent;
    do {
        sent = sendto(journalSocket, data, length, MSG_NOSIGNAL, (struct sockaddr *)&address, sizeof address);
    } while (sent < 0 && errno == EINTR);
    return sent == (ssize_t)length ? 0 : -1;
}

int CIPIPShims_standardErrorIsJournal(void) {
    const char *stream = getenv("JOURNAL_STREAM");
    if (stream == NULL) return 0;
    unsigned long long device = 0, inode = 0;
    if (sscanf(stream, "%llu:%llu", &device, &inode) != 2) return 0;
    struct stat status;
    if (fstat(STDERR_FILENO, &status) < 0) return 0;
    return (unsigned long long)status.st_dev == device && (unsigned long long)status.st_ino == inode;
}
