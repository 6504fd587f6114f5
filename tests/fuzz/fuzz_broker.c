/* libFuzzer target: the broker's control-message state machine
 * (src/broker/client_session.c) as up to NSLOTS authenticated clients
 * drive it: check-ins (open or with the token), connect requests, the
 * admission queries they become and the listeners' answers (or none, two,
 * answers to no question, resets of their rules), introductions, relay
 * channels, checks and their reports, NAT reports, raw bytes and broken
 * framing, second streams, moves (validated or not), FIN, resets and
 * closes, in any order and interleaved.
 * The broker is a real one (natter_broker_new, in-memory registry,
 * relay); its clients' QUIC connections are tests/fuzz/fake_quic.c. The
 * input starts with a byte of flags: bit 0 a closed broker (a token), bit
 * 1 loopback candidates, bits 2-3 how listeners answer AdmissionQuery by
 * themselves after each operation: 0 they admit, 1 they do not answer
 * (only operation 7 does), 2 they refuse, 3 odd query ids are admitted,
 * even ones refused; bit 4 each address and key may bind 2 new names
 * (else any number: the budget would be spent by earlier inputs, and
 * nothing would check in). Then a program; each operation starts with a
 * byte OP and a slot S:
 *
 *   0 S K      client S connects (key K % NKEYS: two slots may be one
 *              client's old and new connection) and opens its control
 *              stream
 *   1 S N ..   N raw bytes on S's control stream
 *   2 S A B    a well-formed CheckIn: name A % NNAMES, flags in B
 *              (listen, no_relay, diagnostic, token right/wrong/none,
 *              session, local addresses); with bit 2 of A the loop does
 *              not run after it, so what follows comes while the
 *              registry binds the name
 *   3 S A B    a ConnectRequest for name A, flags B (check, refresh,
 *              request id 0)
 *   4 S B      a CheckReport on the latest check introduction S heard
 *              (or a made-up nonce), outcome from B
 *   5 S B      a NatReport
 *   6 S B      S's connection: another stream, a move (with bit 7 of
 *              B: packets from elsewhere, never validated), FIN, a reset
 *              of the control stream, a close, as B says
 *   7 S B      S answers the latest AdmissionQuery it heard, as B % 6
 *              says: admits, refuses, admits twice, answers a query id
 *              no one asked (or 0), sends AdmissionReset, or answers the
 *              latest query another slot heard
 *
 * After every operation the event loop runs what is due (the registry
 * answers from it). Checked: no crash, leak or undefined behaviour;
 * everything the broker writes on a control stream is a frame that
 * decodes; when every client has left, the broker counts none and
 * awaits no admission answer. */
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "codec/control.h"
#include "fake_quic.h"
#include "fuzz_log.h"

#define NSLOTS 6
#define NKEYS 4
#define NNAMES 4
#define TOKEN "fuzz-token-0123456789abcdef"

typedef struct slot {
  fake_conn *fc;
  int64_t ctl;         /* control stream id */
  size_t scanned;      /* bytes of what the broker wrote already scanned */
  uint32_t last_query; /* the latest AdmissionQuery's id; 0: none */
  uint32_t fresh[4];   /* queries heard since the last auto answer */
  size_t nfresh;
} slot;

static struct event_base *base;
static natter_broker *broker;

static void setup(void) {
  natter_broker_config cfg;
  base = event_base_new();
  natter_broker_config_default(&cfg);
  cfg.listen = "127.0.0.1:0";
  cfg.identity_file = "";
  cfg.registry = "";
  cfg.log = fuzz_log_sink;
  cfg.user_data = (void *)"broker";
  cfg.log_level = NATTER_LOG_DEBUG;
  cfg.relay = 1;
  if (!base || (natter_broker_new(&broker, base, &cfg) != 0 &&
                (cfg.relay = 0, natter_broker_new(&broker, base, &cfg)) != 0)) {
    abort();
  }
}

static void run_loop(void) {
  fake_quic_settle();
  event_base_loop(base, EVLOOP_NONBLOCK);
  fake_quic_settle();
}

static int alive(const slot *s) {
  return s->fc && fake_quic_alive(s->fc);
}

