/* tcpcheck: a small real-sockets TCP client and server for natter's
 * integration tests, demo and benchmarks.
 *
 *   tcpcheck echo-server PORT [--bind ADDR]
 *   tcpcheck sink-server PORT [--bind ADDR]
 *   tcpcheck echo-check PORT --conns N --bytes B [--timeout S] [--host ADDR]
 *   tcpcheck send PORT --bytes B [--timeout S] [--host ADDR]
 *   tcpcheck latency PORT --conns N --bytes B [--timeout S] [--host ADDR]
 *   tcpcheck hold PORT --conns N [--timeout S] [--host ADDR]
 *
 * The servers run one epoll loop over non-blocking sockets, so they serve
 * many connections at once, and stop reading from a connection while its
 * echo cannot be written (a slow reader slows the writer; memory stays
 * bounded). echo-check drives N connections on one loop the same way and
 * checks every echoed byte against a per-connection pseudo-random stream
 * that it regenerates instead of storing, so B may be large. Every wait has a
 * deadline. SHA-256 comes from GnuTLS (the same library natter links). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define IO_CHUNK_BYTES 65536    /* one read or write */
#define ECHO_BUFFER_BYTES 65536 /* per echo-server connection */
#define CHECK_CHUNK_BYTES 16384 /* per echo-check connection, send side */
#define SEND_CHUNK_BYTES 262144 /* tcpcheck send */
#define SHA256_BYTES 32
#define SHA256_HEX_LINE_BYTES 65 /* 64 hex digits + '\n' */
#define MAX_EVENTS 256
#define MAX_CONNS 100000

static const char *progname = "tcpcheck";
static const char *command = "";

static void usage(FILE *out) {
  fprintf(out,
          "usage:\n"
          "  tcpcheck echo-server PORT [--bind ADDR]\n"
          "      echo every connection on ADDR:PORT (default 127.0.0.1); on\n"
          "      EOF finish the echo, then half-close. Prints \"ready\".\n"
          "  tcpcheck sink-server PORT [--bind ADDR]\n"
          "      read and discard; on EOF reply with the lowercase hex\n"
          "      SHA-256 of all bytes received and a newline, then close.\n"
          "  tcpcheck echo-check PORT --conns N --bytes B [--timeout S]"
          " [--host ADDR]\n"
          "      N concurrent connections each send B pseudo-random bytes,\n"
          "      half-close and verify the echo byte for byte. Prints\n"
          "      \"N ok\"; exits 0 only if every connection verified.\n"
          "  tcpcheck send PORT --bytes B [--timeout S] [--host ADDR]\n"
          "      send B random bytes to a sink-server, half-close, compare\n"
          "      its SHA-256 reply and print \"bytes=B seconds=S gbps=G\".\n"
          "  tcpcheck latency PORT --conns N --bytes B [--timeout S]"
          " [--host ADDR]\n"
          "      on one connection (TCP_NODELAY) to an echo-server, N round\n"
          "      trips of B bytes each, one at a time; print the time from\n"
          "      connect() to the first echo and the round-trip percentiles:\n"
          "      \"first_us=F p50_us=M p99_us=P max_us=X\".\n"
          "  tcpcheck hold PORT --conns N [--timeout S] [--host ADDR]\n"
          "      N connections each send \"ping\\n\", read its echo and stay\n"
          "      open until SIGTERM or SIGINT; prints \"echoed=E closed=C\n"
          "      lost=L\" whenever the counts change (C: ended before the\n"
          "      echo, L: after it). Exits 0 after the signal unless a\n"
          "      connection was lost; 1 at the --timeout.\n"
          "B accepts K, M, G suffixes (powers of 1024). --timeout defaults\n"
          "to 60 seconds. Exit status: 0 ok, 1 check failed, 2 bad usage.\n");
}

static _Noreturn void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: %s%s", progname, command, *command ? ": " : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", progname);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see tcpcheck -h)\n");
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- argument parsing --------------------------------------------------- */

static int parse_port(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > 65535) {
    usage_error("bad port \"%s\": expected 1..65535", s);
  }
  return (int)v;
}

static uint64_t parse_bytes(const char *s) {
  char *end;
  errno = 0;
  if (*s == '-') {
    usage_error("bad byte count \"%s\"", s);
  }
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) {
    usage_error("bad byte count \"%s\"", s);
  }
  uint64_t mult = 1;
  switch (*end) {
  case '\0':
    break;
  case 'k':
  case 'K':
    mult = 1ull << 10;
    end++;
    break;
  case 'm':
  case 'M':
    mult = 1ull << 20;
    end++;
    break;
  case 'g':
  case 'G':
    mult = 1ull << 30;
    end++;
    break;
  default:
    usage_error("bad byte count \"%s\": use digits and K, M or G", s);
  }
  if (*end || v > UINT64_MAX / mult) {
    usage_error("bad byte count \"%s\"", s);
  }
  return (uint64_t)v * mult;
}

