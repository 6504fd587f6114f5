/* broker_scale: how brokers cope with many clients, on the public API
 * only (natter.h), in real processes on loopback.
 *
 *   broker_scale [--clients N] [--procs P] [--pairs K] [--idle S]
 *                [--inflight F] [--brokers B --registry URI]
 *                [--serial M] [--hook CMD]
 *
 * Forks B brokers (1 by default; each its own process, so its CPU and
 * memory are its own; with --registry all share that registry, e.g. a
 * postgresql:// URI, and introduce clients to each other across brokers),
 * then P client processes per broker that start N clients per broker
 * between them all at once (ephemeral keys, -listen with '*' peers, the
 * broker's key pinned), or with --inflight F at most F per process still
 * checking in at a time, so that a slow build (sanitizers) on a busy
 * machine goes only as fast as it can serve check-ins inside a client's
 * first-contact timeout (5 s); waits until every client has checked in or
 * given up, lets them sit idle S seconds, and finally has K of them
 * connect to K others at once (an fd session each: introduction, hole
 * punching, QUIC handshake), all on the first broker; with two brokers or
 * more, K more from the first broker to K clients of the second; with
 * --serial M, M pairs one after the other (the latency of one
 * introduction alone), on one broker and across two. Prints one line of
 * figures:
 *
 *   clients=N checked_in=C gave_up=G checkin_s=T broker_cpu_ms_per_checkin=X
 *   broker_kib_per_client=M idle_cpu_pct_per_1000=I pairs=K pairs_per_s=R
 *
 * (N, C, G the totals over all brokers; X and M averaged over them), then
 * one line of each client's check-in time (from natter_client_new to
 * CHECKED_IN), one per broker and one per round of pairs:
 *
 *   checkin_p50_ms=A checkin_p99_ms=B checkin_max_ms=C
 *   broker=I n=N cpu_s_checkin=X cpu_s_idle=Y rss_kib=R kib_per_client=M
 *   intro=same|cross mode=burst|serial pairs=K connected=C per_s=R
 *   p50_ms=A p99_ms=B
 *
 * and exits 0 when every client checked in and every pair connected.
 * Memory per client is a broker's RSS after the check-ins minus its RSS
 * before, divided by its clients. The brokers run with max_clients and
 * max_per_source above N (all clients come from 127.0.0.1) and the
 * default pending limit (512), so a storm of check-ins is shed with
 * "busy" answers that the clients retry. With --hook, CMD PHASE runs
 * (system(3)) before the clients start (pre), once all checked in
 * (checkedin), after the idle time (idle) and after each burst of pairs
 * (same, cross): the PostgreSQL bench reads the database's counters there.
 *
 * Every wait is bounded: each phase gives up after 300 s. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <natter.h>

#define DEADLINE_S 300

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void quiet_log(natter_log_level level, const char *line, void *ud) {
  (void)level;
  (void)line;
  (void)ud;
}

/* CPU seconds (user + system) and resident KiB of process |pid|. */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) {
    return -1;
  }
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st) != 2) {
    return -1;
  }
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kib(pid_t pid) {
  char path[64], line[256];
  long kib = -1;
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) {
    return -1;
  }
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
      break;
    }
  }
  fclose(f);
  return kib;
}

/* ---- the broker process ---- */

static int run_broker(int out_fd, const char *registry) {
  struct event_base *base = event_base_new();
  natter_broker_config cfg;
  natter_broker *b = NULL;
  natter_broker_config_default(&cfg);
  cfg.listen = "127.0.0.1:0";
  cfg.identity_file = "";
  cfg.registry = registry ? registry : "";
  cfg.log = quiet_log;
  cfg.max_clients = 30000;
  cfg.max_per_source = 30000;
  cfg.new_names_per_hour = 0;
  if (!base || natter_broker_new(&b, base, &cfg) != 0) {
    return 1;
  }
  char msg[128];
  int n = snprintf(msg, sizeof(msg), "%u %s\n", natter_broker_port(b),
                   natter_broker_fingerprint(b));
  if (write(out_fd, msg, (size_t)n) != n) {
    return 1;
  }
  close(out_fd);
  event_base_dispatch(base); /* until SIGTERM */
  natter_broker_free(b);
  event_base_free(base);
  return 0;
}

/* ---- a client process ---- */

