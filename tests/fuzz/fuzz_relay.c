/* libFuzzer target: the broker's relay past the datagram header
 * (src/broker/relay.c, src/broker/relay_budget.c): token lookup, binding
 * and rebinding a side to where its packets come from, the budgets of
 * keys and source addresses (channels each asked for, the byte rate and
 * total charged to the sender), CLOSED signals, idle expiry, sessions
 * that end or move, in any order, from the addresses the channels allow
 * and from others. The input is a program of operations on one relay (a
 * fresh one per input) and NCLIENTS broker clients (names, keys and
 * addresses picked from small sets, so that clients share keys and
 * addresses):
 *
 *   0 A B      client A asks for a channel to client B (A pays)
 *   1 S T F P L  a datagram of type T on side S's token (or a token no
 *              channel has), from address F port P, L*8 payload bytes
 *   2 D        time passes (D*D*10 ms)
 *   3          the idle sweep runs
 *   4 C        client C's broker session ends
 *   5 C D F    client C's session carries on as client D's, whose broker
 *              connection comes from address F now
 *
 * Everything the relay sends goes to loopback ports 1..4, where nothing
 * listens. Checked: no crash, leak or undefined behaviour, and the
 * counters stay consistent. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/relay.h"
#include "quic/endpoint.h"
#include "fuzz_log.h"

#define MAX_SIDES 80 /* past NT_RELAY_MAX_PER_ADDRESS channels */
#define NCLIENTS 6
#define NKEYS 3

/* Where clients' broker connections come from, and where their
 * datagrams may come from. */
static socklen_t pick_addr(uint8_t which, uint16_t port,
                           struct sockaddr_storage *ss) {
  static const char *const v4[] = {"127.77.0.1", "127.77.0.2", "127.77.0.3"};
  memset(ss, 0, sizeof(*ss));
  if (which % 4 == 3) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    in6->sin6_port = htons(port);
    return sizeof(*in6);
  }
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  in->sin_family = AF_INET;
  inet_pton(AF_INET, v4[which % 4], &in->sin_addr);
  in->sin_port = htons(port);
  return sizeof(*in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct event_base *base;
  static const char *const names[] = {"alice", "bob", "carol.example", "d-1"};
  static uint8_t keys[NKEYS][NT_FINGERPRINT_LEN];
  /* The clients' sessions: only their addresses matter to the relay. */
  static char sessions[NCLIENTS];
  struct sockaddr_storage ips[NCLIENTS];
  static uint8_t buf[NT_RELAY_HDR_LEN + 2048];
  uint8_t tokens[MAX_SIDES][NT_RELAY_TOKEN_LEN];
  size_t ntokens = 0, pos = 0;
  nt_log log = {fuzz_log_sink, NATTER_LOG_DEBUG, (void *)"relay"};
  char err[256];

  if (!base && !(base = event_base_new())) {
    abort();
  }
  if (size < 1) {
    return 0;
  }
  for (size_t i = 0; i < NKEYS; i++) {
    memset(keys[i], (int)(0x41 + i), NT_FINGERPRINT_LEN);
  }
  for (unsigned i = 0; i < NCLIENTS; i++) {
    pick_addr((uint8_t)i, 0, &ips[i]); /* 4 addresses for 6 clients */
  }
  nt_relay_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.bind.len = pick_addr(0, 0, &cfg.bind.ss);
  inet_pton(AF_INET, "127.0.0.1",
            &((struct sockaddr_in *)&cfg.bind.ss)->sin_addr);
  /* Budgets small enough to run out within an input (or none). */
  uint8_t budget = data[pos++];
  cfg.rate = (budget & 0x0f) ? (uint64_t)(budget & 0x0f) * 1000 : 0;
  cfg.total = (budget >> 4) ? (uint64_t)(budget >> 4) * 3000 : 0;
  cfg.log = &log;
  nt_relay *r = NULL;
  if (nt_relay_new(&r, base, &cfg, err, sizeof(err)) != 0) {
    return 0; /* no socket: not this target's business */
  }
  /* The relay stamps channels and accounts with the real clock; the
   * input's time runs ahead of it by |skew|. */
  uint64_t skew = 0;
  while (pos < size) {
    uint64_t now = nt_monotonic_ns() + skew;
    uint8_t op = data[pos++] % 6;
    if (op == 0 && size - pos >= 2) {
      unsigned a = data[pos++] % NCLIENTS, b = data[pos++] % NCLIENTS;
      nt_relay_party pa = {names[a % 4], keys[a % NKEYS],
                           (struct sockaddr *)&ips[a], &sessions[a]};
      nt_relay_party pb = {names[b % 4], keys[b % NKEYS],
                           (struct sockaddr *)&ips[b], &sessions[b]};
      if (ntokens + 2 <= MAX_SIDES &&
          nt_relay_open(r, &pa, &pb, tokens[ntokens], tokens[ntokens + 1]) ==
              0) {
        ntokens += 2;
      }
    } else if (op == 1 && size - pos >= 5) {
      uint8_t side = data[pos++], type = data[pos++], from = data[pos++];
      uint8_t port = data[pos++], paylen = data[pos++];
      size_t len = NT_RELAY_HDR_LEN + (size_t)paylen * 8;
      buf[0] = type % 5; /* also types no relay datagram has */
      if (side < ntokens) {
        memcpy(buf + 1, tokens[side], NT_RELAY_TOKEN_LEN);
      } else {
        memset(buf + 1, side, NT_RELAY_TOKEN_LEN); /* no channel's */
      }
      memset(buf + NT_RELAY_HDR_LEN, type, len - NT_RELAY_HDR_LEN);
      if (type & 0x80) {
        len = type & 0x1f; /* shorter than a header, or just one */
      }
      struct sockaddr_storage src;
      socklen_t srclen = pick_addr(from, 1 + port % 4, &src);
      nt_addr dst;
      memset(&dst, 0, sizeof(dst));
      if (from & 0x40) {
        dst.len = pick_addr(0, 0, &dst.ss);
      }
      nt_relay_input(r, buf, len, (struct sockaddr *)&src, srclen, &dst, now);
    } else if (op == 2 && size - pos >= 1) {
      uint64_t d = data[pos++];
      skew += d * d * 10000000ull;
    } else if (op == 3) {
      nt_relay_sweep(r, now);
    } else if (op == 4 && size - pos >= 1) {
      nt_relay_close_session(r, &sessions[data[pos++] % NCLIENTS]);
    } else if (op == 5 && size - pos >= 3) {
      unsigned c = data[pos++] % NCLIENTS, d = data[pos++] % NCLIENTS;
      pick_addr(data[pos++], 0, &ips[d]);
      nt_relay_move_session(r, &sessions[c], &sessions[d],
                            (struct sockaddr *)&ips[d]);
    } else {
      break;
    }
  }
  nt_relay_stats st;
  nt_relay_get_stats(r, &st);
  if (st.relayed > st.rx || st.channels > ntokens / 2) {
    abort();
  }
  nt_relay_free(r);
  return 0;
}
