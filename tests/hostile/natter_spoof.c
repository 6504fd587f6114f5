/* natter-spoof: a hostile client of a broker that makes the broker's
 * view of its address lie, and asks again and again for a peer, for the
 * probe-budget tests (tests/integration/test_probe_budget.sh). Built on
 * the library's internals in test builds only; never installed.
 *
 *   natter-spoof [-victim IP] [-spoof N] [-every MS] [-mapping KIND]
 *                BROKER BIND NAME PEER SECONDS
 *   natter-spoof -proxy PORT BROKER BIND SECONDS
 *
 * Checks in as NAME, its packets reaching the broker from a socket bound
 * to BIND (a relay inside this process stands between its connection and
 * the broker, as a NAT would), reports the NAT mapping KIND (symmetric,
 * the default, or cone) and asks for PEER, again every MS if given.
 *
 * With -victim, the N packets (default 10) that follow the check-in's
 * answer, the ConnectRequest among them, leave from a socket bound to
 * IP:0 instead, as copies of genuine packets sent from a spoofed source
 * would: the broker's connection then sees a new path it has not
 * validated. What comes back to the victim's socket is dropped
 * unanswered: the victim is a host that never answers.
 *
 * It counts, on a raw socket (root only), the UDP datagrams to the
 * victim's IP address (else BIND's) from anyone but the broker, and
 * prints
 *   counted N ports M      (or "counted unavailable" without root)
 *   victim_received K      datagrams to the victim's own socket
 *   introductions I        Introductions the broker sent it
 * With -proxy, it is only the relay, for a real client that names
 * 127.0.0.1:PORT as its broker: the broker sees that client at BIND's
 * address and a port of the relay's, and the client's NAT mapping check
 * (sent to the broker's second port directly) sees another port: the
 * client takes its NAT for symmetric.
 *
 * Every run ends by itself after SECONDS. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_client.h"
#include "codec/mapping.h"

typedef struct spoof {
  struct event_base *base;
  nt_endpoint *ep;
  nt_identity *id;
  nt_log log;
  nt_addr broker;
  const char *name, *peer;
  int mapping;
  unsigned every_ms;
  int spoof_n, spoof_left;
  /* The relay: |in| faces our connection, |out| the broker, |victim|
   * stands in for the host whose address is spoofed. */
  int in_fd, out_fd, victim_fd, raw_fd;
  nt_addr client; /* where our connection sends from */
  struct in_addr target;
  unsigned long counted, victim_received, introductions;
  uint8_t ports_seen[65536 / 8];
  unsigned distinct_ports;
  nt_hclient bc;
  uint32_t next_id;
  struct event *every_ev;
} spoof;

static int udp_socket(const char *ip, uint16_t port, nt_addr *bound) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  if (fd < 0 || inet_pton(AF_INET, ip, &sin.sin_addr) != 1 ||
      bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    fprintf(stderr, "natter-spoof: cannot bind a UDP socket to %s: %s\n", ip,
            strerror(errno));
    exit(1);
  }
  if (bound) {
    memset(bound, 0, sizeof(*bound));
    memcpy(&bound->ss, &sin, sizeof(sin));
    bound->len = sizeof(sin);
  }
  return fd;
}

/* Asks for the peer; the first time also sets it asking again every MS
 * (-every). */
static void ask_cb(evutil_socket_t fd, short what, void *arg) {
  spoof *s = arg;
  nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
  (void)fd;
  (void)what;
  msg.u.connect_request.request_id = ++s->next_id;
  snprintf(msg.u.connect_request.peer, sizeof(msg.u.connect_request.peer), "%s",
           s->peer);
  nt_hclient_send(&s->bc, &msg);
  if (s->every_ms && !s->every_ev) {
    struct timeval tv = {s->every_ms / 1000, (s->every_ms % 1000) * 1000};
    s->every_ev = event_new(s->base, -1, EV_PERSIST, ask_cb, s);
    event_add(s->every_ev, &tv);
  }
}

static void checked_in(spoof *s) {
  nt_control msg = {.type = NT_CONTROL_NAT_REPORT};
  msg.u.nat_report.mapping = s->mapping;
  /* What we write next leaves from the victim's address: the NatReport
   * moves the broker's view of us there (after the packet is read), the
   * ConnectRequest a moment later finds it moved. */
  s->spoof_left = s->spoof_n;
  nt_hclient_send(&s->bc, &msg);
  struct timeval tv = {0, 300 * 1000};
  event_base_once(s->base, -1, EV_TIMEOUT, ask_cb, s, &tv);
}