typedef struct swarm swarm;
typedef struct member {
  swarm *s;
  natter_client *c;
  int checked_in, failed, asking;
  double born, asked; /* natter_client_new; add_forward (now_s) */
  float checkin_ms;
} member;

struct swarm {
  struct event_base *base;
  member *m;
  size_t n, checked_in, failed;
  size_t started; /* clients created so far */
  size_t inflight; /* at most this many still checking in; 0: no bound */
  const char *prefix;
  uint16_t port;
  const char *broker_fp;
  int phase; /* 0: checking in, 1: serving */
  FILE *in;
  int out;
  /* The round of pairs under way (phase 1). */
  char target[32];
  size_t target_n, next_req, round_first, round_k, round_started, round_done,
      round_ok;
  int serial, in_round;
  double round_t0;
  double *lat_ms;
  struct event *round_deadline;
};

#define RAMP_TICK_MS 20
#define ROUND_DEADLINE_S 120

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile of the |n| sorted values. */
static double quantile(const double *v, size_t n, double q) {
  if (n == 0) {
    return 0;
  }
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

static void round_end(swarm *s) {
  double el = now_s() - s->round_t0;
  qsort(s->lat_ms, s->round_ok, sizeof(double), cmp_double);
  dprintf(s->out, "%zu %.3f %.2f %.2f\n", s->round_ok, el,
          quantile(s->lat_ms, s->round_ok, 0.5),
          quantile(s->lat_ms, s->round_ok, 0.99));
  for (size_t i = s->round_first; i < s->round_first + s->round_k; i++) {
    s->m[i].asking = 0;
  }
  s->in_round = 0;
  evtimer_del(s->round_deadline);
}

/* Starts the round's next pair; 0 when none could start (counted done). */
static int ask_one(swarm *s) {
  size_t i = s->round_first + s->round_started++;
  int sv[2];
  char err[256], name[64];
  natter_forward_config f;
  natter_forward_config_default(&f);
  snprintf(name, sizeof(name), "%s-%zu", s->target, s->target_n / 2 + i);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    s->round_done++;
    return 0;
  }
  if (!s->m[i].checked_in || s->m[i].failed) {
    close(sv[0]);
    close(sv[1]);
    s->round_done++; /* gave up at check-in: counts as not connected */
    return 0;
  }
  f.peer = name;
  f.port = 9; /* the discard port: the connection itself is the point */
  f.in_fd = sv[0];
  f.out_fd = sv[0];
  s->m[i].asking = 1;
  s->m[i].asked = now_s();
  if (natter_client_add_forward(s->m[i].c, &f, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "broker_scale: %s\n", err);
    s->m[i].asking = 0;
    s->round_done++;
    return 0;
  }
  /* sv[1] stays open: the session waits for the peer, then for us. */
  return 1;
}

/* One more pair of a serial round, skipping those that cannot start. */
static void ask_next(swarm *s) {
  while (s->round_started < s->round_k && !ask_one(s)) {
  }
}

/* A requester's pair is up (ok) or failed. */
static void pair_done(swarm *s, member *m, int ok) {
  m->asking = 0;
  if (ok) {
    s->lat_ms[s->round_ok++] = (now_s() - m->asked) * 1000.0;
  }
  s->round_done++;
  if (s->serial) {
    ask_next(s);
  }
  if (s->round_done == s->round_k) {
    round_end(s);
  }
}

static void on_event(natter_client *c, const natter_event *ev, void *ud) {
  member *m = ud;
  swarm *s = m->s;
  (void)c;
  if (ev->type == NATTER_EVENT_CHECKED_IN && !m->checked_in) {
    m->checked_in = 1;
    m->checkin_ms = (float)((now_s() - m->born) * 1000.0);
    s->checked_in++;
  } else if (ev->type == NATTER_EVENT_FATAL && !m->failed) {
    m->failed = 1;
    if (s->failed++ < 3) {
      fprintf(stderr, "broker_scale: a client gave up: %s\n", ev->message);
    }
  } else if (ev->type == NATTER_EVENT_PEER_CONNECTED && m->asking &&
             s->in_round) {
    pair_done(s, m, 1);
  } else if (ev->type == NATTER_EVENT_PEER_FAILED && m->asking &&
             s->in_round) {
    fprintf(stderr, "broker_scale: a pair failed: %s\n",
            ev->message ? ev->message : "");
    pair_done(s, m, 0);
  }
  if (s->phase == 0 && s->started == s->n &&
      s->checked_in + s->failed == s->n) {
    event_base_loopbreak(s->base);
  }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

static void round_deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  round_end(arg);
}

