/* checkin_storm: many new names checking in at once across several
 * brokers, on the public API (natter.h), for test_pg_storm.sh.
 *
 *   checkin_storm --brokers HOST:PORT[,HOST:PORT...] --clients N
 *                 --prefix P --keys DIR [--inflight F] [--retry-ms M]
 *
 * Client I is named P-I, checks in at broker I mod (number of brokers)
 * with the key DIR/P-I.key (created on first use, so that a retry
 * presents the same key), listens, and at most F are checking in at a
 * time. A client the broker refuses (NATTER_EVENT_FATAL) is started again
 * M ms later with the same name and key, at most 200 times. Prints one
 * line per event:
 *
 *   bound NAME KEYHEX              checked in (the broker bound the name)
 *   refused NAME unavailable MSG   "the name registry is unavailable,
 *                                  try again" (retried)
 *   refused NAME other MSG         any other refusal (retried too)
 *
 * then, once every client is bound (or after 240 s), "done clients=N
 * bound=B refused_unavailable=U refused_other=O", and keeps the clients
 * checked in (they are the brokers' known clients) until SIGTERM or
 * SIGINT, when it frees them and exits 0 (1 when not all were bound). */
#define _GNU_SOURCE
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <natter.h>

#define DEADLINE_S 240
#define MAX_RETRIES 200
#define MAX_BROKERS 16
#define TICK_MS 20

typedef struct storm storm;
typedef struct member {
  storm *s;
  natter_client *c;
  size_t i;
  int bound, checking, tries;
  struct event *retry;
} member;

struct storm {
  struct event_base *base;
  member *m;
  size_t n, started, bound, checking, inflight;
  size_t refused_unavailable, refused_other;
  char *brokers[MAX_BROKERS];
  size_t nbrokers;
  const char *prefix, *keys;
  unsigned retry_ms;
  int reported;
};

static void quiet_log(natter_log_level level, const char *line, void *ud) {
  (void)level;
  (void)line;
  (void)ud;
}

static void report(storm *s) {
  if (s->reported) {
    return;
  }
  s->reported = 1;
  printf("done clients=%zu bound=%zu refused_unavailable=%zu "
         "refused_other=%zu\n",
         s->n, s->bound, s->refused_unavailable, s->refused_other);
  fflush(stdout);
}

static void on_event(natter_client *c, const natter_event *ev, void *ud);

static int start_member(member *m) {
  storm *s = m->s;
  static const char *const any_peer[] = {"*", NULL};
  char name[64], key[512];
  natter_client_config cfg;

  natter_client_config_default(&cfg);
  snprintf(name, sizeof(name), "%s-%zu", s->prefix, m->i);
  snprintf(key, sizeof(key), "%s/%s.key", s->keys, name);
  cfg.name = name;
  cfg.broker = s->brokers[m->i % s->nbrokers];
  cfg.identity_file = key;
  cfg.known_brokers = "";
  cfg.listen = 1;
  cfg.allow_peers = any_peer;
  cfg.log = quiet_log;
  cfg.on_event = on_event;
  cfg.user_data = m;
  if (natter_client_new(&m->c, s->base, &cfg) != 0) {
    fprintf(stderr, "checkin_storm: cannot start %s\n", name);
    m->c = NULL;
    return -1;
  }
  return 0;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) {
  member *m = arg;
  (void)fd;
  (void)what;
  natter_client_free(m->c); /* out of its callback now */
  m->c = NULL;
  if (start_member(m) != 0) {
    event_base_loopbreak(m->s->base);
  }
}

