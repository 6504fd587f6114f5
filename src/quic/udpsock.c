#include "quic/udpsock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

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
  /* Where each datagram was addressed (nt_udp_arrival). Without it
   * replies leave as before, from the address the kernel picks. On a
   * dual-stack socket IPV6_RECVPKTINFO reports IPv4 too, v4-mapped. */
  int one = 1;
  if (is_unspecified(sa)) {
    if (sa->sa_family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    } else {
      setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
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

/* 1 when |cm| in |msg| holds |n| bytes of data: a cmsg the kernel cut
 * short (MSG_CTRUNC: msg_control too small for all it had) holds less
 * than its type says, and CMSG_FIRSTHDR does not check the first one's
 * length against msg_controllen at all. */
static int cmsg_holds(const struct msghdr *msg, const struct cmsghdr *cm,
                      size_t n) {
  size_t room = msg->msg_controllen -
                (size_t)((const char *)cm - (const char *)msg->msg_control);
  return cm->cmsg_len >= CMSG_LEN(n) && cm->cmsg_len <= room;
}

size_t nt_udp_gro_segment(const struct msghdr *msg, size_t len) {
  size_t seg = len;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg); cm;
       cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
    if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO &&
        cmsg_holds(msg, cm, sizeof(int))) {
      int gso;
      memcpy(&gso, CMSG_DATA(cm), sizeof(gso));
      if (gso > 0) {
        seg = (size_t)gso;
      }
    }
  }
  return seg;
}

size_t nt_udp_recv_batch(int fd, uint8_t *buf, nt_udp_datagram_fn fn,
                         void *user_data, int *full) {
  struct mmsghdr msgs[NT_UDP_RECV_BATCH];
  struct iovec iovs[NT_UDP_RECV_BATCH];
  struct sockaddr_storage addrs[NT_UDP_RECV_BATCH];
  /* Room for every cmsg the sockets ask for (UDP_GRO's segment size and
   * the arrival address): a truncated one would lose a train's segment
   * size. */
  union {
    char buf[CMSG_SPACE(sizeof(int)) + NT_UDP_PKTINFO_SPACE];
    struct cmsghdr align;
  } ctrl[NT_UDP_RECV_BATCH];
  size_t datagrams = 0;

  *full = 0;
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < NT_UDP_RECV_BATCH; i++) {
    iovs[i].iov_base = buf + (size_t)i * NT_UDP_RECV_BUFSIZE;
    iovs[i].iov_len = NT_UDP_RECV_BUFSIZE;
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
    msgs[i].msg_hdr.msg_control = ctrl[i].buf;
    msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].buf);
  }
  int n = recvmmsg(fd, msgs, NT_UDP_RECV_BATCH, MSG_DONTWAIT, NULL);
  if (n <= 0) {
    return 0;
  }
  for (int i = 0; i < n; i++) {
    datagrams +=
        nt_udp_deliver(&msgs[i].msg_hdr, msgs[i].msg_len, fn, user_data);
  }
  *full = n == NT_UDP_RECV_BATCH;
  return datagrams;
}

size_t nt_udp_deliver(struct msghdr *msg, size_t len, nt_udp_datagram_fn fn,
                      void *user_data) {
  size_t seg = nt_udp_gro_segment(msg, len), datagrams = 0;
  socklen_t fromlen = msg->msg_namelen;
  nt_addr_unmap((struct sockaddr_storage *)msg->msg_name, &fromlen);
  nt_addr dst;
  nt_udp_arrival(msg, &dst);
  uint8_t *p = msg->msg_iov[0].iov_base;
  size_t off = 0;
  do { /* a zero-length datagram too, once */
    size_t m = len - off < seg ? len - off : seg;
    fn(p + off, m, (struct sockaddr *)msg->msg_name, fromlen, &dst, user_data);
    datagrams++;
    off += m;
  } while (off < len);
  return datagrams;
}

