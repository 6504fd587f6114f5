/* broker_scale: how one broker copes with many clients, on the public API
 * only (natter.h), in real processes on loopback.
 *
 *   broker_scale [--clients N] [--procs P] [--pairs K] [--idle S]
 *                [--inflight F]
 *
 * Forks a broker (its own process, so its CPU and memory are its own),
 * then P client processes that start N clients between them all at once
 * (ephemeral keys, -listen with '*' peers, the broker's key pinned), or
 * with --inflight F at most F per process still checking in at a time, so
 * that a slow build (sanitizers) on a busy machine goes only as fast as it
 * can serve check-ins inside a client's first-contact timeout (5 s); waits
 * until every client has checked in or given up, lets them sit idle S
 * seconds, and finally has K of them connect to K others (an fd session
 * each: introduction, hole punching, QUIC handshake). Prints one line of
 * figures:
 *
 *   clients=N checked_in=C gave_up=G checkin_s=T broker_cpu_ms_per_checkin=X
 *   broker_kib_per_client=M idle_cpu_pct_per_1000=I pairs=K pairs_per_s=R
 *
 * and exits 0 when every client checked in and every pair connected.
 * Memory per client is the broker's RSS after the check-ins minus its RSS
 * before, divided by N. The broker runs with max_clients and
 * max_per_source above N (all clients come from 127.0.0.1) and the
 * default pending limit (512), so a storm of check-ins is shed with
 * "busy" answers that the clients retry.
 *
 * Every wait is bounded: the whole run gives up after 300 s. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int run_broker(int out_fd) {
  struct event_base *base = event_base_new();
  natter_broker_config cfg;
  natter_broker *b = NULL;
  natter_broker_config_default(&cfg);
  cfg.listen = "127.0.0.1:0";
  cfg.identity_file = "";
  cfg.registry = "";
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
  int checked_in, failed, connected;
} member;

struct swarm {
  struct event_base *base;
  member *m;
  size_t n, checked_in, failed, pairs_wanted, pairs_done;
  size_t started; /* clients created so far */
  size_t inflight; /* at most this many still checking in; 0: no bound */
  const char *prefix;
  uint16_t port;
  const char *broker_fp;
  int phase; /* 0: checking in, 1: connecting pairs */
};

#define RAMP_TICK_MS 20

