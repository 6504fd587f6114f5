/* A program built against this natter.h, run against a library built with
 * NATTER_TEST_FUTURE_FIELDS, in which natter_client_config and
 * natter_broker_stats have one field more and a higher version, as after a
 * later release appends a field. The library must neither write past this
 * program's smaller structs (ASan sees the stack and heap ones; the guard
 * bytes after the others catch it without ASan) nor read past them, and
 * must use the default for the field this program does not know. Loopback
 * only; every wait has a deadline. */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "future_probe.h"
#include "natter.h"
#include "test.h"
#include "test_loop.h"

#define GUARD_BYTE 0xa5

/* Each struct with guard bytes right behind it: a library writing its own,
 * larger size changes them. */
typedef struct guarded_client_config {
  natter_client_config cfg;
  unsigned char guard[64];
} guarded_client_config;

typedef struct guarded_broker_stats {
  natter_broker_stats stats;
  unsigned char guard[64];
} guarded_broker_stats;

typedef struct guarded_peer_stats {
  natter_peer_stats stats;
  unsigned char guard[64];
} guarded_peer_stats;

typedef struct guarded_forward_stats {
  natter_forward_stats stats;
  unsigned char guard[64];
} guarded_forward_stats;

static int guard_intact(const unsigned char *guard, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (guard[i] != GUARD_BYTE) {
      fprintf(stderr, "  guard byte %zu overwritten: 0x%02x\n", i, guard[i]);
      return 0;
    }
  }
  return 1;
}

static void quiet_log(natter_log_level level, const char *line, void *ud) {
  (void)ud;
  if (getenv("NATTER_TEST_LOG")) {
    fprintf(stderr, "  log[%d]: %s\n", (int)level, line);
  }
}

/* The test means something only if the library's structs really are
 * larger than this program's. */
static void test_library_structs_grew(void) {
  CHECK(abi_future_client_config_version() > NATTER_CLIENT_CONFIG_VERSION);
  CHECK(abi_future_client_config_size() > sizeof(natter_client_config));
  CHECK(abi_future_broker_stats_version() > NATTER_BROKER_STATS_VERSION);
  CHECK(abi_future_broker_stats_size() > sizeof(natter_broker_stats));
}

static void test_config_default_stays_inside(void) {
  natter_client_config bare; /* ASan: a redzone right behind it */
  guarded_client_config g;

  natter_client_config_default(&bare);
  CHECK(bare.connect_timeout_ms == 10000);
  memset(&g, GUARD_BYTE, sizeof(g));
  natter_client_config_default(&g.cfg);
  CHECK(guard_intact(g.guard, sizeof(g.guard)));
  CHECK(g.cfg.name == NULL && g.cfg.user_data == NULL);
  CHECK(g.cfg.connect_timeout_ms == 10000);
  CHECK(g.cfg.log_level == NATTER_LOG_INFO);
}

/* The library reads this program's fields and defaults the new one,
 * although the bytes behind the struct are garbage (or, under ASan, a
 * redzone). */
static void test_new_field_gets_its_default(void) {
  guarded_client_config g;
  natter_client_config *heap = malloc(sizeof(*heap));
  abi_loaded_client_config loaded;
  int marker;

  memset(&g, GUARD_BYTE, sizeof(g));
  natter_client_config_default(&g.cfg);
  memset(g.guard, GUARD_BYTE, sizeof(g.guard)); /* garbage, whatever it was */
  g.cfg.name = "old";
  g.cfg.broker = "127.0.0.1:9";
  g.cfg.connect_timeout_ms = 1234;
  g.cfg.user_data = &marker;
  memset(&loaded, 0, sizeof(loaded));
  CHECK(abi_future_load_client_config(NATTER_CLIENT_CONFIG_VERSION, &g.cfg,
                                      &loaded) == 0);
  CHECK(loaded.name && strcmp(loaded.name, "old") == 0);
  CHECK(loaded.broker && strcmp(loaded.broker, "127.0.0.1:9") == 0);
  CHECK(loaded.connect_timeout_ms == 1234);
  CHECK(loaded.user_data == &marker);
  if (loaded.test_future_ms != 4242) {
    fprintf(stderr, "  new field read as %u, not its default 4242\n",
            (unsigned)loaded.test_future_ms);
  }
  CHECK(loaded.test_future_ms == 4242);

  CHECK(heap != NULL);
  if (heap) {
    *heap = g.cfg;
    memset(&loaded, 0, sizeof(loaded));
    CHECK(abi_future_load_client_config(NATTER_CLIENT_CONFIG_VERSION, heap,
                                        &loaded) == 0);
    CHECK(loaded.test_future_ms == 4242);
    free(heap);
  }
}