static int on_msg(const nt_control *msg, void *ud) {
  spoof *s = ud;
  char addr[NT_ADDR_STRLEN];
  if (!msg) {
    return 0;
  }
  switch (msg->type) {
  case NT_CONTROL_CHECK_IN_RESULT:
    if (msg->u.check_in_result.code == NT_CODE_OK) {
      checked_in(s);
    } else {
      fprintf(stderr, "natter-spoof: check-in refused: %s\n",
              msg->u.check_in_result.message);
    }
    break;
  case NT_CONTROL_INTRODUCTION:
    s->introductions++;
    fprintf(
        stderr, "natter-spoof: introduced to %s at %s\n",
        msg->u.introduction.name,
        nt_addr_str((struct sockaddr *)&msg->u.introduction.observed.ss, addr));
    break;
  default:
    break;
  }
  return 0;
}

static void on_established(nt_conn *conn, void *ud) {
  spoof *s = ud;
  nt_hclient_check_in in = {.name = s->name};
  nt_hclient_start(&s->bc, conn, &in);
}

static void on_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                      const char *message, void *ud) {
  (void)conn;
  (void)reason;
  (void)code;
  (void)ud;
  fprintf(stderr, "natter-spoof: broker connection closed: %s\n", message);
}

static const nt_conn_callbacks conn_callbacks = {
    on_established, on_closed, NULL, NULL, NULL, NULL, NULL};

/* One datagram from |fd| into |buf| (its sender in |from|), or -1 when
 * none is waiting. */
static ssize_t recv_one(int fd, uint8_t *buf, size_t cap, nt_addr *from) {
  socklen_t fromlen = sizeof(from->ss);
  ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from->ss, &fromlen);
  if (n >= 0) {
    from->len = fromlen;
  }
  return n;
}

/* Our connection -> the broker, from |out| or, while spoofing, |victim|. */
static void in_cb(evutil_socket_t fd, short what, void *arg) {
  spoof *s = arg;
  uint8_t buf[65536];
  (void)what;
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv_one(fd, buf, sizeof(buf), &s->client);
    if (n < 0) {
      return;
    }
    int via = s->out_fd;
    if (s->spoof_left > 0) {
      s->spoof_left--;
      via = s->victim_fd;
    }
    sendto(via, buf, (size_t)n, 0, (struct sockaddr *)&s->broker.ss,
           s->broker.len);
  }
}

/* The broker -> our connection. */
static void out_cb(evutil_socket_t fd, short what, void *arg) {
  spoof *s = arg;
  uint8_t buf[65536];
  nt_addr from;
  (void)what;
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv_one(fd, buf, sizeof(buf), &from);
    if (n < 0) {
      return;
    }
    if (s->client.len && nt_addr_equal((struct sockaddr *)&from.ss,
                                       (struct sockaddr *)&s->broker.ss)) {
      sendto(s->in_fd, buf, (size_t)n, 0, (struct sockaddr *)&s->client.ss,
             s->client.len);
    }
  }
}

/* The victim never answers. */
static void victim_cb(evutil_socket_t fd, short what, void *arg) {
  spoof *s = arg;
  uint8_t buf[2048];
  (void)what;
  while (recv(fd, buf, sizeof(buf), 0) >= 0) {
    s->victim_received++;
  }
}

/* Every UDP datagram to the target address that the broker did not send
 * (its ports PORT, PORT+1 and PORT+2). */
static void raw_cb(evutil_socket_t fd, short what, void *arg) {
  spoof *s = arg;
  uint8_t buf[2048];
  const struct sockaddr_in *b = (const struct sockaddr_in *)&s->broker.ss;
  uint16_t bport = ntohs(b->sin_port);
  (void)what;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      return;
    }
    struct iphdr ip;
    struct udphdr udp;
    if ((size_t)n < sizeof(ip)) {
      continue;
    }
    memcpy(&ip, buf, sizeof(ip));
    size_t hl = (size_t)ip.ihl * 4;
    if (ip.protocol != IPPROTO_UDP || (size_t)n < hl + sizeof(udp) ||
        ip.daddr != s->target.s_addr) {
      continue;
    }
    memcpy(&udp, buf + hl, sizeof(udp));
    uint16_t sport = ntohs(udp.source), dport = ntohs(udp.dest);
    if (ip.saddr == b->sin_addr.s_addr && sport >= bport &&
        sport <= bport + 2) {
      continue;
    }
    s->counted++;
    if (!(s->ports_seen[dport / 8] & (1u << (dport % 8)))) {
      s->ports_seen[dport / 8] |= (uint8_t)(1u << (dport % 8));
      s->distinct_ports++;
    }
  }
}

static int usage(void) {
  fprintf(stderr, "usage: natter-spoof [-victim IP] [-spoof N] [-every MS] "
                  "[-mapping symmetric|cone] BROKER BIND NAME PEER SECONDS\n"
                  "       natter-spoof -proxy PORT BROKER BIND SECONDS\n");
  return 2;
}