static double parse_seconds(const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0) || v > 86400) {
    usage_error("bad timeout \"%s\": expected seconds, 0 < S <= 86400", s);
  }
  return v;
}

static long parse_conns(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > MAX_CONNS) {
    usage_error("bad connection count \"%s\": expected 1..100000", s);
  }
  return v;
}

typedef struct options {
  int port;
  const char *host; /* numeric IPv4 or IPv6 */
  long conns;
  uint64_t bytes;
  bool have_bytes;
  double timeout_s;
} options;

static void parse_options(int argc, char **argv, options *o, bool client) {
  if (argc < 1) {
    usage_error("%s needs a PORT", command);
  }
  o->port = parse_port(argv[0]);
  o->host = "127.0.0.1";
  o->conns = 1;
  o->bytes = 0;
  o->have_bytes = false;
  o->timeout_s = 60;
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (i + 1 >= argc) {
      usage_error("%s needs a value", flag);
    }
    const char *val = argv[++i];
    if (client && strcmp(flag, "--conns") == 0) {
      o->conns = parse_conns(val);
    } else if (client && strcmp(flag, "--bytes") == 0) {
      o->bytes = parse_bytes(val);
      o->have_bytes = true;
    } else if (client && strcmp(flag, "--timeout") == 0) {
      o->timeout_s = parse_seconds(val);
    } else if (client && strcmp(flag, "--host") == 0) {
      o->host = val;
    } else if (!client && strcmp(flag, "--bind") == 0) {
      o->host = val;
    } else {
      usage_error("unknown option %s", flag);
    }
  }
}

/* ---- sockets ------------------------------------------------------------ */

static socklen_t make_addr(const char *host, int port,
                           struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *sin = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    return sizeof(*sin);
  }
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    return sizeof(*sin6);
  }
  usage_error("bad address \"%s\": expected a numeric IPv4 or IPv6 address",
              host);
}

static void set_nodelay(int fd) {
  int one = 1;
  /* Echo traffic is request/response shaped; Nagle would add latency. */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Many concurrent connections need many descriptors. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static void epoll_set(int epfd, int op, int fd, uint32_t events, void *ptr) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = ptr;
  if (epoll_ctl(epfd, op, fd, &ev) != 0) {
    die("epoll_ctl: %s", strerror(errno));
  }
}

/* ---- pseudo-random byte stream ------------------------------------------
 * splitmix64: fast, and the same seed gives the same byte stream however
 * it is split into chunks, so echo-check regenerates what it sent. */

typedef struct prng {
  uint64_t state;
  uint8_t cache[8];
  unsigned cache_pos; /* 8: cache empty */
} prng;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void prng_init(prng *p, uint64_t seed) {
  p->state = seed;
  p->cache_pos = 8;
}

static void prng_fill(prng *p, uint8_t *buf, size_t n) {
  while (n > 0 && p->cache_pos < 8) {
    *buf++ = p->cache[p->cache_pos++];
    n--;
  }
  while (n >= 8) {
    uint64_t w = splitmix64(&p->state);
    memcpy(buf, &w, 8);
    buf += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = splitmix64(&p->state);
    memcpy(p->cache, &w, 8);
    p->cache_pos = 0;
    while (n > 0) {
      *buf++ = p->cache[p->cache_pos++];
      n--;
    }
  }
}

static uint64_t random_seed(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
               ((uint64_t)getpid() << 32);
  return splitmix64(&s);
}

/* ---- SHA-256 ------------------------------------------------------------ */

static void sha256_hex(gnutls_hash_hd_t hash, char out[SHA256_HEX_LINE_BYTES]) {
  static const char digits[] = "0123456789abcdef";
  unsigned char digest[SHA256_BYTES];
  gnutls_hash_deinit(hash, digest);
  for (size_t i = 0; i < SHA256_BYTES; i++) {
    out[2 * i] = digits[digest[i] >> 4];
    out[2 * i + 1] = digits[digest[i] & 15];
  }
  out[64] = '\n';
}

static gnutls_hash_hd_t sha256_new(void) {
  gnutls_hash_hd_t hash;
  int rv = gnutls_hash_init(&hash, GNUTLS_DIG_SHA256);
  if (rv < 0) {
    die("gnutls_hash_init: %s", gnutls_strerror(rv));
  }
  return hash;
}

/* ---- servers: echo-server and sink-server -------------------------------- */

typedef enum server_mode { MODE_ECHO, MODE_SINK } server_mode;

