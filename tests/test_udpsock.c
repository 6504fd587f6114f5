/* The arrival address of datagrams on wildcard-bound sockets and replies
 * from it (src/quic/udpsock.c), with real sockets on loopback: a dual-stack
 * socket reports IPv4 arrivals as plain AF_INET, an IPv4 socket through
 * IP_PKTINFO; replies name their source, also next to a GSO segment size;
 * a source the host does not have falls back to the kernel's choice; a
 * socket bound to one address reports nothing. (That the source matters
 * on a host with several addresses is the NAT lab's "second address"
 * cases.) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "test_cmsg.h"
#include "quic/udpsock.h"

static nt_addr parse(const char *text) {
  nt_addr a;
  char err[128];
  memset(&a, 0, sizeof(a));
  CHECK(nt_addr_parse(&a, text, "::", err, sizeof(err)) == 0);
  return a;
}

/* A plain socket of |family| bound to loopback, port any. */
static int loopback_socket(int family, nt_addr *bound) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  *bound = parse(family == AF_INET ? "127.0.0.1:0" : "[::1]:0");
  if (fd < 0 || bind(fd, (struct sockaddr *)&bound->ss, bound->len) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return -1;
  }
  bound->len = sizeof(bound->ss);
  getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len);
  return fd;
}

static int wait_readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 2000) == 1;
}

/* Receives one datagram on |fd| (waiting at most 2 s): its sender in
 * *from (unmapped, as the endpoint sees it) and its arrival address in
 * *dst. Returns its length or -1. */
static ssize_t recv_arrival(int fd, uint8_t *buf, size_t size, nt_addr *from,
                            nt_addr *dst) {
  union {
    char buf[NT_UDP_PKTINFO_SPACE];
    struct cmsghdr align;
  } ctrl;
  struct iovec iov = {buf, size};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = &from->ss;
  msg.msg_namelen = sizeof(from->ss);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl.buf;
  msg.msg_controllen = sizeof(ctrl.buf);
  if (!wait_readable(fd)) {
    return -1;
  }
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  from->len = msg.msg_namelen;
  nt_addr_unmap(&from->ss, &from->len);
  nt_udp_arrival(&msg, dst);
  return n;
}

/* Receives one datagram on a plain socket: 1 when it says |want| and came
 * from |server_ip| (port |port|). */
static int got_from(int fd, const char *want, const char *server_ip,
                    uint16_t port) {
  uint8_t buf[64];
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char ip[INET6_ADDRSTRLEN] = "";
  if (!wait_readable(fd)) {
    return 0;
  }
  ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
                       (struct sockaddr *)&ss, &len);
  if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
    return 0;
  }
  const void *raw =
      ss.ss_family == AF_INET
          ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
          : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  inet_ntop(ss.ss_family, raw, ip, sizeof(ip));
  return strcmp(ip, server_ip) == 0 &&
         nt_addr_port((struct sockaddr *)&ss) == port;
}

/* One exchange: |client_family| sends to the server at |server_ip|; the
 * server must see |server_ip| as the arrival address (in |dst_family|)
 * and its reply, from there, must reach the client. */
