#include "udpsock.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

static int is_unspecified(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    return ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
           htonl(INADDR_ANY);
  }
  if (sa->sa_family == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6 *)sa)->sin6_addr);
  }
  return 0;
}

static int open_bound(const struct sockaddr *sa, socklen_t len, int v6only) {
  int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  if (sa->sa_family == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (bind(fd, sa, len) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int nt_udp_open(const nt_addr *bind, int dual, int *family, int *v6only) {
  const struct sockaddr *sa = (const struct sockaddr *)&bind->ss;
  uint16_t port = nt_addr_port(sa);

  if (dual && is_unspecified(sa)) {
    struct sockaddr_in6 any6;
    memset(&any6, 0, sizeof(any6));
    any6.sin6_family = AF_INET6;
    any6.sin6_addr = in6addr_any;
    any6.sin6_port = htons(port);
    int fd = open_bound((struct sockaddr *)&any6, sizeof(any6), 0);
    if (fd >= 0 || fd == -EADDRINUSE || fd == -EACCES) {
      *family = AF_INET6;
      *v6only = 0;
      return fd;
    }
    /* No IPv6 on this host: IPv4 alone, as before dual-stack sockets. */
    struct sockaddr_in any4;
    memset(&any4, 0, sizeof(any4));
    any4.sin_family = AF_INET;
    any4.sin_addr.s_addr = htonl(INADDR_ANY);
    any4.sin_port = htons(port);
    *family = AF_INET;
    *v6only = 0;
    return open_bound((struct sockaddr *)&any4, sizeof(any4), 0);
  }
  *family = sa->sa_family;
  *v6only = sa->sa_family == AF_INET6;
  return open_bound(sa, bind->len, 1);
}

int nt_udp_reaches(int family, int v6only, int addr_family) {
  if (addr_family == AF_INET6) {
    return family == AF_INET6;
  }
  return addr_family == AF_INET &&
         (family == AF_INET || (family == AF_INET6 && !v6only));
}