typedef struct server_conn {
  struct server_conn *prev, *next; /* every open connection, for shutdown */
  int fd;
  uint32_t events; /* current epoll interest */
  bool read_eof;
  /* echo: pending bytes are buf[start, end) */
  uint8_t *buf;
  size_t start, end;
  /* sink */
  gnutls_hash_hd_t hash;
  uint64_t received;
  char reply[SHA256_HEX_LINE_BYTES];
  size_t reply_sent;
} server_conn;

typedef struct server {
  server_mode mode;
  int epfd, listen_fd, signal_fd;
  bool listen_paused; /* out of descriptors: accept again after a close */
  server_conn *conns;
  uint64_t accepted, open;
  uint8_t scratch[IO_CHUNK_BYTES];
} server;

/* Markers that tell the listener and the signal fd apart in epoll data. */
static char listen_marker, signal_marker;

static void server_conn_close(server *s, server_conn *c) {
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    s->conns = c->next;
  }
  if (c->next) {
    c->next->prev = c->prev;
  }
  close(c->fd); /* also removes it from epoll */
  if (s->mode == MODE_SINK && c->hash) {
    gnutls_hash_deinit(c->hash, NULL);
  }
  free(c->buf);
  free(c);
  s->open--;
  if (s->listen_paused) {
    epoll_set(s->epfd, EPOLL_CTL_MOD, s->listen_fd, EPOLLIN, &listen_marker);
    s->listen_paused = false;
  }
}

static void server_conn_interest(server *s, server_conn *c, uint32_t events) {
  if (events != c->events) {
    epoll_set(s->epfd, EPOLL_CTL_MOD, c->fd, events, c);
    c->events = events;
  }
}

static bool io_would_block(void) {
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* Returns false when the connection is finished or failed (close it). */
static bool echo_on_event(server *s, server_conn *c, uint32_t ev) {
  if (ev & EPOLLERR) {
    return false;
  }
  if (!c->read_eof && c->end < ECHO_BUFFER_BYTES &&
      (ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))) {
    /* Bounded: at most one buffer's worth per event. */
    ssize_t n = recv(c->fd, c->buf + c->end, ECHO_BUFFER_BYTES - c->end, 0);
    if (n > 0) {
      c->end += (size_t)n;
    } else if (n == 0) {
      c->read_eof = true;
    } else if (!io_would_block() && errno != EINTR) {
      return false;
    }
  }
  while (c->start < c->end) {
    ssize_t n = send(c->fd, c->buf + c->start, c->end - c->start, MSG_NOSIGNAL);
    if (n > 0) {
      c->start += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && io_would_block()) {
      break;
    } else {
      return false;
    }
  }
  if (c->start == c->end) {
    c->start = c->end = 0;
    if (c->read_eof) {
      /* Everything echoed: pass the client's half-close on. */
      shutdown(c->fd, SHUT_WR);
      return false;
    }
  }
  uint32_t want = 0;
  if (!c->read_eof && c->end < ECHO_BUFFER_BYTES) {
    want |= EPOLLIN | EPOLLRDHUP;
  }
  if (c->start < c->end) {
    want |= EPOLLOUT;
  }
  server_conn_interest(s, c, want);
  return true;
}

static bool sink_on_event(server *s, server_conn *c, uint32_t ev) {
  if (ev & EPOLLERR) {
    return false;
  }
  /* Bounded: at most 16 reads per event; level-triggered epoll calls again. */
  for (int round = 0;
       round < 16 && !c->read_eof && (ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP));
       round++) {
    ssize_t n = recv(c->fd, s->scratch, sizeof(s->scratch), 0);
    if (n > 0) {
      int rv = gnutls_hash(c->hash, s->scratch, (size_t)n);
      if (rv < 0) {
        die("gnutls_hash: %s", gnutls_strerror(rv));
      }
      c->received += (uint64_t)n;
      continue;
    }
    if (n < 0) {
      return io_would_block() || errno == EINTR;
    }
    c->read_eof = true;
    sha256_hex(c->hash, c->reply);
    c->hash = NULL;
    fprintf(stderr, "%s: sink-server: received %llu bytes, sha256 %.64s\n",
            progname, (unsigned long long)c->received, c->reply);
  }
  while (c->read_eof && c->reply_sent < sizeof(c->reply)) {
    ssize_t n = send(c->fd, c->reply + c->reply_sent,
                     sizeof(c->reply) - c->reply_sent, MSG_NOSIGNAL);
    if (n > 0) {
      c->reply_sent += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && io_would_block()) {
      server_conn_interest(s, c, EPOLLOUT);
      return true;
    } else {
      return false;
    }
  }
  return !c->read_eof; /* reply sent: done */
}

