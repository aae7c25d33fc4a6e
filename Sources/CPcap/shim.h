// libpcap as Debian ships it (libpcap-dev).
#include <pcap/pcap.h>