/* Creates the next |count| clients of the swarm (at most up to n). */
static void start_some(swarm *s, size_t count) {
  static const char *const any_peer[] = {"*", NULL};
  char broker[32], name[64];
  snprintf(broker, sizeof(broker), "127.0.0.1:%u", s->port);
  for (; count > 0 && s->started < s->n; count--) {
    size_t i = s->started++;
    natter_client_config cfg;
    natter_client_config_default(&cfg);
    snprintf(name, sizeof(name), "%s-%zu", s->prefix, i);
    cfg.name = name;
    cfg.broker = broker;
    cfg.broker_key = s->broker_fp;
    cfg.identity_file = "";
    cfg.known_brokers = "";
    cfg.listen = 1;
    cfg.allow_peers = any_peer;
    cfg.log = quiet_log;
    cfg.on_event = on_event;
    cfg.user_data = &s->m[i];
    s->m[i].s = s;
    s->m[i].born = now_s();
    if (natter_client_new(&s->m[i].c, s->base, &cfg) != 0) {
      s->m[i].failed = 1;
      s->failed++;
    }
  }
}

static void ramp_cb(evutil_socket_t fd, short what, void *arg) {
  swarm *s = arg;
  (void)fd;
  (void)what;
  size_t busy = s->started - s->checked_in - s->failed;
  start_some(s, busy < s->inflight ? s->inflight - busy : 0);
  if (s->started == s->n && s->checked_in + s->failed == s->n) {
    event_base_loopbreak(s->base); /* the last ones failed at once */
  }
}

/* A command from the conductor: "pairs PREFIX N K SERIAL" (K of our
 * clients, the next unused ones of our first half, each connect to the
 * client of the same number in the second half of the process PREFIX of
 * N clients) or "quit". */
static void command_cb(evutil_socket_t fd, short what, void *arg) {
  swarm *s = arg;
  char line[128];
  size_t k = 0, tn = 0;
  int serial = 0;
  (void)fd;
  (void)what;
  if (!fgets(line, sizeof(line), s->in) || strncmp(line, "quit", 4) == 0) {
    event_base_loopbreak(s->base);
    return;
  }
  if (s->in_round ||
      sscanf(line, "pairs %31s %zu %zu %d", s->target, &tn, &k, &serial) != 4 ||
      s->next_req + k > s->n / 2 || s->next_req + k > tn / 2 || k == 0) {
    dprintf(s->out, "0 0 0 0\n"); /* no such round: none connected */
    return;
  }
  s->target_n = tn;
  s->round_first = s->next_req;
  s->next_req += k;
  s->round_k = k;
  s->round_started = s->round_done = s->round_ok = 0;
  s->serial = serial;
  s->in_round = 1;
  s->round_t0 = now_s();
  struct timeval tv = {ROUND_DEADLINE_S, 0};
  evtimer_add(s->round_deadline, &tv);
  if (serial) {
    ask_next(s);
  } else {
    for (size_t i = 0; i < k; i++) {
      (void)ask_one(s);
    }
  }
  if (s->in_round && s->round_done == s->round_k) {
    round_end(s); /* every one failed at once */
  }
}

/* Starts |n| clients named PREFIX-I, reports "checked failed" and then
 * each client's check-in time in ms on |out|, then serves the
 * conductor's commands on |in| until "quit". */
