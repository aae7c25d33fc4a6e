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

int CIPIPShims_tunAttach(int fd, const char *name, int multiQueue, char *nameOut) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (multiQueue ? IFF_MULTI_QUEUE : 0);
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

int CIPIPShims_attachDropAllFilter(int fd) {
    struct sock_filter dropAll[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
    struct sock_fprog program = { .len = 1, .filter = dropAll };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
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