static void exchange(int server, int family, int v6only, uint16_t port,
                     int client_family, const char *server_ip, int dst_family) {
  nt_addr cli, to, from, dst;
  uint8_t buf[64];
  int c = loopback_socket(client_family, &cli);
  if (c < 0) {
    fprintf(stderr, "  (no %s loopback: skipped)\n", server_ip);
    return;
  }
  char text[80];
  snprintf(text, sizeof(text), client_family == AF_INET ? "%s:%u" : "[%s]:%u",
           server_ip, port);
  to = parse(text);
  CHECK(sendto(c, "ping", 4, 0, (struct sockaddr *)&to.ss, to.len) == 4);
  CHECK(recv_arrival(server, buf, sizeof(buf), &from, &dst) == 4);
  CHECK(dst.len > 0);
  CHECK(dst.ss.ss_family == dst_family);
  CHECK(
      nt_addr_same_host((struct sockaddr *)&dst.ss, (struct sockaddr *)&to.ss));
  CHECK(nt_addr_equal((struct sockaddr *)&from.ss, (struct sockaddr *)&cli.ss));

  /* From the arrival address. */
  CHECK(nt_udp_send(server, family, v6only, "pong", 4, 0,
                    (struct sockaddr *)&from.ss, &dst) == 0);
  CHECK(got_from(c, "pong", server_ip, port));

  /* A GSO batch from it: three datagrams. */
  uint8_t batch[250];
  memset(batch, 'g', sizeof(batch));
  int rv = nt_udp_send(server, family, v6only, batch, sizeof(batch), 100,
                       (struct sockaddr *)&from.ss, &dst);
  if (rv == 0) {
    for (int i = 0; i < 3; i++) {
      /* MSG_TRUNC: the datagram's length, whatever fits in buf. */
      CHECK(wait_readable(c));
      CHECK(recv(c, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) ==
            (i < 2 ? 100 : 50));
    }
  } else {
    fprintf(stderr, "  (no UDP GSO here: %s)\n", strerror(-rv));
  }

  /* A source this host does not have (TEST-NET): the kernel's choice,
   * which on loopback is the address asked. */
  nt_addr gone =
      parse(client_family == AF_INET ? "192.0.2.1:0" : "[2001:db8::99]:0");
  rv = nt_udp_send(server, family, v6only, "late", 4, 0,
                   (struct sockaddr *)&from.ss, &gone);
  if (rv != 0) {
    fprintf(stderr, "  gone source: %s\n", strerror(-rv));
  }
  CHECK(rv == 0);
  CHECK(got_from(c, "late", server_ip, port));

  /* A source of the other family is no source. */
  nt_addr other = parse(client_family == AF_INET ? "[::1]:0" : "127.0.0.1:0");
  CHECK(nt_udp_send(server, family, v6only, "othr", 4, 0,
                    (struct sockaddr *)&from.ss, &other) == 0);
  CHECK(got_from(c, "othr", server_ip, port));
  close(c);
}

static void test_dual_stack(void) {
  nt_addr bind = parse(":0");
  int family, v6only;
  int fd = nt_udp_open(&bind, 1, &family, &v6only);
  CHECK(fd >= 0);
  if (fd < 0) {
    return;
  }
  nt_addr local;
  local.len = sizeof(local.ss);
  getsockname(fd, (struct sockaddr *)&local.ss, &local.len);
  uint16_t port = nt_addr_port((struct sockaddr *)&local.ss);
  /* IPv4 arrives v4-mapped on a dual-stack socket: reported plain. */
  exchange(fd, family, v6only, port, AF_INET, "127.0.0.1", AF_INET);
  if (family == AF_INET6) {
    exchange(fd, family, v6only, port, AF_INET6, "::1", AF_INET6);
  }
  close(fd);
}

static void test_ipv4_socket(void) {
  nt_addr bind = parse("0.0.0.0:0");
  int family, v6only;
  int fd = nt_udp_open(&bind, 0, &family, &v6only);
  CHECK(fd >= 0 && family == AF_INET);
  if (fd < 0) {
    return;
  }
  nt_addr local;
  local.len = sizeof(local.ss);
  getsockname(fd, (struct sockaddr *)&local.ss, &local.len);
  exchange(fd, family, v6only, nt_addr_port((struct sockaddr *)&local.ss),
           AF_INET, "127.0.0.1", AF_INET);
  close(fd);
}

/* Bound to one address: the kernel has only that one to answer from, and
 * nothing is reported. */
static void test_bound_socket(void) {
  nt_addr bind = parse("127.0.0.1:0"), cli, from, dst;
  int family, v6only;
  uint8_t buf[16];
  int fd = nt_udp_open(&bind, 1, &family, &v6only);
  CHECK(fd >= 0);
  int c = loopback_socket(AF_INET, &cli);
  CHECK(c >= 0);
  if (fd < 0 || c < 0) {
    return;
  }
  nt_addr local;
  local.len = sizeof(local.ss);
  getsockname(fd, (struct sockaddr *)&local.ss, &local.len);
  CHECK(sendto(c, "ping", 4, 0, (struct sockaddr *)&local.ss, local.len) == 4);
  CHECK(recv_arrival(fd, buf, sizeof(buf), &from, &dst) == 4);
  CHECK(dst.len == 0);
  CHECK(nt_udp_send(fd, family, v6only, "pong", 4, 0,
                    (struct sockaddr *)&from.ss, &dst) == 0);
  CHECK(got_from(c, "pong", "127.0.0.1",
                 nt_addr_port((struct sockaddr *)&local.ss)));
  close(c);
  close(fd);
}

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* One received message of a GRO train as nt_udp_deliver takes it. */
typedef struct split_seen {
  size_t n, lens[8];
} split_seen;