static void server_accept(server *s) {
  /* Bounded: the backlog is finite, and at most 1024 per event. */
  for (int i = 0; i < 1024; i++) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        fprintf(stderr,
                "%s: %s: accept: %s; pausing until a connection closes\n",
                progname, command, strerror(errno));
        epoll_set(s->epfd, EPOLL_CTL_MOD, s->listen_fd, 0, &listen_marker);
        s->listen_paused = true;
      } else if (!io_would_block() && errno != EINTR && errno != ECONNABORTED) {
        fprintf(stderr, "%s: %s: accept: %s\n", progname, command,
                strerror(errno));
      }
      return;
    }
    server_conn *c = calloc(1, sizeof(*c));
    if (!c) {
      die("out of memory");
    }
    c->fd = fd;
    if (s->mode == MODE_ECHO) {
      c->buf = malloc(ECHO_BUFFER_BYTES);
      if (!c->buf) {
        die("out of memory");
      }
      set_nodelay(fd);
    } else {
      c->hash = sha256_new();
    }
    c->events = EPOLLIN | EPOLLRDHUP;
    epoll_set(s->epfd, EPOLL_CTL_ADD, fd, c->events, c);
    c->next = s->conns;
    if (s->conns) {
      s->conns->prev = c;
    }
    s->conns = c;
    s->accepted++;
    s->open++;
  }
}

static int run_server(server_mode mode, int argc, char **argv) {
  options o;
  parse_options(argc, argv, &o, false);
  raise_fd_limit();

  server *s = calloc(1, sizeof(*s));
  if (!s) {
    die("out of memory");
  }
  s->mode = mode;

  /* SIGTERM/SIGINT arrive on a descriptor, so the loop sees them without
   * races and frees everything before exiting (clean under LeakSanitizer). */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
    die("sigprocmask: %s", strerror(errno));
  }
  s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (s->signal_fd < 0) {
    die("signalfd: %s", strerror(errno));
  }

  struct sockaddr_storage ss;
  socklen_t sslen = make_addr(o.host, o.port, &ss);
  s->listen_fd =
      socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->listen_fd < 0) {
    die("socket: %s", strerror(errno));
  }
  int one = 1;
  (void)setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(s->listen_fd, (struct sockaddr *)&ss, sslen) != 0) {
    die("cannot listen on %s port %d: %s", o.host, o.port, strerror(errno));
  }
  if (listen(s->listen_fd, SOMAXCONN) != 0) {
    die("listen: %s", strerror(errno));
  }

  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) {
    die("epoll_create1: %s", strerror(errno));
  }
  epoll_set(s->epfd, EPOLL_CTL_ADD, s->listen_fd, EPOLLIN, &listen_marker);
  epoll_set(s->epfd, EPOLL_CTL_ADD, s->signal_fd, EPOLLIN, &signal_marker);

  printf("ready\n");
  fflush(stdout);
  fprintf(stderr, "%s: %s listening on %s port %d\n", progname, command, o.host,
          o.port);

  bool running = true;
  struct epoll_event events[MAX_EVENTS];
  while (running) {
    int n = epoll_wait(s->epfd, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
      void *ptr = events[i].data.ptr;
      if (ptr == &signal_marker) {
        running = false;
      } else if (ptr == &listen_marker) {
        server_accept(s);
      } else {
        server_conn *c = ptr;
        bool keep = mode == MODE_ECHO ? echo_on_event(s, c, events[i].events)
                                      : sink_on_event(s, c, events[i].events);
        if (!keep) {
          /* Safe: epoll_wait returns each fd at most once per call. */
          server_conn_close(s, c);
        }
      }
    }
  }

  fprintf(stderr,
          "%s: %s: stopping; served %llu connections, %llu still open\n",
          progname, command, (unsigned long long)s->accepted,
          (unsigned long long)s->open);
  while (s->conns) {
    server_conn_close(s, s->conns);
  }
  close(s->listen_fd);
  close(s->signal_fd);
  close(s->epfd);
  free(s);
  return 0;
}

/* ---- echo-check --------------------------------------------------------- */

typedef struct check_conn {
  int fd; /* -1 once finished */
  long index;
  prng send_rng, verify_rng;
  uint64_t queued;   /* bytes generated into out so far */
  uint64_t sent;     /* bytes written to the socket */
  uint64_t verified; /* echoed bytes checked */
  uint8_t out[CHECK_CHUNK_BYTES];
  size_t out_pos, out_len;
  bool connecting, write_shut;
  uint32_t events;
} check_conn;

typedef struct checker {
  int epfd;
  uint64_t bytes;
  long failed, finished;
  uint8_t in[IO_CHUNK_BYTES];
  uint8_t expect[IO_CHUNK_BYTES];
} checker;

static void check_finish(checker *k, check_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fmt == NULL: verified. Otherwise prints the failure. */
static void check_finish(checker *k, check_conn *c, const char *fmt, ...) {
  if (fmt) {
    va_list ap;
    fprintf(stderr, "%s: echo-check: conn %ld: ", progname, c->index);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (sent %llu, verified %llu of %llu bytes)\n",
            (unsigned long long)c->sent, (unsigned long long)c->verified,
            (unsigned long long)k->bytes);
    k->failed++;
  }
  close(c->fd);
  c->fd = -1;
  k->finished++;
}

