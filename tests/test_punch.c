/* Punch schedule and packets, and NAT mapping-check packets. */
#include <arpa/inet.h>
#include <stdlib.h>

#include "codec/mapping.h"
#include "client/predict.h"
#include "client/punch.h"
#include "test.h"
#include "test_addrs.h"

#define MS 1000000ull

typedef struct sent {
  int count;
  nt_addr last;
} sent;

static void count_send(const uint8_t *pkt, size_t len, const nt_addr *to,
                       void *ud) {
  sent *s = ud;
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  CHECK(nt_punch_decode(pkt, len, nonce) == NT_PUNCH_PROBE);
  s->count++;
  s->last = *to;
}

static void test_schedule(void) {
  uint8_t nonce[NT_PUNCH_NONCE_LEN] = {1, 2, 3};
  nt_addr cands[2] = {addr4("203.0.113.5", 4000), addr4("198.18.0.5", 4000)};
  nt_punch p;
  sent s = {0};

  nt_punch_init(&p, nonce, cands, 2, 1000 * MS, 10000 * MS);
  CHECK(nt_punch_next_expiry(&p) == 1000 * MS);
  CHECK(nt_punch_on_expiry(&p, 1000 * MS, count_send, &s) == 0);
  CHECK(s.count == 2); /* one probe per candidate per round */
  uint64_t next = nt_punch_next_expiry(&p);
  CHECK(next > 1000 * MS && next <= 1100 * MS); /* quick rounds first */
  /* Nothing is due before the next round. */
  CHECK(nt_punch_on_expiry(&p, next - 1, count_send, &s) == 0);
  CHECK(s.count == 2);
  /* Bounded: walking time forward sends a bounded number of rounds and
   * then reports the deadline. */
  uint64_t now = next;
  int rounds = 0;
  while (nt_punch_on_expiry(&p, now, count_send, &s) == 0 && rounds < 100) {
    now = nt_punch_next_expiry(&p);
    rounds++;
  }
  CHECK(rounds < 30);
  CHECK(now >= 11000 * MS);
  CHECK(nt_punch_next_expiry(&p) <= 11000 * MS);
}

static void test_too_many_candidates(void) {
  uint8_t nonce[NT_PUNCH_NONCE_LEN] = {0};
  nt_addr cands[20];
  nt_punch p;
  for (int i = 0; i < 20; i++) {
    cands[i] = addr4("198.18.0.1", (uint16_t)(1000 + i));
  }
  nt_punch_init(&p, nonce, cands, 20, 0, 1000 * MS);
  CHECK(p.ncandidates == NT_PUNCH_MAX_CANDIDATES);
}

static void test_packets(void) {
  uint8_t nonce[NT_PUNCH_NONCE_LEN], out[NT_PUNCH_NONCE_LEN];
  uint8_t buf[NT_PUNCH_PACKET_LEN];
  for (int i = 0; i < NT_PUNCH_NONCE_LEN; i++) {
    nonce[i] = (uint8_t)(i * 7);
  }
  CHECK(nt_punch_encode(buf, NT_PUNCH_REPLY, nonce) == NT_PUNCH_PACKET_LEN);
  CHECK(nt_punch_decode(buf, sizeof(buf), out) == NT_PUNCH_REPLY);
  CHECK(memcmp(out, nonce, sizeof(nonce)) == 0);
  CHECK(nt_punch_decode(buf, sizeof(buf) - 1, out) == 0);
  buf[5] = 9; /* unknown type */
  CHECK(nt_punch_decode(buf, sizeof(buf), out) == 0);
  buf[5] = NT_PUNCH_PROBE;
  buf[1] = 'X'; /* bad magic */
  CHECK(nt_punch_decode(buf, sizeof(buf), out) == 0);
  /* Shorter than any QUIC packet, so the endpoint can tell them apart. */
  CHECK(NT_PUNCH_PACKET_LEN < 34);
}

static void test_mapping(void) {
  uint8_t nonce[NT_MAPPING_NONCE_LEN] = {9, 8, 7, 6, 5, 4, 3, 2};
  uint8_t got[NT_MAPPING_NONCE_LEN];
  uint8_t buf[NT_MAPPING_REPLY_MAX];
  nt_addr a = addr4("203.0.113.9", 40001), seen;

  CHECK(nt_mapping_encode_request(buf, nonce) == NT_MAPPING_REQUEST_LEN);
  CHECK(nt_mapping_decode_request(buf, NT_MAPPING_REQUEST_LEN, got) == 1);
  /* No amplification: a request is as long as the longest reply, and a
   * shorter one (the unpadded header) gets no answer. */
  CHECK(NT_MAPPING_REQUEST_LEN >= NT_MAPPING_REPLY_MAX);
  CHECK(nt_mapping_decode_request(buf, 14, got) == 0);
  CHECK(memcmp(got, nonce, sizeof(nonce)) == 0);
  CHECK(nt_mapping_decode_reply(buf, NT_MAPPING_REQUEST_LEN, got, &seen) ==
        0);
  size_t n = nt_mapping_encode_reply(buf, nonce, (struct sockaddr *)&a.ss);
  CHECK(n > 0 && n < 34);
  CHECK(nt_mapping_decode_reply(buf, n, got, &seen) == 1);
  CHECK(nt_addr_equal((struct sockaddr *)&a.ss, (struct sockaddr *)&seen.ss));
  CHECK(nt_mapping_decode_request(buf, n, got) == 0);
  CHECK(nt_mapping_decode_reply(buf, n - 1, got, &seen) == 0);

  struct sockaddr_in6 six;
  memset(&six, 0, sizeof(six));
  six.sin6_family = AF_INET6;
  six.sin6_port = htons(5);
  inet_pton(AF_INET6, "2001:db8::1", &six.sin6_addr);
  n = nt_mapping_encode_reply(buf, nonce, (struct sockaddr *)&six);
  CHECK(n == NT_MAPPING_REPLY_MAX && n < 34);
  CHECK(nt_mapping_decode_reply(buf, n, got, &seen) == 1);
  CHECK(nt_addr_port((struct sockaddr *)&seen.ss) == 5);
}