static int run_clients(const char *prefix, size_t n, uint16_t port,
                       const char *broker_fp, size_t inflight, int in,
                       int out) {
  swarm s = {0};
  struct event *ramp = NULL;
  s.base = event_base_new();
  s.m = calloc(n, sizeof(*s.m));
  s.lat_ms = calloc(n, sizeof(*s.lat_ms));
  s.n = n;
  s.prefix = prefix;
  s.port = port;
  s.broker_fp = broker_fp;
  s.out = out;
  s.in = fdopen(in, "r");
  if (!s.base || !s.m || !s.lat_ms || !s.in) {
    return 1;
  }
  if (inflight > 0) {
    s.inflight = inflight;
    ramp = event_new(s.base, -1, EV_PERSIST, ramp_cb, &s);
    struct timeval tick = {0, RAMP_TICK_MS * 1000};
    if (!ramp || event_add(ramp, &tick) != 0) {
      return 1;
    }
    start_some(&s, inflight);
  } else {
    start_some(&s, n);
  }
  struct event *deadline = evtimer_new(s.base, deadline_cb, s.base);
  struct timeval tv = {DEADLINE_S, 0};
  evtimer_add(deadline, &tv);
  if (s.started < s.n || s.checked_in + s.failed < s.n) {
    event_base_dispatch(s.base);
  }
  if (ramp) {
    event_free(ramp);
  }
  evtimer_del(deadline);
  s.phase = 1;
  dprintf(out, "%zu %zu\n", s.checked_in, s.failed);
  /* One line of every check-in time: the conductor's percentiles are
   * over all clients of all processes. */
  FILE *o = fdopen(dup(out), "w");
  if (!o) {
    return 1;
  }
  for (size_t i = 0; i < s.n; i++) {
    if (s.m[i].checked_in) {
      fprintf(o, "%.1f ", (double)s.m[i].checkin_ms);
    }
  }
  fprintf(o, "\n");
  fclose(o);
  /* Serve (keepalives, introductions) and run rounds of pairs until
   * told to quit. */
  s.round_deadline = evtimer_new(s.base, round_deadline_cb, &s);
  struct event *cmd =
      event_new(s.base, in, EV_READ | EV_PERSIST, command_cb, &s);
  event_add(cmd, NULL);
  event_base_dispatch(s.base);
  event_free(cmd);
  event_free(s.round_deadline);
  for (size_t i = 0; i < s.started; i++) {
    natter_client_free(s.m[i].c);
  }
  event_free(deadline);
  fclose(s.in);
  free(s.m);
  free(s.lat_ms);
  event_base_free(s.base);
  return 0;
}

/* ---- the conductor ---- */

static int read_line(int fd, char *buf, size_t len, double deadline) {
  size_t used = 0;
  while (used + 1 < len) {
    if (now_s() > deadline) {
      return -1;
    }
    ssize_t n = read(fd, buf + used, 1);
    if (n <= 0) {
      return -1;
    }
    if (buf[used] == '\n') {
      break;
    }
    used++;
  }
  buf[used] = '\0';
  return 0;
}

static void run_hook(const char *hook, const char *phase) {
  if (hook && *hook) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s", hook, phase);
    if (system(cmd) != 0) {
      fprintf(stderr, "broker_scale: the hook failed at %s\n", phase);
    }
  }
}

typedef struct kid {
  pid_t pid;
  FILE *from;
  int to;
  size_t n, broker;
  char prefix[32];
} kid;

/* One round of |k| pairs from process |from| to process |to| (same or
 * cross); prints its line, returns the pairs connected. */
static size_t pairs_round(kid *from, const kid *to, size_t k, int serial,
                          const char *hook, double *per_s) {
  char cmd[128], line[256];
  size_t ok = 0;
  double el = 0, p50 = 0, p99 = 0;
  int same = from->broker == to->broker;
  int n = snprintf(cmd, sizeof(cmd), "pairs %s %zu %zu %d\n", to->prefix,
                   to->n, k, serial);
  if (write(from->to, cmd, (size_t)n) != n || !fgets(line, sizeof(line), from->from) ||
      sscanf(line, "%zu %lf %lf %lf", &ok, &el, &p50, &p99) != 4) {
    ok = 0;
  }
  printf("intro=%s mode=%s pairs=%zu connected=%zu per_s=%.1f p50_ms=%.2f "
         "p99_ms=%.2f\n",
         same ? "same" : "cross", serial ? "serial" : "burst", k, ok,
         el > 0 ? (double)ok / el : 0.0, p50, p99);
  fflush(stdout);
  if (per_s) {
    *per_s = el > 0 ? (double)ok / el : 0.0;
  }
  if (!serial) {
    run_hook(hook, same ? "same" : "cross");
  }
  return ok;
}

