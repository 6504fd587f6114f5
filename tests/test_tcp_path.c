/* A TCP connection carrying datagrams (src/quic/tcp_path.c), over a
 * socketpair: the preamble and frames in pieces, bad preambles and frame
 * lengths close it, sends are framed and bounded, and a silent connection
 * is closed at its idle timeout. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "quic/tcp_path.h"
#include "test.h"
#include "test_loop.h"

typedef struct seen {
  int target, closed, read_done;
  char why[128];
  char data[8][64];
  size_t len[8], n;
} seen;

static int on_ready(nt_tcp_link *link, int target, void *ud) {
  seen *s = ud;
  (void)link;
  s->target = target;
  return 0;
}

static void on_datagram(nt_tcp_link *link, uint8_t *data, size_t len,
                        void *ud) {
  seen *s = ud;
  (void)link;
  if (s->n < 8 && len <= sizeof(s->data[0])) {
    memcpy(s->data[s->n], data, len);
    s->len[s->n++] = len;
  }
}

static void on_read_done(nt_tcp_link *link, void *ud) {
  (void)link;
  ((seen *)ud)->read_done++;
}

static void on_closed(nt_tcp_link *link, const char *why, void *ud) {
  seen *s = ud;
  (void)link;
  s->closed = 1;
  snprintf(s->why, sizeof(s->why), "%s", why);
}

static const nt_tcp_link_callbacks cbs = {on_ready, on_datagram, on_read_done,
                                          NULL, on_closed};

static struct sockaddr_in pseudo(void) {
  struct sockaddr_in in;
  memset(&in, 0, sizeof(in));
  in.sin_family = AF_INET;
  in.sin_port = htons(1000);
  inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
  return in;
}

/* An accepted link on one end of a socketpair; the other end in *peer. */
static nt_tcp_link *accepted(struct event_base *base, int *peer, seen *s,
                             uint64_t idle_ms) {
  int fds[2];
  nt_tcp_link *link = NULL;
  struct sockaddr_in in = pseudo();
  memset(s, 0, sizeof(*s));
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
  CHECK(nt_tcp_link_accept(&link, base, fds[0], (struct sockaddr *)&in,
                           sizeof(in), idle_ms, &cbs, s) == 0);
  *peer = fds[1];
  return link;
}

static int two_datagrams(void *ud) {
  return ((seen *)ud)->n == 2;
}

static int is_closed(void *ud) {
  return ((seen *)ud)->closed;
}