static void on_event(natter_client *c, const natter_event *ev, void *ud) {
  member *m = ud;
  swarm *s = m->s;
  (void)c;
  if (ev->type == NATTER_EVENT_CHECKED_IN && !m->checked_in) {
    m->checked_in = 1;
    s->checked_in++;
  } else if (ev->type == NATTER_EVENT_FATAL && !m->failed) {
    m->failed = 1;
    if (s->failed++ < 3) {
      fprintf(stderr, "broker_scale: a client gave up: %s\n", ev->message);
    }
  } else if (ev->type == NATTER_EVENT_PEER_CONNECTED && !m->connected) {
    m->connected = 1;
    s->pairs_done++;
  }
  if ((s->phase == 0 && s->started == s->n &&
       s->checked_in + s->failed == s->n) ||
      (s->phase == 1 && s->pairs_done == s->pairs_wanted)) {
    event_base_loopbreak(s->base);
  }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
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

/* Starts |n| clients named PREFIX-I, reports "checked failed" on |out|,
 * waits for "go" on |in|, then (when |pairs|) connects client I to the
 * peer named in the same process's second half, reports "connected". */
static int run_clients(const char *prefix, size_t n, uint16_t port,
                       const char *broker_fp, size_t pairs, size_t inflight,
                       int in, int out) {
  swarm s = {0};
  char name[64];
  struct event *ramp = NULL;
  s.base = event_base_new();
  s.m = calloc(n, sizeof(*s.m));
  s.n = n;
  s.prefix = prefix;
  s.port = port;
  s.broker_fp = broker_fp;
  if (!s.base || !s.m) {
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
  dprintf(out, "%zu %zu\n", s.checked_in, s.failed);
  /* Idle: keep serving (keepalives) until told to go on. */
  struct event *go = event_new(s.base, in, EV_READ, deadline_cb, s.base);
  event_add(go, NULL);
  event_base_dispatch(s.base);
  event_free(go);
  /* A client that gave up cannot be a pair's end: say so now rather than
   * wait for the deadline. */
  if (pairs > 0 && pairs <= n / 2 && s.failed > 0) {
    dprintf(out, "0\n");
  } else if (pairs > 0 && pairs <= n / 2) {
    s.phase = 1;
    s.pairs_wanted = pairs;
    for (size_t i = 0; i < pairs; i++) {
      int sv[2];
      char err[256];
      natter_forward_config f;
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return 1;
      }
      natter_forward_config_default(&f);
      snprintf(name, sizeof(name), "%s-%zu", prefix, n / 2 + i);
      f.peer = name;
      f.port = 9; /* the discard port: the connection itself is the point */
      f.in_fd = sv[0];
      f.out_fd = sv[0];
      if (natter_client_add_forward(s.m[i].c, &f, NULL, err, sizeof(err)) !=
          0) {
        fprintf(stderr, "broker_scale: %s\n", err);
        return 1;
      }
      /* sv[1] stays open: the session waits for the peer, then for us. */
    }
    evtimer_add(deadline, &tv);
    event_base_dispatch(s.base);
    dprintf(out, "%zu\n", s.pairs_done);
  }
  for (size_t i = 0; i < s.started; i++) {
    natter_client_free(s.m[i].c);
  }
  event_free(deadline);
  free(s.m);
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

int main(int argc, char **argv) {
  size_t clients = 1000, procs = 0, pairs = 20;
  unsigned idle_s = 5;
  size_t inflight = 0;
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
    } else {
      fprintf(stderr, "usage: broker_scale [--clients N] [--procs P] "
                      "[--pairs K] [--idle S] [--inflight F]\n");
      return 2;
    }
  }
  if (clients < 2 || clients > 20000) {
    fprintf(stderr, "broker_scale: --clients must be 2..20000\n");
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

  int bp[2];
  if (pipe2(bp, O_CLOEXEC) != 0) {
    return 1;
  }
  pid_t broker = fork();
  if (broker == 0) {
    close(bp[0]);
    _exit(run_broker(bp[1]));
  }
  close(bp[1]);
  char line[256], fp[80];
  unsigned port = 0;
  if (read_line(bp[0], line, sizeof(line), deadline) != 0 ||
      sscanf(line, "%u %79s", &port, fp) != 2) {
    fprintf(stderr, "broker_scale: the broker did not start\n");
    kill(broker, SIGKILL);
    return 1;
  }
  close(bp[0]);
  long rss0 = proc_rss_kib(broker);
  double cpu0 = proc_cpu_s(broker), t0 = now_s();

  pid_t *kids = calloc(procs, sizeof(pid_t));
  int *to_kid = calloc(procs, sizeof(int)), *from_kid = calloc(procs, sizeof(int));
  for (size_t p = 0; p < procs; p++) {
    int up[2], down[2];
    size_t n = clients / procs + (p < clients % procs);
    if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) {
      return 1;
    }
    kids[p] = fork();
    if (kids[p] == 0) {
      char prefix[32];
      close(up[0]);
      close(down[1]);
      snprintf(prefix, sizeof(prefix), "c%zu", p);
      _exit(run_clients(prefix, n, (uint16_t)port, fp, p == 0 ? pairs : 0,
                        inflight, down[0], up[1]));
    }
    close(up[1]);
    close(down[0]);
    from_kid[p] = up[0];
    to_kid[p] = down[1];
  }
  size_t checked = 0, failed = 0;
  for (size_t p = 0; p < procs; p++) {
    size_t c = 0, f = 0;
    if (read_line(from_kid[p], line, sizeof(line), deadline) == 0 &&
        sscanf(line, "%zu %zu", &c, &f) == 2) {
      checked += c;
      failed += f;
    }
  }
  double t1 = now_s(), cpu1 = proc_cpu_s(broker);
  long rss1 = proc_rss_kib(broker);
  sleep(idle_s);
  double cpu2 = proc_cpu_s(broker);

  size_t connected = 0;
  double t2 = now_s(), t3 = t2;
  for (size_t p = 0; p < procs; p++) {
    if (write(to_kid[p], "go\n", 3) != 3) {
      break;
    }
  }
  if (pairs > 0) {
    if (read_line(from_kid[0], line, sizeof(line), deadline) == 0) {
      connected = strtoul(line, NULL, 10);
    }
    t3 = now_s();
  }
  for (size_t p = 0; p < procs; p++) {
    int st;
    close(to_kid[p]);
    waitpid(kids[p], &st, 0);
  }
  kill(broker, SIGTERM);
  waitpid(broker, NULL, 0);

  printf("clients=%zu checked_in=%zu gave_up=%zu checkin_s=%.2f "
         "broker_cpu_ms_per_checkin=%.3f broker_kib_per_client=%.1f "
         "idle_cpu_pct_per_1000=%.3f pairs=%zu pairs_per_s=%.1f\n",
         clients, checked, failed, t1 - t0,
         checked ? (cpu1 - cpu0) * 1000.0 / (double)checked : 0.0,
         checked ? (double)(rss1 - rss0) / (double)checked : 0.0,
         idle_s ? (cpu2 - cpu1) * 100.0 / idle_s * 1000.0 / (double)clients
                : 0.0,
         connected, t3 > t2 ? (double)connected / (t3 - t2) : 0.0);
  free(kids);
  free(to_kid);
  free(from_kid);
  return checked == clients && connected == pairs ? 0 : 1;
}