int main(int argc, char **argv) {
  size_t clients = 1000, procs = 0, pairs = 20, brokers = 1, serial = 0;
  unsigned idle_s = 5;
  size_t inflight = 0;
  const char *registry = NULL, *hook = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--clients") == 0) {
      clients = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--procs") == 0) {
      procs = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--pairs") == 0) {
      pairs = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--idle") == 0) {
      idle_s = (unsigned)strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--inflight") == 0) {
      inflight = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--brokers") == 0) {
      brokers = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--registry") == 0) {
      registry = argv[i + 1];
    } else if (strcmp(argv[i], "--serial") == 0) {
      serial = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--hook") == 0) {
      hook = argv[i + 1];
    } else {
      fprintf(stderr, "usage: broker_scale [--clients N] [--procs P] "
                      "[--pairs K] [--idle S] [--inflight F] [--brokers B "
                      "--registry URI] [--serial M] [--hook CMD]\n");
      return 2;
    }
  }
  if (clients < 2 || clients > 20000) {
    fprintf(stderr, "broker_scale: --clients must be 2..20000\n");
    return 2;
  }
  if (brokers < 1 || brokers > 16 || (brokers > 1 && !registry)) {
    fprintf(stderr, "broker_scale: --brokers must be 1..16, and above 1 "
                    "needs --registry\n");
    return 2;
  }
  if (procs == 0) {
    procs = (clients + 3999) / 4000; /* ~2 files a client, 20000 a process */
  }
  /* Each client holds a UDP socket and a few event fds. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  double deadline = now_s() + DEADLINE_S;

  pid_t *bpid = calloc(brokers, sizeof(pid_t));
  unsigned *bport = calloc(brokers, sizeof(unsigned));
  char(*bfp)[80] = calloc(brokers, sizeof(*bfp));
  long *rss0 = calloc(brokers, sizeof(long)), *rss1 = calloc(brokers, sizeof(long));
  double *cpu0 = calloc(brokers, sizeof(double)),
         *cpu1 = calloc(brokers, sizeof(double)),
         *cpu2 = calloc(brokers, sizeof(double));
  size_t nkids = procs * brokers;
  kid *kids = calloc(nkids, sizeof(kid));
  double *ck = calloc(clients * brokers, sizeof(double));
  char *big = malloc(16 * 20000 + 64);
  char line[256];
  if (!bpid || !bport || !bfp || !rss0 || !rss1 || !cpu0 || !cpu1 || !cpu2 ||
      !kids || !ck || !big) {
    return 1;
  }
  for (size_t b = 0; b < brokers; b++) {
    int bp[2];
    if (pipe2(bp, O_CLOEXEC) != 0) {
      return 1;
    }
    bpid[b] = fork();
    if (bpid[b] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the conductor */
      close(bp[0]);
      _exit(run_broker(bp[1], registry));
    }
    close(bp[1]);
    if (read_line(bp[0], line, sizeof(line), deadline) != 0 ||
        sscanf(line, "%u %79s", &bport[b], bfp[b]) != 2) {
      fprintf(stderr, "broker_scale: a broker did not start\n");
      for (size_t j = 0; j <= b; j++) {
        kill(bpid[j], SIGKILL);
        waitpid(bpid[j], NULL, 0);
      }
      return 1;
    }
    close(bp[0]);
  }
  run_hook(hook, "pre");
  for (size_t b = 0; b < brokers; b++) {
    rss0[b] = proc_rss_kib(bpid[b]);
    cpu0[b] = proc_cpu_s(bpid[b]);
  }
  double t0 = now_s();

  for (size_t p = 0; p < nkids; p++) {
    int up[2], down[2];
    kid *k = &kids[p];
    size_t q = p % procs;
    k->broker = p / procs;
    k->n = clients / procs + (q < clients % procs);
    snprintf(k->prefix, sizeof(k->prefix), "c%zu", p);
    if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) {
      return 1;
    }
    fflush(stdout);
    k->pid = fork();
    if (k->pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(up[0]);
      close(down[1]);
      _exit(run_clients(k->prefix, k->n, (uint16_t)bport[k->broker],
                        bfp[k->broker], inflight, down[0], up[1]));
    }
    close(up[1]);
    close(down[0]);
    k->from = fdopen(up[0], "r");
    k->to = down[1];
    if (!k->from) {
      return 1;
    }
  }
  size_t checked = 0, failed = 0, nck = 0;
  for (size_t p = 0; p < nkids; p++) {
    size_t c = 0, f = 0;
    if (fgets(line, sizeof(line), kids[p].from) &&
        sscanf(line, "%zu %zu", &c, &f) == 2) {
      checked += c;
      failed += f;
    }
    if (fgets(big, 16 * 20000 + 64, kids[p].from)) {
      char *s = big, *e;
      for (double v = strtod(s, &e); e != s && nck < clients * brokers;
           v = strtod(s, &e)) {
        ck[nck++] = v;
        s = e;
      }
    }
  }
  double t1 = now_s();
  for (size_t b = 0; b < brokers; b++) {
    cpu1[b] = proc_cpu_s(bpid[b]);
    rss1[b] = proc_rss_kib(bpid[b]);
  }
  run_hook(hook, "checkedin");
  /* The idle time starts after the hook (which may take a while). */
  double *cpu1b = calloc(brokers, sizeof(double));
  for (size_t b = 0; b < brokers && cpu1b; b++) {
    cpu1b[b] = proc_cpu_s(bpid[b]);
  }
  sleep(idle_s);
  for (size_t b = 0; b < brokers; b++) {
    cpu2[b] = proc_cpu_s(bpid[b]) - (cpu1b ? cpu1b[b] - cpu1[b] : 0);
  }
  free(cpu1b);
  run_hook(hook, "idle");

  /* Check-in figures first: the rounds of pairs print as they go. */
  double cpu_ci = 0, cpu_idle = 0, kib = 0;
  for (size_t b = 0; b < brokers; b++) {
    cpu_ci += cpu1[b] - cpu0[b];
    cpu_idle += cpu2[b] - cpu1[b];
    kib += (double)(rss1[b] - rss0[b]);
  }
  qsort(ck, nck, sizeof(double), cmp_double);
  size_t total = clients * brokers;
  printf("checkin_p50_ms=%.1f checkin_p99_ms=%.1f checkin_max_ms=%.1f\n",
         quantile(ck, nck, 0.5), quantile(ck, nck, 0.99),
         nck ? ck[nck - 1] : 0.0);
  for (size_t b = 0; b < brokers; b++) {
    printf("broker=%zu n=%zu cpu_s_checkin=%.2f cpu_s_idle=%.2f "
           "rss_kib=%ld kib_per_client=%.2f\n",
           b, clients, cpu1[b] - cpu0[b], cpu2[b] - cpu1[b], rss1[b],
           (double)(rss1[b] - rss0[b]) / (double)clients);
  }
  fflush(stdout);

  size_t connected = 0, want = 0, same_ok = 0;
  double same_rate = 0;
  if (pairs > 0) {
    same_ok = pairs_round(&kids[0], &kids[0], pairs, 0, hook, &same_rate);
    connected += same_ok;
    want += pairs;
    if (brokers > 1) {
      connected += pairs_round(&kids[0], &kids[procs], pairs, 0, hook, NULL);
      want += pairs;
    }
  }
  if (serial > 0) {
    connected += pairs_round(&kids[0], &kids[0], serial, 1, hook, NULL);
    want += serial;
    if (brokers > 1) {
      connected += pairs_round(&kids[0], &kids[procs], serial, 1, hook, NULL);
      want += serial;
    }
  }
  for (size_t p = 0; p < nkids; p++) {
    if (write(kids[p].to, "quit\n", 5) != 5) {
      continue;
    }
  }
  for (size_t p = 0; p < nkids; p++) {
    close(kids[p].to);
    fclose(kids[p].from);
    waitpid(kids[p].pid, NULL, 0);
  }
  for (size_t b = 0; b < brokers; b++) {
    kill(bpid[b], SIGTERM);
    waitpid(bpid[b], NULL, 0);
  }

  printf("clients=%zu checked_in=%zu gave_up=%zu checkin_s=%.2f "
         "broker_cpu_ms_per_checkin=%.3f broker_kib_per_client=%.1f "
         "idle_cpu_pct_per_1000=%.3f pairs=%zu pairs_per_s=%.1f\n",
         total, checked, failed, t1 - t0,
         checked ? cpu_ci * 1000.0 / (double)checked : 0.0,
         checked ? kib / (double)checked : 0.0,
         idle_s ? cpu_idle * 100.0 / idle_s * 1000.0 / (double)total : 0.0,
         same_ok, same_rate);
  free(bpid);
  free(bport);
  free(bfp);
  free(rss0);
  free(rss1);
  free(cpu0);
  free(cpu1);
  free(cpu2);
  free(kids);
  free(ck);
  free(big);
  return checked == total && connected == want ? 0 : 1;
}