static void test_frames_in_pieces(void) {
  struct event_base *base = event_base_new();
  seen s;
  int peer;
  nt_tcp_link *link = accepted(base, &peer, &s, 0);
  static const uint8_t stream[] = "NATTER\x01\x01"
                                  "\x00\x03"
                                  "abc"
                                  "\x00\x01"
                                  "z";
  for (size_t i = 0; i < sizeof(stream) - 1; i++) {
    CHECK(write(peer, stream + i, 1) == 1);
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
  CHECK(run_until(base, two_datagrams, &s, 2000));
  CHECK(s.target == NT_TCPFRAME_TO_ENDPOINT);
  CHECK(s.len[0] == 3 && memcmp(s.data[0], "abc", 3) == 0);
  CHECK(s.len[1] == 1 && s.data[1][0] == 'z');
  CHECK(s.read_done >= 1);
  CHECK(!s.closed);
  const struct sockaddr_in *p =
      (const struct sockaddr_in *)&nt_tcp_link_pseudo(link)->ss;
  CHECK(p->sin_family == AF_INET && ntohs(p->sin_port) == 1000);
  uint64_t rx, tx;
  nt_tcp_link_traffic(link, &rx, &tx);
  CHECK(rx == sizeof(stream) - 1 && tx == 0);
  nt_tcp_link_free(link);
  close(peer);
  event_base_free(base);
}

static void expect_closed(const char *bytes, size_t len, const char *why) {
  struct event_base *base = event_base_new();
  seen s;
  int peer;
  nt_tcp_link *link = accepted(base, &peer, &s, 0);
  CHECK(write(peer, bytes, len) == (ssize_t)len);
  CHECK(run_until(base, is_closed, &s, 2000));
  CHECK_STR_CONTAINS(s.why, why);
  CHECK(s.n == 0);
  nt_tcp_link_free(link);
  close(peer);
  event_base_free(base);
}

static void test_refused(void) {
  expect_closed("GET / HTTP/1.0\r\n\r\n", 18, "bad preamble");
  expect_closed("NATTER\x02\x01", 8, "bad preamble");   /* version */
  expect_closed("NATTER\x01\x07", 8, "bad preamble");   /* target */
  expect_closed("NATTER\x01\x01\x00\x00", 10, "bad frame length");
  expect_closed("NATTER\x01\x02\xff\xff", 10, "bad frame length");
}

static void test_send(void) {
  struct event_base *base = event_base_new();
  seen s;
  int peer;
  nt_tcp_link *link = accepted(base, &peer, &s, 0);
  CHECK(nt_tcp_link_send(link, (const uint8_t *)"hello", 5, 0) == 0);
  CHECK(nt_tcp_link_send(link, (const uint8_t *)"0123456789", 10, 4) == 0);
  for (int i = 0; i < 10; i++) {
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
  uint8_t got[64];
  ssize_t n = read(peer, got, sizeof(got));
  static const uint8_t want[] = "\x00\x05hello\x00\x04"
                                "0123\x00\x04"
                                "4567\x00\x02"
                                "89";
  CHECK(n == (ssize_t)sizeof(want) - 1);
  CHECK(memcmp(got, want, sizeof(want) - 1) == 0);
  /* Without the loop nothing leaves: the queue fills, then drops. */
  uint8_t pkt[1200] = {0};
  size_t queued = 0;
  while (nt_tcp_link_send(link, pkt, sizeof(pkt), 0) == 0 &&
         queued < 4 * NT_TCP_LINK_MAX_QUEUED) {
    queued += sizeof(pkt);
  }
  CHECK(queued <= NT_TCP_LINK_MAX_QUEUED);
  CHECK(queued >= NT_TCP_LINK_MAX_QUEUED - 2 * sizeof(pkt));
  nt_tcp_link_free(link);
  close(peer);
  event_base_free(base);
}

static void test_idle(void) {
  struct event_base *base = event_base_new();
  seen s;
  int peer;
  nt_tcp_link *link = accepted(base, &peer, &s, 100);
  CHECK(run_until(base, is_closed, &s, 5000));
  CHECK_STR_CONTAINS(s.why, "idle timeout");
  CHECK(nt_tcp_link_send(link, (const uint8_t *)"x", 1, 0) == -1);
  nt_tcp_link_free(link);
  close(peer);
  event_base_free(base);
}

static void test_keys(void) {
  uint8_t k4[NT_TCP_LINK_KEY_LEN], k6[NT_TCP_LINK_KEY_LEN];
  struct sockaddr_in in = pseudo();
  struct sockaddr_in6 in6;
  memset(&in6, 0, sizeof(in6));
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(1000);
  inet_pton(AF_INET6, "::ffff:192.0.2.1", &in6.sin6_addr);
  CHECK(nt_tcp_link_key_of((struct sockaddr *)&in, k4) == 0);
  CHECK(nt_tcp_link_key_of((struct sockaddr *)&in6, k6) == 0);
  CHECK(memcmp(k4, k6, sizeof(k4)) == 0); /* either spelling of IPv4 */
  in6.sin6_port = htons(1001);
  CHECK(nt_tcp_link_key_of((struct sockaddr *)&in6, k6) == 0);
  CHECK(memcmp(k4, k6, sizeof(k4)) != 0);
  struct sockaddr un = {.sa_family = AF_UNIX};
  CHECK(nt_tcp_link_key_of(&un, k4) == -1);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"frames_in_pieces", test_frames_in_pieces},
      {"refused", test_refused},
      {"send", test_send},
      {"idle", test_idle},
      {"keys", test_keys},
      {NULL, NULL}};
  return nt_test_run(cases);
}
