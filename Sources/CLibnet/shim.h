// libnet 1.1 as Debian ships it (libnet1-dev); it has no pkg-config file, so the module map links "net".
#include <libnet.h>