static void on_event(natter_client *c, const natter_event *ev, void *ud) {
  member *m = ud;
  storm *s = m->s;
  char name[64];
  (void)c;

  snprintf(name, sizeof(name), "%s-%zu", s->prefix, m->i);
  if (ev->type == NATTER_EVENT_CHECKED_IN && !m->bound) {
    m->bound = 1;
    m->checking = 0;
    s->checking--;
    s->bound++;
    printf("bound %s %s\n", name, natter_client_fingerprint(m->c));
    fflush(stdout);
    if (s->bound == s->n) {
      report(s);
    }
  } else if (ev->type == NATTER_EVENT_FATAL && m->checking &&
             !evtimer_pending(m->retry, NULL)) {
    int unavailable =
        ev->message && strstr(ev->message, "the name registry is unavailable, "
                                           "try again") != NULL;
    struct timeval tv = {s->retry_ms / 1000, (s->retry_ms % 1000) * 1000};
    if (unavailable) {
      s->refused_unavailable++;
    } else {
      s->refused_other++;
    }
    printf("refused %s %s %s\n", name, unavailable ? "unavailable" : "other",
           ev->message ? ev->message : "(no message)");
    fflush(stdout);
    if (++m->tries > MAX_RETRIES) {
      fprintf(stderr, "checkin_storm: %s refused %d times\n", name, m->tries);
      m->checking = 0;
      s->checking--;
      return;
    }
    /* Still counted as checking in while it waits: the ramp stays at F. */
    evtimer_add(m->retry, &tv);
  }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  storm *s = arg;
  (void)fd;
  (void)what;
  while (s->started < s->n && s->checking < s->inflight) {
    s->m[s->started].checking = 1;
    s->checking++;
    if (start_member(&s->m[s->started++]) != 0) {
      event_base_loopbreak(s->base);
      return;
    }
  }
}

static void stop_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  report(arg);
}

int main(int argc, char **argv) {
  storm s;
  char *list = NULL;
  int rc;

  memset(&s, 0, sizeof(s));
  s.inflight = 50;
  s.retry_ms = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--brokers") == 0) {
      list = argv[i + 1];
    } else if (strcmp(argv[i], "--clients") == 0) {
      s.n = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--prefix") == 0) {
      s.prefix = argv[i + 1];
    } else if (strcmp(argv[i], "--keys") == 0) {
      s.keys = argv[i + 1];
    } else if (strcmp(argv[i], "--inflight") == 0) {
      s.inflight = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--retry-ms") == 0) {
      s.retry_ms = (unsigned)strtoul(argv[i + 1], NULL, 10);
    } else {
      list = NULL;
      break;
    }
  }
  if (list == NULL || s.prefix == NULL || s.keys == NULL || s.n == 0 ||
      s.n > 5000 || s.inflight == 0) {
    fprintf(stderr, "usage: checkin_storm --brokers HOST:PORT[,...] "
                    "--clients N (1..5000) --prefix P --keys DIR "
                    "[--inflight F] [--retry-ms M]\n");
    return 2;
  }
  for (char *save = NULL, *t = strtok_r(list, ",", &save);
       t && s.nbrokers < MAX_BROKERS; t = strtok_r(NULL, ",", &save)) {
    s.brokers[s.nbrokers++] = t;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  s.base = event_base_new();
  s.m = calloc(s.n, sizeof(*s.m));
  if (s.base == NULL || s.m == NULL) {
    return 1;
  }
  for (size_t i = 0; i < s.n; i++) {
    s.m[i].s = &s;
    s.m[i].i = i;
    s.m[i].retry = evtimer_new(s.base, retry_cb, &s.m[i]);
    if (s.m[i].retry == NULL) {
      return 1;
    }
  }
  struct timeval tick = {0, TICK_MS * 1000}, deadline = {DEADLINE_S, 0};
  struct event *tick_ev = event_new(s.base, -1, EV_PERSIST, tick_cb, &s);
  struct event *dl_ev = evtimer_new(s.base, deadline_cb, &s);
  struct event *term = evsignal_new(s.base, SIGTERM, stop_cb, s.base);
  struct event *intr = evsignal_new(s.base, SIGINT, stop_cb, s.base);
  if (!tick_ev || !dl_ev || !term || !intr || event_add(tick_ev, &tick) ||
      event_add(dl_ev, &deadline) || event_add(term, NULL) ||
      event_add(intr, NULL)) {
    return 1;
  }
  event_base_dispatch(s.base);
  report(&s);
  rc = s.bound == s.n ? 0 : 1;
  for (size_t i = 0; i < s.n; i++) {
    natter_client_free(s.m[i].c);
    event_free(s.m[i].retry);
  }
  event_free(tick_ev);
  event_free(dl_ev);
  event_free(term);
  event_free(intr);
  free(s.m);
  event_base_free(s.base);
  return rc;
}