static void client_addr(unsigned i, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (i % 3 == 2) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)(40000 + i));
    in6->sin6_addr.s6_addr[0] = 0x20;
    in6->sin6_addr.s6_addr[1] = 0x01;
    in6->sin6_addr.s6_addr[2] = 0x0d;
    in6->sin6_addr.s6_addr[3] = 0xb8;
    in6->sin6_addr.s6_addr[15] = (uint8_t)i;
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)(40000 + i));
    in->sin_addr.s_addr = htonl(0xcb007100u + (i & 0x3f)); /* 203.0.113.x */
  }
}

static void send_msg(slot *s, const nt_control *msg) {
  static uint8_t frame[NT_CONTROL_FRAME_MAX];
  size_t len = nt_control_encode(frame, msg);
  if (len && alive(s)) {
    fake_conn_peer_send(s->fc, s->ctl, frame, len, 0);
  }
}

/* Every frame the broker wrote to |s| decodes; *nonce gets the latest
 * check introduction's nonce (returns 1 when there is one). Admission
 * queries not seen before are noted in |s|. */
static int scan_written(slot *s, uint8_t *nonce) {
  static nt_control msg;
  size_t len, off = 0, hdr, body;
  int found = 0;
  const uint8_t *w = alive(s) ? fake_conn_written(s->fc, s->ctl, &len) : NULL;
  while (w && off < len) {
    int rv = nt_wire_frame_peek(w + off, len - off, &hdr, &body);
    if (rv == NT_WIRE_NEED_MORE) {
      break; /* cut at the bound of what the fake keeps */
    }
    if (rv != 1 || nt_control_decode(&msg, w + off + hdr, body) != 0 ||
        msg.type == NT_CONTROL_NONE) {
      abort();
    }
    if (msg.type == NT_CONTROL_INTRODUCTION && msg.u.introduction.check) {
      memcpy(nonce, msg.u.introduction.nonce, NT_PUNCH_NONCE_LEN);
      found = 1;
    }
    if (msg.type == NT_CONTROL_ADMISSION_QUERY && off >= s->scanned) {
      if (msg.u.admission_query.query_id == 0) {
        abort(); /* the decoder refuses it; the broker never sends it */
      }
      s->last_query = msg.u.admission_query.query_id;
      if (s->nfresh < sizeof(s->fresh) / sizeof(s->fresh[0])) {
        s->fresh[s->nfresh++] = s->last_query;
      }
    }
    off += hdr + body;
  }
  if (w && off > s->scanned) {
    s->scanned = off;
  }
  return found;
}

static void send_answer(slot *s, uint32_t query_id, int admitted) {
  static nt_control msg;
  memset(&msg, 0, sizeof(msg));
  msg.type = NT_CONTROL_ADMISSION_ANSWER;
  msg.u.admission_answer.query_id = query_id;
  msg.u.admission_answer.admitted = admitted;
  send_msg(s, &msg);
}

/* The listeners answer the queries they heard as |policy| says (the
 * input's flags, bits 2-3); returns how many answers were sent. */