typedef struct run_state {
  natter_client *client;
  int checked_in;
} run_state;

static void on_event(natter_client *c, const natter_event *ev, void *ud) {
  run_state *st = ud;
  (void)c;
  if (ev->type == NATTER_EVENT_CHECKED_IN) {
    st->checked_in = 1;
  }
}

static int checked_in(void *arg) {
  return ((run_state *)arg)->checked_in;
}

/* The whole life of a broker and a client with this program's structs:
 * configs on the heap at their exact size (ASan: no read past them), stats
 * on the stack and with guards. */
static void test_broker_and_client_run(void) {
  struct event_base *base = event_base_new();
  natter_broker_config bcfg;
  natter_client_config *ccfg = malloc(sizeof(*ccfg));
  natter_broker *b = NULL;
  natter_client *c = NULL;
  run_state st = {NULL, 0};
  char broker_addr[32];

  CHECK(base != NULL && ccfg != NULL);
  if (!base || !ccfg) {
    free(ccfg);
    return;
  }
  natter_broker_config_default(&bcfg);
  bcfg.listen = "127.0.0.1:0";
  bcfg.identity_file = "";
  bcfg.registry = ""; /* in memory: nothing written to $HOME */
  bcfg.log = quiet_log;
  CHECK(natter_broker_new(&b, base, &bcfg) == 0);
  if (!b) {
    free(ccfg);
    event_base_free(base);
    return;
  }
  snprintf(broker_addr, sizeof(broker_addr), "127.0.0.1:%u",
           (unsigned)natter_broker_port(b));

  natter_client_config_default(ccfg);
  ccfg->name = "old";
  ccfg->broker = broker_addr;
  ccfg->broker_key = natter_broker_fingerprint(b);
  ccfg->identity_file = "";
  ccfg->log = quiet_log;
  ccfg->on_event = on_event;
  ccfg->user_data = &st;
  CHECK(natter_client_new(&c, base, ccfg) == 0);
  free(ccfg); /* _new copied what it needs */
  CHECK(c != NULL);
  if (c) {
    CHECK(run_until(base, checked_in, &st, 10000));
    CHECK(natter_client_checked_in(c) == 1);
  }

  natter_broker_stats bare;
  guarded_broker_stats gb;
  CHECK(natter_broker_get_stats(b, &bare) == 0);
  CHECK(bare.clients == 1);
  memset(&gb, GUARD_BYTE, sizeof(gb));
  CHECK(natter_broker_get_stats(b, &gb.stats) == 0);
  CHECK(guard_intact(gb.guard, sizeof(gb.guard)));
  CHECK(gb.stats.clients == 1 && gb.stats.bytes_received > 0);
  memset(&gb, GUARD_BYTE, sizeof(gb));
  CHECK(natter_broker_get_stats(NULL, &gb.stats) == NATTER_ERR_INVALID);
  CHECK(guard_intact(gb.guard, sizeof(gb.guard)));

  /* Structs of the same size on both sides stay inside too. */
  guarded_peer_stats gp;
  memset(&gp, GUARD_BYTE, sizeof(gp));
  CHECK(natter_client_get_peer_stats(c, "nobody", &gp.stats) ==
        NATTER_ERR_PEER_UNKNOWN);
  CHECK(guard_intact(gp.guard, sizeof(gp.guard)));

  guarded_forward_stats gf;
  memset(&gf, GUARD_BYTE, sizeof(gf));
  CHECK(natter_forward_get_stats(NULL, &gf.stats) == NATTER_ERR_INVALID);
  CHECK(guard_intact(gf.guard, sizeof(gf.guard)));

  natter_client_free(c);
  natter_broker_free(b);
  event_base_free(base);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"library_structs_grew", test_library_structs_grew},
      {"config_default_stays_inside", test_config_default_stays_inside},
      {"new_field_gets_its_default", test_new_field_gets_its_default},
      {"broker_and_client_run", test_broker_and_client_run},
      {NULL, NULL}};
  return nt_test_run(cases);
}