static void test_garbage(void) {
  uint8_t buf[64], nonce[NT_PUNCH_NONCE_LEN];
  nt_addr seen;
  srand(42);
  for (int i = 0; i < 100000; i++) {
    size_t len = (size_t)(rand() % (int)sizeof(buf));
    for (size_t j = 0; j < len; j++) {
      buf[j] = (uint8_t)rand();
    }
    if (i % 3 == 0 && len > 4) {
      memcpy(buf, (const uint8_t[]){0, 'N', 'T', i % 2 ? 'P' : 'M'}, 4);
    }
    (void)nt_punch_decode(buf, len, nonce);
    (void)nt_mapping_decode_request(buf, len, nonce);
    /* Random bytes must never look like a reply carrying an address of
     * the wrong size; a crash or sanitizer report fails the run. */
    if (nt_mapping_decode_reply(buf, len, nonce, &seen)) {
      CHECK(seen.len == sizeof(struct sockaddr_in) ||
            seen.len == sizeof(struct sockaddr_in6));
    }
  }
}

/* Who opens sockets and who probes: only a symmetric side facing an
 * endpoint-independent one (and the other way round). */
static void test_predict_roles(void) {
  CHECK(nt_predict_role_for(NT_MAPPING_PER_DESTINATION,
                            NT_MAPPING_ENDPOINT_INDEPENDENT) ==
        NT_PREDICT_HARD);
  CHECK(nt_predict_role_for(NT_MAPPING_ENDPOINT_INDEPENDENT,
                            NT_MAPPING_PER_DESTINATION) == NT_PREDICT_EASY);
  CHECK(nt_predict_role_for(NT_MAPPING_PER_DESTINATION,
                            NT_MAPPING_PER_DESTINATION) == NT_PREDICT_NONE);
  CHECK(nt_predict_role_for(NT_MAPPING_ENDPOINT_INDEPENDENT,
                            NT_MAPPING_ENDPOINT_INDEPENDENT) ==
        NT_PREDICT_NONE);
  CHECK(nt_predict_role_for(NT_MAPPING_UNKNOWN, NT_MAPPING_PER_DESTINATION) ==
        NT_PREDICT_NONE);
  nt_predict pr;
  uint8_t seed[8] = {0};
  uint16_t ports[64];
  nt_predict_init(&pr, NT_PREDICT_NONE, 0, seed);
  CHECK(nt_predict_next(&pr) == UINT64_MAX);
  CHECK(nt_predict_due(&pr, 1000 * MS, ports, 64) == 0);
}

/* The hard side: three rounds from every socket, after plain punching had
 * its head start. */
static void test_predict_hard(void) {
  nt_predict pr;
  uint8_t seed[8] = {1};
  uint16_t ports[4];
  nt_predict_init(&pr, NT_PREDICT_HARD, 1000 * MS, seed);
  CHECK(nt_predict_next(&pr) == (1000 + NT_PREDICT_HARD_START_MS) * MS);
  CHECK(nt_predict_due(&pr, 1000 * MS, ports, 4) == 0);
  unsigned rounds = 0;
  for (uint64_t t = 1000 * MS; t < 20000 * MS; t += 10 * MS) {
    rounds += nt_predict_due(&pr, t, ports, 4) != 0;
  }
  CHECK(rounds == 3);
  CHECK(nt_predict_next(&pr) == UINT64_MAX);
}

/* The easy side: the budget, the rate, each port once, none below 1024. */
static void test_predict_easy(void) {
  static uint8_t seen[65536];
  uint16_t ports[64];
  for (int trial = 0; trial < 20; trial++) {
    nt_predict pr;
    uint8_t seed[8];
    for (int i = 0; i < 8; i++) {
      seed[i] = (uint8_t)rand();
    }
    memset(seen, 0, sizeof(seen));
    nt_predict_init(&pr, NT_PREDICT_EASY, 0, seed);
    CHECK(nt_predict_next(&pr) == NT_PREDICT_EASY_START_MS * MS);
    uint64_t t = 0, first = 0, last = 0;
    size_t total = 0;
    while (nt_predict_next(&pr) != UINT64_MAX && t < 60000 * MS) {
      t = nt_predict_next(&pr);
      size_t n = nt_predict_due(&pr, t, ports, 64);
      CHECK(n > 0 && n <= NT_PREDICT_RATE * NT_PREDICT_TICK_MS / 1000);
      if (!first) {
        first = t;
      }
      last = t;
      for (size_t i = 0; i < n; i++) {
        CHECK(ports[i] >= NT_PREDICT_PORT_MIN);
        CHECK(!seen[ports[i]]);
        seen[ports[i]] = 1;
      }
      total += n;
    }
    CHECK(total == NT_PREDICT_BUDGET);
    /* No faster than NT_PREDICT_RATE a second. */
    CHECK((last - first) / MS + NT_PREDICT_TICK_MS >=
          (uint64_t)NT_PREDICT_BUDGET * 1000 / NT_PREDICT_RATE);
  }
}

static const nt_test_case cases[] = {
    {"predict_roles", test_predict_roles},
    {"predict_hard", test_predict_hard},
    {"predict_easy", test_predict_easy},
    {"schedule", test_schedule},
    {"too_many_candidates", test_too_many_candidates},
    {"packets", test_packets},
    {"mapping", test_mapping},
    {"garbage", test_garbage},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