static size_t auto_answer(slot *slots, unsigned policy) {
  size_t sent = 0;
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  for (size_t i = 0; i < NSLOTS; i++) {
    slot *s = &slots[i];
    scan_written(s, nonce);
    for (size_t j = 0; j < s->nfresh && policy != 1 && alive(s); j++) {
      int admit = policy == 0 || (policy == 3 && (s->fresh[j] & 1));
      send_answer(s, s->fresh[j], admit);
      sent++;
    }
    s->nfresh = 0;
  }
  return sent;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const names[NNAMES] = {"alice", "bob", "carol.x",
                                            "not a name"};
  static nt_control msg; /* large: off the stack */
  slot slots[NSLOTS];
  size_t pos = 0;

  if (!broker) {
    setup();
  }
  if (size < 1) {
    return 0;
  }
  natter_broker *b = broker;
  uint8_t flags = data[pos++];
  unsigned policy = (flags >> 2) & 3;
  /* Open or closed (a token), loopback candidates or not. */
  if (flags & 1) {
    snprintf(b->token, sizeof(b->token), "%s", TOKEN);
    b->token_len = strlen(TOKEN);
  } else {
    b->token[0] = '\0';
    b->token_len = 0;
  }
  b->loopback = (flags >> 1) & 1;
  /* A fresh new-names budget (the broker outlives the inputs). */
  static const uint8_t seed[NT_HASHMAP_SEED_LEN];
  unsigned per_hour = (flags & 0x10) ? 2 : 0;
  nt_budget_clear(&b->new_names_by_source);
  nt_budget_clear(&b->new_names_by_key);
  nt_budget_init(&b->new_names_by_source, seed, per_hour, per_hour,
                 BROKER_NEW_NAMES_TRACKED);
  nt_budget_init(&b->new_names_by_key, seed, per_hour, per_hour,
                 BROKER_NEW_NAMES_TRACKED);
  b->new_names_per_hour = per_hour;
  memset(slots, 0, sizeof(slots));

  while (pos + 2 <= size) {
    uint8_t op = data[pos++] % 8;
    slot *s = &slots[data[pos] % NSLOTS];
    unsigned si = data[pos++] % NSLOTS;
    uint8_t a = pos < size ? data[pos] : 0;
    uint8_t f = pos + 1 < size ? data[pos + 1] : 0;
    int hurry = 0; /* the next operation before the loop runs */
    memset(&msg, 0, sizeof(msg));
    if (op == 0) {
      pos++;
      if (alive(s)) {
        continue;
      }
      struct sockaddr_storage from;
      uint8_t key[NT_FINGERPRINT_LEN] = {0};
      client_addr(si + NSLOTS * (a >> 4), &from);
      key[0] = (uint8_t)(a % NKEYS + 1);
      bclient *c = nt_bclient_new(b, (struct sockaddr *)&from);
      if (!c) {
        continue;
      }
      s->fc = fake_conn_new(1, (struct sockaddr *)&from, key,
                            &nt_bclient_conn_callbacks, c);
      if (!s->fc) {
        nt_bclient_free(b, c);
        continue;
      }
      fake_conn_established(s->fc);
      fake_conn_peer_open(s->fc, 0, &s->ctl);
      s->scanned = 0;
      s->last_query = 0;
      s->nfresh = 0;
    } else if (op == 1) {
      size_t n = pos < size ? data[pos++] : 0;
      n = n < size - pos ? n : size - pos;
      if (alive(s)) {
        fake_conn_peer_send(s->fc, s->ctl, data + pos, n, 0);
      }
      pos += n;
    } else if (op == 2) {
      pos += 2;
      nt_check_in *in = &msg.u.check_in;
      msg.type = NT_CONTROL_CHECK_IN;
      /* An older client's version, or ours. */
      in->protocol_version = (f & 0x80) ? NT_CONTROL_PROTOCOL_VERSION - 1
                                        : NT_CONTROL_PROTOCOL_VERSION;
      snprintf(in->name, sizeof(in->name), "%s", names[a % NNAMES]);
      in->listen = f & 1;
      in->no_relay = (f >> 1) & 1;
      in->diagnostic = (f >> 2) & 1;
      if ((f >> 3) & 1) {
        snprintf(in->token, sizeof(in->token), "%s",
                 (f >> 4) & 1 ? TOKEN : "wrong-token-0123456789");
      }
      in->session[0] = (uint8_t)((f >> 5) & 3); /* 0: none */
      in->nlocal = (a >> 4) % (NT_MAX_LOCAL_ADDRS + 1);
      for (size_t i = 0; i < in->nlocal; i++) {
        client_addr((unsigned)(i * 7 + a), &in->local[i].ss);
        in->local[i].len = in->local[i].ss.ss_family == AF_INET6
                               ? sizeof(struct sockaddr_in6)
                               : sizeof(struct sockaddr_in);
      }
      send_msg(s, &msg);
      hurry = (a >> 2) & 1;
    } else if (op == 3) {
      pos += 2;
      nt_connect_request *r = &msg.u.connect_request;
      msg.type = NT_CONTROL_CONNECT_REQUEST;
      r->request_id = (f & 4) ? 0 : 1u + a;
      snprintf(r->peer, sizeof(r->peer), "%s", names[a % NNAMES]);
      r->check = f & 1;
      r->refresh = (f >> 1) & 1;
      send_msg(s, &msg);
    } else if (op == 4) {
      pos++;
      nt_check_side *r = &msg.u.check_report;
      msg.type = NT_CONTROL_CHECK_REPORT;
      /* The nonce the check's introduction brought (to the checked
       * peer), else one no check has. */
      if (!scan_written(s, r->nonce)) {
        memset(r->nonce, a, sizeof(r->nonce));
      }
      r->outcome = 1 + a % 3;
      r->mapping = (a >> 2) % 3;
      r->nprobed = (a >> 4) % 4;
      for (size_t i = 0; i < r->nprobed; i++) {
        client_addr((unsigned)i, &r->probed[i].ss);
        r->probed[i].len = r->probed[i].ss.ss_family == AF_INET6
                               ? sizeof(struct sockaddr_in6)
                               : sizeof(struct sockaddr_in);
      }
      r->probe_rounds = a;
      r->probes_received = a >> 1;
      send_msg(s, &msg);
    } else if (op == 5) {
      pos++;
      msg.type = NT_CONTROL_NAT_REPORT;
      msg.u.nat_report.mapping = a % 3;
      if (a & 4) {
        client_addr(a, &msg.u.nat_report.mapped.ss);
        msg.u.nat_report.mapped.len =
            msg.u.nat_report.mapped.ss.ss_family == AF_INET6
                ? sizeof(struct sockaddr_in6)
                : sizeof(struct sockaddr_in);
      }
      send_msg(s, &msg);
    } else if (op == 7) {
      pos++;
      uint8_t nonce[NT_PUNCH_NONCE_LEN];
      scan_written(s, nonce);
      s->nfresh = 0; /* answered here, not by auto_answer */
      switch (a % 6) {
      case 0:
      case 1:
        send_answer(s, s->last_query, a % 6 == 0);
        break;
      case 2:
        send_answer(s, s->last_query, 1);
        send_answer(s, s->last_query, (a >> 3) & 1);
        break;
      case 3:
        send_answer(s, (a & 8) ? 0 : s->last_query + 1 + (a >> 4), a & 1);
        break;
      case 4:
        msg.type = NT_CONTROL_ADMISSION_RESET;
        send_msg(s, &msg);
        break;
      default:
        scan_written(&slots[(si + 1 + (a >> 4)) % NSLOTS], nonce);
        send_answer(s, slots[(si + 1 + (a >> 4)) % NSLOTS].last_query, 1);
        break;
      }
    } else {
      pos++;
      if (!alive(s)) {
        continue;
      }
      int64_t id;
      struct sockaddr_storage to;
      switch (a % 5) {
      case 0:
        fake_conn_peer_open(s->fc, a & 8, &id);
        break;
      case 1:
        client_addr(si + NSLOTS * (1 + ((a >> 4) & 7)), &to);
        if (a & 0x80) {
          fake_conn_peer_spoof(s->fc, (struct sockaddr *)&to);
        } else {
          fake_conn_peer_move(s->fc, (struct sockaddr *)&to);
        }
        break;
      case 2:
        fake_conn_peer_send(s->fc, s->ctl, NULL, 0, 1);
        break;
      case 3:
        fake_conn_peer_reset(s->fc, s->ctl, a);
        break;
      default:
        fake_conn_peer_close(s->fc, a);
        break;
      }
    }
    if (hurry) {
      continue;
    }
    run_loop();
    /* Answers bring introductions, which may bring more queries (at
     * most a few rounds). */
    for (int round = 0; round < 4 && auto_answer(slots, policy); round++) {
      run_loop();
    }
  }
  fake_quic_close_all();
  run_loop();
  if (b->nclients != 0 || b->npending != 0 || b->checked_in.count != 0) {
    abort(); /* every client that left is forgotten */
  }
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    if (b->admission.queries[i].query_id) {
      abort(); /* no answer is awaited from a listener that left */
    }
  }
  /* Names bound in this input are forgotten: a fresh registry, unless
   * the broker's own upkeep has a request in flight. */
  if (!b->flush_req && !b->expire_req) {
    char err[256];
    nt_registry_close(b->registry);
    if (nt_registry_open(&b->registry, base, "memory:", err, sizeof(err)) !=
        0) {
      abort();
    }
  }
  return 0;
}