static void check_interest(checker *k, check_conn *c) {
  uint32_t want = EPOLLIN | EPOLLRDHUP;
  if (c->connecting || !c->write_shut) {
    want |= EPOLLOUT;
  }
  if (want != c->events) {
    epoll_set(k->epfd, EPOLL_CTL_MOD, c->fd, want, c);
    c->events = want;
  }
}

/* Returns false if the connection failed (already finished). */
static bool check_write(checker *k, check_conn *c) {
  /* Bounded: at most 16 writes per event; the loop calls again. */
  for (int round = 0; round < 16 && !c->write_shut; round++) {
    if (c->out_pos == c->out_len) {
      if (c->queued == k->bytes) {
        if (shutdown(c->fd, SHUT_WR) != 0) {
          check_finish(k, c, "shutdown: %s", strerror(errno));
          return false;
        }
        c->write_shut = true;
        break;
      }
      uint64_t left = k->bytes - c->queued;
      size_t n = left < CHECK_CHUNK_BYTES ? (size_t)left : CHECK_CHUNK_BYTES;
      prng_fill(&c->send_rng, c->out, n);
      c->queued += n;
      c->out_pos = 0;
      c->out_len = n;
    }
    ssize_t n =
        send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_pos += (size_t)n;
      c->sent += (uint64_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && io_would_block()) {
      break;
    } else {
      check_finish(k, c, "send: %s", strerror(errno));
      return false;
    }
  }
  return true;
}

static bool check_read(checker *k, check_conn *c) {
  ssize_t n = recv(c->fd, k->in, sizeof(k->in), 0);
  if (n < 0) {
    if (io_would_block() || errno == EINTR) {
      return true;
    }
    check_finish(k, c, "recv: %s", strerror(errno));
    return false;
  }
  if (n == 0) {
    if (c->verified == k->bytes) {
      check_finish(k, c, NULL);
    } else {
      check_finish(k, c, "echo ended early (EOF)");
    }
    return false;
  }
  if ((uint64_t)n > k->bytes - c->verified) {
    check_finish(k, c, "received %llu bytes more than were sent",
                 (unsigned long long)((uint64_t)n - (k->bytes - c->verified)));
    return false;
  }
  prng_fill(&c->verify_rng, k->expect, (size_t)n);
  if (memcmp(k->in, k->expect, (size_t)n) != 0) {
    size_t at = 0;
    while (k->in[at] == k->expect[at]) {
      at++;
    }
    check_finish(k, c, "echo differs at byte %llu (got 0x%02x, sent 0x%02x)",
                 (unsigned long long)(c->verified + at), k->in[at],
                 k->expect[at]);
    return false;
  }
  c->verified += (uint64_t)n;
  return true;
}

static void check_on_event(checker *k, check_conn *c, uint32_t ev) {
  if (c->connecting) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      return;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err) {
      check_finish(k, c, "connect: %s", strerror(err));
      return;
    }
    c->connecting = false;
  }
  if ((ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) &&
      !check_read(k, c)) {
    return;
  }
  if (!c->write_shut && !check_write(k, c)) {
    return;
  }
  check_interest(k, c);
}