static void count_datagram(uint8_t *data, size_t len,
                           const struct sockaddr *from, socklen_t fromlen,
                           const nt_addr *dst, void *ud) {
  split_seen *s = ud;
  (void)data;
  (void)from;
  (void)fromlen;
  (void)dst;
  if (s->n < 8) {
    s->lens[s->n] = len;
  }
  s->n++;
}

/* A train of 10-byte datagrams from a v4-mapped sender: split in order,
 * the last one shorter, the sender plain AF_INET. */
static void test_deliver_train(void) {
  uint8_t payload[25] = {0};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl;
  struct sockaddr_storage from;
  nt_addr mapped = parse("[::ffff:198.51.100.7]:4433");
  struct iovec iov = {payload, sizeof(payload)};
  struct msghdr msg;
  split_seen seen = {0};
  int gso = 10;

  memcpy(&from, &mapped.ss, sizeof(from));
  test_msg_init(&msg, &from, mapped.len, &iov, ctrl.buf, sizeof(ctrl.buf));
  test_cmsg_put(&msg, SOL_UDP, UDP_GRO, &gso, sizeof(gso));
  CHECK(nt_udp_deliver(&msg, sizeof(payload), count_datagram, &seen) == 3);
  CHECK(seen.n == 3 && seen.lens[0] == 10 && seen.lens[1] == 10 &&
        seen.lens[2] == 5);
  CHECK(from.ss_family == AF_INET);
}

/* A cmsg the kernel cut short (MSG_CTRUNC: cmsg_len below its type's
 * size) or one claiming more than msg_controllen holds must not be read
 * past its end: the bytes there are stale, or not ours. Found by
 * tests/fuzz/fuzz_gro.c. */
static void test_short_cmsgs(void) {
  union {
    char buf[256];
    struct cmsghdr align;
  } ctrl;
  struct msghdr msg;
  nt_addr dst;
  int stale = 7;

  /* UDP_GRO with two of its four bytes: stale bytes follow. */
  memset(&ctrl, 0, sizeof(ctrl));
  memset(&msg, 0, sizeof(msg));
  msg.msg_control = ctrl.buf;
  msg.msg_controllen = CMSG_LEN(2);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_GRO;
  cm->cmsg_len = CMSG_LEN(2);
  memcpy(CMSG_DATA(cm), &stale, sizeof(stale));
  CHECK(nt_udp_gro_segment(&msg, 1200) == 1200);

  /* IP_PKTINFO whose header claims more than msg_controllen, with a
   * whole pktinfo in the bytes beyond. */
  struct in_pktinfo pi;
  memset(&pi, 0, sizeof(pi));
  pi.ipi_spec_dst.s_addr = htonl(0xc0000201);
  memset(&ctrl, 0, sizeof(ctrl));
  cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = IPPROTO_IP;
  cm->cmsg_type = IP_PKTINFO;
  cm->cmsg_len = CMSG_LEN(sizeof(pi));
  memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
  msg.msg_controllen = sizeof(struct cmsghdr);
  CHECK(nt_udp_arrival(&msg, &dst) == 0 && dst.len == 0);
  msg.msg_controllen = CMSG_LEN(sizeof(pi)); /* whole: read */
  CHECK(nt_udp_arrival(&msg, &dst) == 1 &&
        dst.len == sizeof(struct sockaddr_in));
}

int main(void) {
  static const nt_test_case cases[] = {{"dual_stack", test_dual_stack},
                                       {"ipv4_socket", test_ipv4_socket},
                                       {"bound_socket", test_bound_socket},
                                       {"deliver_train", test_deliver_train},
                                       {"short_cmsgs", test_short_cmsgs},
                                       {NULL, NULL}};
  return nt_test_run(cases);
}