int nt_udp_arrival(const struct msghdr *msg, nt_addr *dst) {
  memset(dst, 0, sizeof(*dst));
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm;
       cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
    if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
        cmsg_holds(msg, cm, sizeof(struct in6_pktinfo))) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
      if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr)) {
        return 0; /* no source for an answer */
      }
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&dst->ss;
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = pi.ipi6_addr;
      if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr)) {
        in6->sin6_scope_id = (uint32_t)pi.ipi6_ifindex;
      }
      dst->len = sizeof(*in6);
      /* Above the sockets IPv4 is AF_INET, never v4-mapped. */
      nt_addr_unmap(&dst->ss, &dst->len);
      return 1;
    }
    if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
        cmsg_holds(msg, cm, sizeof(struct in_pktinfo))) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
      /* ipi_spec_dst: the destination for unicast, the receiving
       * interface's address for broadcast (what an answer comes from). */
      struct sockaddr_in *in = (struct sockaddr_in *)&dst->ss;
      in->sin_family = AF_INET;
      in->sin_addr = pi.ipi_spec_dst;
      dst->len = sizeof(*in);
      return 1;
    }
  }
  return 0;
}

/* Writes the control message that makes a datagram to |dest| (as the
 * socket of |family| wants it) leave from |src| at |cm|. Returns the
 * room it took, or 0 when |src| cannot be the source of that datagram
 * (another family). */
size_t nt_udp_put_source(struct cmsghdr *cm, int family,
                         const struct sockaddr *dest, const nt_addr *src) {
  const struct sockaddr *s = (const struct sockaddr *)&src->ss;
  if (family == AF_INET6 && dest->sa_family == AF_INET6) {
    const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)dest;
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    if (IN6_IS_ADDR_V4MAPPED(&d6->sin6_addr)) {
      /* IPv4 on a dual-stack socket: the kernel takes a v4-mapped
       * source here too. */
      if (s->sa_family != AF_INET) {
        return 0;
      }
      pi.ipi6_addr.s6_addr[10] = 0xff;
      pi.ipi6_addr.s6_addr[11] = 0xff;
      memcpy(&pi.ipi6_addr.s6_addr[12],
             &((const struct sockaddr_in *)s)->sin_addr, 4);
    } else {
      if (s->sa_family != AF_INET6) {
        return 0;
      }
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)s;
      pi.ipi6_addr = s6->sin6_addr;
      if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr)) {
        pi.ipi6_ifindex = s6->sin6_scope_id;
      }
    }
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
    return CMSG_SPACE(sizeof(pi));
  }
  if (family == AF_INET && dest->sa_family == AF_INET &&
      s->sa_family == AF_INET) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    pi.ipi_spec_dst = ((const struct sockaddr_in *)s)->sin_addr;
    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
    return CMSG_SPACE(sizeof(pi));
  }
  return 0;
}

int nt_udp_send(int fd, int family, int v6only, const void *buf, size_t len,
                size_t segsize, const struct sockaddr *to, const nt_addr *src) {
  struct sockaddr_storage dest;
  struct iovec iov = {(void *)buf, len};
  struct msghdr msg;
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t)) + NT_UDP_PKTINFO_SPACE];
    struct cmsghdr align;
  } ctrl;

  /* IPv4 goes out v4-mapped on a dual-stack socket; a family the socket
   * cannot reach fails here, not as a sendmsg EINVAL (which a caller
   * would take for missing GSO). */
  socklen_t destlen = nt_addr_for_socket(family, v6only, to, &dest);
  if (!destlen) {
    return -EAFNOSUPPORT;
  }
  memset(&msg, 0, sizeof(msg));
  memset(&ctrl, 0, sizeof(ctrl));
  msg.msg_name = &dest;
  msg.msg_namelen = destlen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  size_t gso_room = 0, room = 0;
  if (segsize && segsize < len) {
    struct cmsghdr *cm = (struct cmsghdr *)ctrl.buf;
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)segsize;
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    gso_room = CMSG_SPACE(sizeof(uint16_t));
  }
  room = gso_room;
  if (src && src->len) {
    /* CMSG_SPACE keeps the next header aligned, as CMSG_NXTHDR would. */
    room += nt_udp_put_source((struct cmsghdr *)(ctrl.buf + gso_room), family,
                       (const struct sockaddr *)&dest, src);
  }
  msg.msg_control = room ? ctrl.buf : NULL;
  msg.msg_controllen = room;
  ssize_t n;
  for (;;) {
    do {
      n = sendmsg(fd, &msg, 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 0 || room == gso_room ||
        (errno != EINVAL && errno != EADDRNOTAVAIL && errno != ENETUNREACH)) {
      break;
    }
    /* The address the peer sent to is gone from this host (IPv6 says
     * EINVAL, IPv4 ENETUNREACH): the kernel picks the source, as it
     * would without one. */
    room = gso_room;
    msg.msg_control = room ? ctrl.buf : NULL;
    msg.msg_controllen = room;
  }
  return n < 0 ? -errno : 0;
}