static int run_echo_check(int argc, char **argv) {
  options o;
  parse_options(argc, argv, &o, true);
  if (!o.have_bytes) {
    usage_error("%s needs --bytes B", command);
  }
  raise_fd_limit();

  checker *k = calloc(1, sizeof(*k));
  check_conn *conns = calloc((size_t)o.conns, sizeof(*conns));
  if (!k || !conns) {
    die("out of memory");
  }
  k->bytes = o.bytes;
  k->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (k->epfd < 0) {
    die("epoll_create1: %s", strerror(errno));
  }

  struct sockaddr_storage ss;
  socklen_t sslen = make_addr(o.host, o.port, &ss);
  uint64_t seed = random_seed();
  uint64_t start = now_ns();
  uint64_t deadline = start + (uint64_t)(o.timeout_s * 1e9);

  for (long i = 0; i < o.conns; i++) {
    check_conn *c = &conns[i];
    c->index = i;
    /* Distinct stream per connection: a crossed echo shows as a mismatch. */
    uint64_t conn_seed = seed ^ ((uint64_t)(i + 1) * 0xd1342543de82ef95ull);
    prng_init(&c->send_rng, conn_seed);
    prng_init(&c->verify_rng, conn_seed);
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
      die("socket (connection %ld of %ld): %s; raise the descriptor limit "
          "(ulimit -n) or use fewer --conns",
          i + 1, o.conns, strerror(errno));
    }
    set_nodelay(c->fd);
    c->connecting = true;
    if (connect(c->fd, (struct sockaddr *)&ss, sslen) != 0 &&
        errno != EINPROGRESS) {
      int err = errno;
      c->events = 0;
      check_finish(k, c, "connect to %s port %d: %s", o.host, o.port,
                   strerror(err));
      continue;
    }
    c->events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    epoll_set(k->epfd, EPOLL_CTL_ADD, c->fd, c->events, c);
  }

  struct epoll_event events[MAX_EVENTS];
  while (k->finished < o.conns) {
    uint64_t now = now_ns();
    if (now >= deadline) {
      break;
    }
    uint64_t wait_ms = (deadline - now + 999999) / 1000000;
    int n = epoll_wait(k->epfd, events, MAX_EVENTS,
                       wait_ms > 1000 ? 1000 : (int)wait_ms);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
      check_conn *c = events[i].data.ptr;
      if (c->fd >= 0) {
        check_on_event(k, c, events[i].events);
      }
    }
  }

  for (long i = 0; i < o.conns; i++) {
    check_conn *c = &conns[i];
    if (c->fd >= 0) {
      check_finish(k, c, "timed out after %g s%s", o.timeout_s,
                   c->connecting ? " while connecting" : "");
    }
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  long ok = o.conns - k->failed;
  int status = k->failed ? 1 : 0;
  if (k->failed) {
    fprintf(stderr,
            "%s: echo-check: %ld of %ld connections failed to %s port %d\n",
            progname, k->failed, o.conns, o.host, o.port);
  } else {
    printf("%ld ok\n", ok);
    fprintf(stderr, "%s: echo-check: %ld connections x %llu bytes in %.3f s\n",
            progname, o.conns, (unsigned long long)o.bytes, seconds);
  }
  close(k->epfd);
  free(conns);
  free(k);
  return status;
}

/* ---- send --------------------------------------------------------------- */

static _Noreturn void on_alarm(int sig) {
  /* Async-signal-safe: write(2) and _exit(2) only. */
  (void)sig;
  static const char msg[] =
      "tcpcheck: timed out (raise --timeout, or the server never "
      "replied)\n";
  ssize_t rv = write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)rv;
  _exit(1);
}

static int run_send(int argc, char **argv) {
  options o;
  parse_options(argc, argv, &o, true);
  if (!o.have_bytes) {
    usage_error("%s needs --bytes B", command);
  }
  if (o.conns != 1) {
    usage_error("%s takes no --conns", command);
  }

  /* One blocking connection; an alarm bounds the whole exchange. */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval timer;
  memset(&timer, 0, sizeof(timer));
  timer.it_value.tv_sec = (time_t)o.timeout_s;
  timer.it_value.tv_usec =
      (suseconds_t)((o.timeout_s - (double)timer.it_value.tv_sec) * 1e6);
  if (setitimer(ITIMER_REAL, &timer, NULL) != 0) {
    die("setitimer: %s", strerror(errno));
  }

  struct sockaddr_storage ss;
  socklen_t sslen = make_addr(o.host, o.port, &ss);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    die("socket: %s", strerror(errno));
  }
  uint64_t start = now_ns();
  if (connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
    die("cannot connect to %s port %d: %s", o.host, o.port, strerror(errno));
  }

  uint8_t *buf = malloc(SEND_CHUNK_BYTES);
  if (!buf) {
    die("out of memory");
  }
  gnutls_hash_hd_t hash = sha256_new();
  prng rng;
  prng_init(&rng, random_seed());
  uint64_t sent = 0;
  while (sent < o.bytes) {
    uint64_t left = o.bytes - sent;
    size_t n = left < SEND_CHUNK_BYTES ? (size_t)left : SEND_CHUNK_BYTES;
    prng_fill(&rng, buf, n);
    int rv = gnutls_hash(hash, buf, n);
    if (rv < 0) {
      die("gnutls_hash: %s", gnutls_strerror(rv));
    }
    size_t off = 0;
    while (off < n) {
      ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w <= 0) {
        die("send failed after %llu of %llu bytes: %s",
            (unsigned long long)(sent + off), (unsigned long long)o.bytes,
            strerror(errno));
      }
      off += (size_t)w;
    }
    sent += n;
  }
  if (shutdown(fd, SHUT_WR) != 0) {
    die("shutdown: %s", strerror(errno));
  }
  char expected[SHA256_HEX_LINE_BYTES];
  sha256_hex(hash, expected);

  /* The reply is one line; anything longer is wrong, so stop reading. */
  char reply[2 * SHA256_HEX_LINE_BYTES];
  size_t got = 0;
  while (got < sizeof(reply)) {
    ssize_t r = recv(fd, reply + got, sizeof(reply) - got, 0);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      die("reading the reply: %s", strerror(errno));
    }
    if (r == 0) {
      break;
    }
    got += (size_t)r;
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  memset(&timer, 0, sizeof(timer));
  setitimer(ITIMER_REAL, &timer, NULL);
  close(fd);
  free(buf);

  if (got != sizeof(expected) || memcmp(reply, expected, got) != 0) {
    /* Show the reply as text: unprintable bytes become '.'. */
    char shown[sizeof(reply) + 1];
    size_t shown_len = got > 0 && reply[got - 1] == '\n' ? got - 1 : got;
    for (size_t i = 0; i < shown_len; i++) {
      unsigned char ch = (unsigned char)reply[i];
      shown[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
    }
    shown[shown_len] = '\0';
    fprintf(stderr,
            "%s: send: reply does not match: sent %llu bytes with sha256 "
            "%.64s, got %zu bytes \"%s\"%s; is PORT a tcpcheck "
            "sink-server?\n",
            progname, (unsigned long long)o.bytes, expected, got, shown,
            got == sizeof(reply) ? " (truncated)" : "");
    return 1;
  }
  double gbps = seconds > 0 ? (double)o.bytes * 8 / seconds / 1e9 : 0;
  printf("bytes=%llu seconds=%.3f gbps=%.3f\n", (unsigned long long)o.bytes,
         seconds, gbps);
  return 0;
}