int main(int argc, char **argv) {
  spoof s;
  char err[300];
  const char *victim = NULL;
  int proxy_port = 0;
  nt_addr in_addr, loopback;

  memset(&s, 0, sizeof(s));
  nt_hclient_init(&s.bc, on_msg, &s, NT_HCLIENT_ADMIT_ASK);
  s.mapping = NT_MAPPING_PER_DESTINATION;
  s.spoof_n = 10;
  s.raw_fd = s.victim_fd = -1;
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (strcmp(argv[i], "-victim") == 0) {
      victim = argv[i + 1];
    } else if (strcmp(argv[i], "-spoof") == 0) {
      s.spoof_n = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "-every") == 0) {
      s.every_ms = (unsigned)atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "-proxy") == 0) {
      proxy_port = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "-mapping") == 0) {
      s.mapping = strcmp(argv[i + 1], "cone") == 0
                      ? NT_MAPPING_ENDPOINT_INDEPENDENT
                      : NT_MAPPING_PER_DESTINATION;
    } else {
      return usage();
    }
  }
  if (argc - i != (proxy_port ? 3 : 5) || proxy_port < 0 ||
      proxy_port > 65535) {
    return usage();
  }
  unsigned seconds = (unsigned)atoi(argv[i + (proxy_port ? 2 : 4)]);
  s.name = proxy_port ? "" : argv[i + 2];
  s.peer = proxy_port ? "" : argv[i + 3];
  if (seconds == 0 || seconds > 120 || s.spoof_n < 0 || s.spoof_n > 1000 ||
      (s.every_ms && s.every_ms < 100)) {
    return usage();
  }
  if (!victim) {
    s.spoof_n = 0;
  }
  s.log.level = NATTER_LOG_WARN;
  if (nt_addr_parse(&s.broker, argv[i], "127.0.0.1", err, sizeof(err)) != 0 ||
      s.broker.ss.ss_family != AF_INET) {
    fprintf(stderr, "natter-spoof: broker (IPv4): %s\n", err);
    return 2;
  }
  if (inet_pton(AF_INET, victim ? victim : argv[i + 1], &s.target) != 1) {
    return usage();
  }
  s.base = event_base_new();
  s.in_fd = udp_socket("127.0.0.1", (uint16_t)proxy_port, &in_addr);
  s.out_fd = udp_socket(argv[i + 1], 0, NULL);
  if (victim) {
    s.victim_fd = udp_socket(victim, 0, NULL);
  }
  s.raw_fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_UDP);
  if (s.raw_fd >= 0) {
    int big = 8 << 20;
    setsockopt(s.raw_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  }
  if (!s.base || nt_identity_new_ephemeral(&s.id, err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-spoof: %s\n", err);
    return 1;
  }
  struct event *evs[4] = {
      event_new(s.base, s.in_fd, EV_READ | EV_PERSIST, in_cb, &s),
      event_new(s.base, s.out_fd, EV_READ | EV_PERSIST, out_cb, &s),
      victim
          ? event_new(s.base, s.victim_fd, EV_READ | EV_PERSIST, victim_cb, &s)
          : NULL,
      s.raw_fd >= 0
          ? event_new(s.base, s.raw_fd, EV_READ | EV_PERSIST, raw_cb, &s)
          : NULL};
  for (int k = 0; k < 4; k++) {
    if (evs[k]) {
      event_add(evs[k], NULL);
    }
  }
  nt_addr_parse(&loopback, "127.0.0.1:0", NULL, err, sizeof(err));
  if (nt_hclient_endpoint(&s.ep, s.base, &loopback, s.id, &s.log, 5000, err,
                          sizeof(err)) != 0) {
    fprintf(stderr, "natter-spoof: %s\n", err);
    return 1;
  }
  nt_conn *conn;
  if (!proxy_port &&
      nt_endpoint_connect(s.ep, (struct sockaddr *)&in_addr.ss, in_addr.len,
                          NULL, &conn_callbacks, &s, &conn) != 0) {
    fprintf(stderr, "natter-spoof: cannot start the connection\n");
    return 1;
  }
  struct event *done = nt_hclient_deadline(s.base, seconds);
  event_base_dispatch(s.base);
  if (s.raw_fd >= 0) {
    printf("counted %lu ports %u\n", s.counted, s.distinct_ports);
  } else {
    printf("counted unavailable\n");
  }
  printf("victim_received %lu\nintroductions %lu\n", s.victim_received,
         s.introductions);
  if (done) {
    event_free(done);
  }
  if (s.every_ev) {
    event_free(s.every_ev);
  }
  for (int k = 0; k < 4; k++) {
    if (evs[k]) {
      event_free(evs[k]);
    }
  }
  nt_endpoint_free(s.ep);
  nt_hclient_reset(&s.bc);
  nt_identity_free(s.id);
  event_base_free(s.base);
  close(s.in_fd);
  close(s.out_fd);
  if (s.victim_fd >= 0) {
    close(s.victim_fd);
  }
  if (s.raw_fd >= 0) {
    close(s.raw_fd);
  }
  return 0;
}
