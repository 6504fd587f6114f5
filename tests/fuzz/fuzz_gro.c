/* libFuzzer target: what the endpoint's and the relay's batched reads
 * make of one received message (src/quic/udpsock.c, nt_udp_deliver): a
 * GRO train split into datagrams by the UDP_GRO segment size, the sender
 * unmapped, the arrival address from IP_PKTINFO / IPV6_PKTINFO. The
 * kernel writes the cmsgs; the bytes after them come from anyone. Every
 * byte of the message is handed on exactly once, in order, in datagrams
 * of one size but the last. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "quic/udpsock.h"

#define CTRL_MAX 256

typedef struct seen {
  const uint8_t *next; /* where the next datagram must start */
  size_t n, first, last, total;
} seen;

static void on_datagram(uint8_t *data, size_t len, const struct sockaddr *from,
                        socklen_t fromlen, const nt_addr *dst, void *ud) {
  seen *s = ud;
  if (data != s->next || fromlen > sizeof(struct sockaddr_storage) ||
      (s->n > 0 && s->last != s->first) || (s->n > 0 && len > s->first)) {
    abort(); /* out of order, or a short datagram before the last */
  }
  if (fromlen >= sizeof(struct sockaddr_in6) && from->sa_family == AF_INET6 &&
      IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)from)->sin6_addr)) {
    abort(); /* above the sockets, IPv4 is AF_INET */
  }
  if (dst->len != 0) {
    const struct sockaddr *d = (const struct sockaddr *)&dst->ss;
    if (!((dst->len == sizeof(struct sockaddr_in) && d->sa_family == AF_INET) ||
          (dst->len == sizeof(struct sockaddr_in6) &&
           d->sa_family == AF_INET6 &&
           !IN6_IS_ADDR_V4MAPPED(
               &((const struct sockaddr_in6 *)d)->sin6_addr))) ||
        nt_addr_port(d) != 0) {
      abort();
    }
  }
  if (s->n == 0) {
    s->first = len;
  }
  s->last = len;
  s->n++;
  s->total += len;
  s->next = data + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sockaddr_storage from;
  union {
    uint8_t buf[CTRL_MAX];
    struct cmsghdr align;
  } ctrl;
  static uint8_t payload[NT_UDP_RECV_BUFSIZE];
  size_t off = 0;

  if (size < 2) {
    return 0;
  }
  /* The sender: at most a sockaddr_storage, as the kernel fills it. */
  size_t namelen = data[off++] % (sizeof(from) + 1);
  memset(&from, 0, sizeof(from));
  size_t take = namelen < size - off ? namelen : size - off;
  memcpy(&from, data + off, take);
  off += take;
  /* The cmsgs. */
  size_t controllen = off < size ? data[off++] : 0;
  memset(&ctrl, 0, sizeof(ctrl));
  take = controllen < size - off ? controllen : size - off;
  memcpy(ctrl.buf, data + off, take);
  off += take;
  /* The rest is the received train. */
  size_t len = size - off;
  if (len > sizeof(payload)) {
    return 0;
  }
  memcpy(payload, data + off, len);

  /* Exactly msg_controllen bytes, so that reading past them shows. */
  uint8_t *control = controllen ? malloc(controllen) : NULL;
  if (controllen && !control) {
    return 0;
  }
  if (control) {
    memcpy(control, ctrl.buf, controllen);
  }
  struct iovec iov = {payload, sizeof(payload)};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = &from;
  msg.msg_namelen = (socklen_t)namelen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = controllen;

  seen s = {payload, 0, 0, 0, 0};
  size_t n = nt_udp_deliver(&msg, len, on_datagram, &s);
  if (n != s.n || n == 0 || s.total != len || (len == 0 && n != 1) ||
      n > (len ? len : 1)) {
    abort();
  }
  size_t seg = nt_udp_gro_segment(&msg, len);
  if ((seg == 0 && len != 0) || (n > 1 && s.first != seg) ||
      (n == 1 && seg < len)) {
    abort();
  }
  free(control);
  return 0;
}