/* ---- latency: small round trips on one connection ---------------------- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sends |len| bytes and reads them back, checking they match. */
static void round_trip(int fd, const uint8_t *out, uint8_t *in, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, out + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      die("send: %s", strerror(errno));
    }
    off += (size_t)w;
  }
  off = 0;
  while (off < len) {
    ssize_t r = recv(fd, in + off, len - off, 0);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      die("the echo ended after %zu of %zu bytes: %s", off, len,
          r == 0 ? "EOF" : strerror(errno));
    }
    off += (size_t)r;
  }
  if (memcmp(out, in, len) != 0) {
    die("the echo does not match what was sent");
  }
}

static int run_latency(int argc, char **argv) {
  options o;
  parse_options(argc, argv, &o, true);
  if (!o.have_bytes || o.bytes == 0 || o.bytes > (1u << 20)) {
    usage_error("%s needs --bytes B, 1 <= B <= 1M", command);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval timer;
  memset(&timer, 0, sizeof(timer));
  timer.it_value.tv_sec = (time_t)o.timeout_s;
  timer.it_value.tv_usec =
      (suseconds_t)((o.timeout_s - (double)timer.it_value.tv_sec) * 1e6);
  if (setitimer(ITIMER_REAL, &timer, NULL) != 0) {
    die("setitimer: %s", strerror(errno));
  }
  size_t len = (size_t)o.bytes, n = (size_t)o.conns;
  uint8_t *out = malloc(len), *in = malloc(len);
  uint64_t *rtt = calloc(n, sizeof(*rtt));
  if (!out || !in || !rtt) {
    die("out of memory");
  }
  prng rng;
  prng_init(&rng, random_seed());

  struct sockaddr_storage ss;
  socklen_t sslen = make_addr(o.host, o.port, &ss);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    die("socket: %s", strerror(errno));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  uint64_t start = now_ns();
  if (connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
    die("cannot connect to %s port %d: %s", o.host, o.port, strerror(errno));
  }
  for (size_t i = 0; i < n; i++) {
    prng_fill(&rng, out, len);
    uint64_t t0 = i == 0 ? start : now_ns();
    round_trip(fd, out, in, len);
    rtt[i] = now_ns() - t0;
  }
  memset(&timer, 0, sizeof(timer));
  setitimer(ITIMER_REAL, &timer, NULL);
  close(fd);
  uint64_t first = rtt[0];
  qsort(rtt, n, sizeof(*rtt), cmp_u64);
  printf("first_us=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
         (double)first / 1e3, (double)rtt[n / 2] / 1e3,
         (double)rtt[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3,
         (double)rtt[n - 1] / 1e3);
  free(out);
  free(in);
  free(rtt);
  return 0;
}

/* ---- hold --------------------------------------------------------------- */

#define HOLD_PING "ping\n"
#define HOLD_PING_LEN 5

typedef struct hold_conn {
  int fd;
  size_t got;  /* echo bytes read so far */
  bool echoed; /* the whole ping came back */
  bool closed; /* ended (EOF, reset, error) */
} hold_conn;

/* One connection's event: send the ping once connected, read its echo, and
 * notice an end. Returns true when its state changed. */
static bool hold_on_event(int epfd, hold_conn *c, uint32_t ev) {
  char buf[64];
  if (c->got == 0 && !c->echoed && (ev & EPOLLOUT)) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && !err &&
        send(c->fd, HOLD_PING, HOLD_PING_LEN, MSG_NOSIGNAL) == HOLD_PING_LEN) {
      epoll_set(epfd, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP, c);
      return false;
    }
    ev |= EPOLLERR;
  }
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c->got += (size_t)n;
      if (!c->echoed && c->got >= HOLD_PING_LEN) {
        c->echoed = true;
        return true;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR) &&
        !(ev & (EPOLLERR | EPOLLHUP))) {
      return false;
    }
    break; /* EOF, reset or error */
  }
  c->closed = true;
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  return true;
}

/* hold: N connections that each send one ping, read its echo and then stay
 * open until SIGTERM or SIGINT (or --timeout). Prints
 * "echoed=E closed=C lost=L" whenever those counts change: E echoed, C
 * ended before their echo, L ended after it. Exits 0 after a signal when no
 * connection was lost, 1 on a loss or at the timeout. */
static int run_hold(int argc, char **argv) {
  options o;
  parse_options(argc, argv, &o, true);
  if (o.have_bytes) {
    usage_error("%s takes no --bytes", command);
  }
  raise_fd_limit();

  hold_conn *conns = calloc((size_t)o.conns, sizeof(*conns));
  if (!conns) {
    die("out of memory");
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
    die("sigprocmask: %s", strerror(errno));
  }
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || epfd < 0) {
    die("signalfd or epoll_create1: %s", strerror(errno));
  }
  static int signal_mark;
  epoll_set(epfd, EPOLL_CTL_ADD, sfd, EPOLLIN, &signal_mark);

  struct sockaddr_storage ss;
  socklen_t sslen = make_addr(o.host, o.port, &ss);
  for (long i = 0; i < o.conns; i++) {
    hold_conn *c = &conns[i];
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
      die("socket (connection %ld of %ld): %s; raise the descriptor limit "
          "(ulimit -n) or use fewer --conns",
          i + 1, o.conns, strerror(errno));
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sslen) != 0 &&
        errno != EINPROGRESS) {
      close(c->fd);
      c->fd = -1;
      c->closed = true;
      continue;
    }
    epoll_set(epfd, EPOLL_CTL_ADD, c->fd, EPOLLOUT | EPOLLIN | EPOLLRDHUP, c);
  }

  long echoed = 0, closed = 0, lost = 0;
  long last_e = -1, last_c = -1, last_l = -1;
  bool stop = false, timed_out = false;
  uint64_t deadline = now_ns() + (uint64_t)(o.timeout_s * 1e9);
  struct epoll_event events[MAX_EVENTS];
  while (!stop) {
    echoed = closed = lost = 0;
    for (long i = 0; i < o.conns; i++) {
      echoed += conns[i].echoed && !conns[i].closed;
      closed += conns[i].closed && !conns[i].echoed;
      lost += conns[i].closed && conns[i].echoed;
    }
    if (echoed != last_e || closed != last_c || lost != last_l) {
      printf("echoed=%ld closed=%ld lost=%ld\n", echoed, closed, lost);
      fflush(stdout);
      last_e = echoed, last_c = closed, last_l = lost;
    }
    uint64_t now = now_ns();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    uint64_t wait_ms = (deadline - now + 999999) / 1000000;
    int n = epoll_wait(epfd, events, MAX_EVENTS,
                       wait_ms > 1000 ? 1000 : (int)wait_ms);
    if (n < 0 && errno != EINTR) {
      die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == &signal_mark) {
        stop = true;
        continue;
      }
      hold_conn *c = events[i].data.ptr;
      if (c->fd >= 0) {
        hold_on_event(epfd, c, events[i].events);
      }
    }
  }
  for (long i = 0; i < o.conns; i++) {
    if (conns[i].fd >= 0) {
      close(conns[i].fd);
    }
  }
  fprintf(stderr, "%s: hold: %s: echoed=%ld closed=%ld lost=%ld of %ld\n",
          progname, timed_out ? "timed out" : "stopped", echoed, closed, lost,
          o.conns);
  close(epfd);
  close(sfd);
  free(conns);
  return timed_out || lost ? 1 : 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  command = argv[1];
  if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(command, "echo-server") == 0) {
    return run_server(MODE_ECHO, argc - 2, argv + 2);
  }
  if (strcmp(command, "sink-server") == 0) {
    return run_server(MODE_SINK, argc - 2, argv + 2);
  }
  if (strcmp(command, "echo-check") == 0) {
    return run_echo_check(argc - 2, argv + 2);
  }
  if (strcmp(command, "send") == 0) {
    return run_send(argc - 2, argv + 2);
  }
  if (strcmp(command, "latency") == 0) {
    return run_latency(argc - 2, argv + 2);
  }
  if (strcmp(command, "hold") == 0) {
    return run_hold(argc - 2, argv + 2);
  }
  fprintf(stderr, "%s: unknown command \"%s\"\n", progname, command);
  usage(stderr);
  return 2;
}
