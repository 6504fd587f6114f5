/* The brokers' bus on a libpq connection of its own (bus_pg.h). */
#include "broker/bus_pg.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "broker/registry.h"
#include "natter.h"

#define BUS_BACKOFF_MIN_S 1
#define BUS_BACKOFF_MAX_S 30
/* PostgreSQL's limit on a NOTIFY payload is 8000 bytes. */
#define BUS_PAYLOAD_MAX 7999

static const char WHERE_SQL[] =
    "SELECT p.broker_id FROM presence p JOIN brokers b USING (broker_id) "
    "WHERE p.name = $1 AND p.broker_id <> $2 "
    /* The database's clock, as the heartbeats are written (registry_pg.c). */
    "AND b.heartbeat >= extract(epoch FROM now())::bigint - $3::bigint "
    "ORDER BY p.since DESC LIMIT 1";
static const char NOTIFY_SQL[] = "SELECT pg_notify($1, $2)";

typedef enum { BUS_DOWN, BUS_CONNECTING, BUS_LISTEN, BUS_READY } bus_state;

struct nt_bus_req {
  TAILQ_ENTRY(nt_bus_req) link;
  int where; /* a lookup; else a note */
  char name[NT_NAME_MAX + 1];
  char channel[8 + NT_BUS_CHANNEL_ID + 1];
  char *payload;
  nt_bus_where_fn fn; /* NULL: cancelled, or a note */
  void *ud;
};

TAILQ_HEAD(bus_queue, nt_bus_req);

struct nt_bus {
  struct event_base *base;
  char *conninfo;
  char self[NT_REGISTRY_BROKER_ID_MAX + 1];
  char channel[8 + NT_BUS_CHANNEL_ID + 1];
  const nt_log *log;
  nt_bus_note_fn note_fn;
  void *note_ud;
  PGconn *conn;
  bus_state state;
  int backoff_s;
  int logged_down;
  evutil_socket_t sock;
  short watching;
  struct event *sock_ev, *timer_ev, *kick_ev;
  struct bus_queue queue;
  size_t queued;
  nt_bus_req *inflight; /* sent, its result awaited */
  PGresult *result;
};

static void bus_connect(nt_bus *bus);
static void sock_cb(evutil_socket_t fd, short what, void *arg);

static void channel_of(char *out, const char *broker_id) {
  snprintf(out, 8 + NT_BUS_CHANNEL_ID + 1, "natter_%.*s", NT_BUS_CHANNEL_ID,
           broker_id);
}

static void req_free(nt_bus_req *r) {
  free(r->payload);
  free(r);
}

/* A request done: its callback, then its memory. */
static void req_done(nt_bus *bus, nt_bus_req *r, int rv, const char *id) {
  (void)bus;
  if (r->where && r->fn) {
    r->fn(rv, id, r->ud);
  }
  req_free(r);
}

static void watch(nt_bus *bus, short what) {
  evutil_socket_t fd = PQsocket(bus->conn);
  if (bus->sock_ev && fd == bus->sock && what == bus->watching) {
    return;
  }
  if (bus->sock_ev) {
    event_free(bus->sock_ev);
  }
  bus->sock = fd;
  bus->watching = what;
  bus->sock_ev = event_new(bus->base, fd, what | EV_PERSIST, sock_cb, bus);
  if (bus->sock_ev) {
    event_add(bus->sock_ev, NULL);
  }
}

static void set_timer(nt_bus *bus, int s) {
  struct timeval tv = {s, 0};
  evtimer_add(bus->timer_ev, &tv);
}

static void went_down(nt_bus *bus, const char *reason) {
  char why[300];
  size_t n = 0;
  /* |reason| may be libpq's message, gone with the connection; and it
   * ends with a newline. */
  snprintf(why, sizeof(why), "%s", reason && reason[0] ? reason : "");
  for (n = strlen(why); n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' ');) {
    why[--n] = '\0';
  }
  for (char *p = why; *p; p++) {
    *p = *p == '\n' || *p == '\t' ? ' ' : *p;
  }
  if (bus->sock_ev) {
    event_free(bus->sock_ev);
    bus->sock_ev = NULL;
  }
  PQclear(bus->result);
  bus->result = NULL;
  PQfinish(bus->conn);
  bus->conn = NULL;
  bus->sock = -1;
  if (!bus->logged_down && bus->log) {
    nt_warn(bus->log,
            "brokers' bus: %s; introductions across brokers fail until it "
            "is back",
            why[0] ? why : "connection lost");
  }
  bus->logged_down = 1;
  bus->state = BUS_DOWN;
  set_timer(bus, bus->backoff_s);
  bus->backoff_s = bus->backoff_s * 2 > BUS_BACKOFF_MAX_S ? BUS_BACKOFF_MAX_S
                                                          : bus->backoff_s * 2;
  /* Everything waiting fails: nobody knows when the database is back. */
  nt_bus_req *r = bus->inflight;
  bus->inflight = NULL;
  if (r) {
    req_done(bus, r, NATTER_ERR_REGISTRY, NULL);
  }
  while ((r = TAILQ_FIRST(&bus->queue)) != NULL) {
    TAILQ_REMOVE(&bus->queue, r, link);
    bus->queued--;
    req_done(bus, r, NATTER_ERR_REGISTRY, NULL);
  }
}

static int flush_out(nt_bus *bus) {
  int r = PQflush(bus->conn);
  if (r < 0) {
    went_down(bus, PQerrorMessage(bus->conn));
    return -1;
  }
  watch(bus, r == 1 ? EV_READ | EV_WRITE : EV_READ);
  return 0;
}

/* Sends the next request, if the connection is free. */
static void send_next(nt_bus *bus) {
  nt_bus_req *r;
  char cutoff[24];
  int ok;

  if (bus->state != BUS_READY || bus->inflight ||
      (r = TAILQ_FIRST(&bus->queue)) == NULL) {
    return;
  }
  TAILQ_REMOVE(&bus->queue, r, link);
  bus->queued--;
  bus->inflight = r;
  if (r->where) {
    snprintf(cutoff, sizeof(cutoff), "%d", NT_REGISTRY_BROKER_DEAD_S);
    const char *v[] = {r->name, bus->self, cutoff};
    ok = PQsendQueryParams(bus->conn, WHERE_SQL, 3, NULL, v, NULL, NULL, 0);
  } else {
    const char *v[] = {r->channel, r->payload};
    ok = PQsendQueryParams(bus->conn, NOTIFY_SQL, 2, NULL, v, NULL, NULL, 0);
  }
  if (!ok) {
    went_down(bus, PQerrorMessage(bus->conn));
    return;
  }
  set_timer(bus, NT_BUS_TIMEOUT_S);
  (void)flush_out(bus);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  send_next(arg);
}

/* A statement's last result: LISTEN done, or a request's answer. */
static void statement_done(nt_bus *bus, PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

  evtimer_del(bus->timer_ev);
  if (bus->state == BUS_LISTEN) {
    if (!ok) {
      char why[300];
      snprintf(why, sizeof(why), "cannot listen: %s",
               PQresultErrorMessage(res));
      went_down(bus, why);
      return;
    }
    bus->state = BUS_READY;
    bus->backoff_s = BUS_BACKOFF_MIN_S;
    if (bus->log) {
      nt_info(bus->log, "brokers' bus: listening on %s", bus->channel);
    }
    bus->logged_down = 0;
    send_next(bus);
    return;
  }
  nt_bus_req *r = bus->inflight;
  bus->inflight = NULL;
  if (r) {
    char id[NT_REGISTRY_BROKER_ID_MAX + 1] = "";
    int rv = ok ? 0 : NATTER_ERR_REGISTRY;
    if (!ok && bus->log) {
      nt_debug(bus->log, "brokers' bus: %s", PQresultErrorMessage(res));
    }
    if (ok && r->where) {
      if (PQntuples(res) == 1 && PQnfields(res) == 1) {
        snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
      } else {
        rv = NATTER_ERR_PEER_UNKNOWN;
      }
    }
    req_done(bus, r, rv, id);
  }
  send_next(bus);
}

/* Hands out the notifications libpq has parsed. */
static void deliver_notes(nt_bus *bus) {
  for (PGnotify *n; bus->conn && (n = PQnotifies(bus->conn)) != NULL;) {
    if (strcmp(n->relname, bus->channel) == 0 && n->extra) {
      bus->note_fn(n->extra, strlen(n->extra), bus->note_ud);
    }
    PQfreemem(n);
  }
}

static void read_input(nt_bus *bus) {
  if (!PQconsumeInput(bus->conn)) {
    went_down(bus, PQerrorMessage(bus->conn));
    return;
  }
  deliver_notes(bus);
  while (bus->conn && !PQisBusy(bus->conn)) {
    PGresult *r = PQgetResult(bus->conn);
    if (r) {
      PQclear(bus->result);
      bus->result = r;
      continue;
    }
    r = bus->result;
    bus->result = NULL;
    if (!r) {
      break;
    }
    statement_done(bus, r);
    PQclear(r);
  }
  /* A notification that came with a result is parsed only with it: no
   * new bytes will wake us for it. */
  deliver_notes(bus);
}

static void connect_poll(nt_bus *bus) {
  switch (PQconnectPoll(bus->conn)) {
  case PGRES_POLLING_READING:
    watch(bus, EV_READ);
    return;
  case PGRES_POLLING_WRITING:
    watch(bus, EV_WRITE);
    return;
  case PGRES_POLLING_OK: {
    char sql[64 + sizeof(bus->channel)];
    if (PQsetnonblocking(bus->conn, 1) != 0) {
      went_down(bus, PQerrorMessage(bus->conn));
      return;
    }
    /* The channel is "natter_" and hex digits: nothing to quote. A
     * note is not kept across a crash of the server anyway (nor is a
     * LISTEN), so its commit need not wait for the WAL to reach the disk:
     * NOTIFY commits one at a time cluster-wide (PostgreSQL holds a
     * global lock from the queueing to the commit's end), so a commit
     * that waits for fsync caps all brokers' notes at one per fsync. */
    snprintf(sql, sizeof(sql), "SET synchronous_commit = off; LISTEN \"%s\"",
             bus->channel);
    bus->state = BUS_LISTEN;
    if (!PQsendQuery(bus->conn, sql)) {
      went_down(bus, PQerrorMessage(bus->conn));
      return;
    }
    set_timer(bus, NT_BUS_TIMEOUT_S);
    (void)flush_out(bus);
    return;
  }
  default:
    went_down(bus, PQerrorMessage(bus->conn));
    return;
  }
}

static void sock_cb(evutil_socket_t fd, short what, void *arg) {
  nt_bus *bus = arg;
  (void)fd;
  if (bus->state == BUS_CONNECTING) {
    connect_poll(bus);
    return;
  }
  if ((what & EV_WRITE) && flush_out(bus) != 0) {
    return;
  }
  if (what & EV_READ) {
    read_input(bus);
  }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_bus *bus = arg;
  (void)fd;
  (void)what;
  if (bus->state == BUS_DOWN) {
    bus_connect(bus);
  } else {
    went_down(bus, bus->state == BUS_READY ? "a statement took too long"
                                           : "connecting took too long");
  }
}

/* The registry's connection string with its application_name (if any)
 * followed by " bus", so that pg_stat_activity tells the two apart. */
static void bus_connect(nt_bus *bus) {
  const char *const keys[] = {"dbname", "application_name", NULL};
  char app[64] = "natter bus";
  PQconninfoOption *opts = PQconninfoParse(bus->conninfo, NULL);
  for (PQconninfoOption *o = opts; o && o->keyword; o++) {
    if (strcmp(o->keyword, "application_name") == 0 && o->val && o->val[0]) {
      snprintf(app, sizeof(app), "%.48s bus", o->val);
    }
  }
  PQconninfoFree(opts);
  const char *const values[] = {bus->conninfo, app, NULL};
  bus->conn = PQconnectStartParams(keys, values, 1);
  if (!bus->conn || PQstatus(bus->conn) == CONNECTION_BAD) {
    went_down(bus, bus->conn ? PQerrorMessage(bus->conn) : "out of memory");
    return;
  }
  bus->state = BUS_CONNECTING;
  set_timer(bus, NT_BUS_TIMEOUT_S);
  watch(bus, EV_WRITE);
}

int nt_bus_new(nt_bus **out, struct event_base *base, const char *conninfo,
               const char *self_id, const nt_log *log, nt_bus_note_fn fn,
               void *ud) {
  nt_bus *bus;
  *out = NULL;
  if (!conninfo || !self_id || !self_id[0] ||
      strlen(self_id) > NT_REGISTRY_BROKER_ID_MAX || !fn) {
    return NATTER_ERR_INVALID;
  }
  if ((bus = calloc(1, sizeof(*bus))) == NULL ||
      (bus->conninfo = strdup(conninfo)) == NULL) {
    free(bus);
    return NATTER_ERR_NOMEM;
  }
  bus->base = base;
  snprintf(bus->self, sizeof(bus->self), "%s", self_id);
  channel_of(bus->channel, self_id);
  bus->log = log;
  bus->note_fn = fn;
  bus->note_ud = ud;
  bus->sock = -1;
  bus->backoff_s = BUS_BACKOFF_MIN_S;
  TAILQ_INIT(&bus->queue);
  bus->timer_ev = evtimer_new(base, timer_cb, bus);
  bus->kick_ev = event_new(base, -1, 0, kick_cb, bus);
  if (!bus->timer_ev || !bus->kick_ev) {
    nt_bus_free(bus);
    return NATTER_ERR_NOMEM;
  }
  bus->state = BUS_DOWN;
  set_timer(bus, 0); /* connects from the loop */
  *out = bus;
  return 0;
}

void nt_bus_free(nt_bus *bus) {
  nt_bus_req *r;
  if (!bus) {
    return;
  }
  if (bus->sock_ev) {
    event_free(bus->sock_ev);
  }
  if (bus->timer_ev) {
    event_free(bus->timer_ev);
  }
  if (bus->kick_ev) {
    event_free(bus->kick_ev);
  }
  PQclear(bus->result);
  PQfinish(bus->conn);
  if (bus->inflight) {
    req_free(bus->inflight);
  }
  while ((r = TAILQ_FIRST(&bus->queue)) != NULL) {
    TAILQ_REMOVE(&bus->queue, r, link);
    req_free(r);
  }
  free(bus->conninfo);
  free(bus);
}

static int enqueue(nt_bus *bus, nt_bus_req *r) {
  if (bus->state == BUS_DOWN || bus->queued >= NT_BUS_QUEUE_MAX) {
    req_free(r);
    return NATTER_ERR_REGISTRY;
  }
  TAILQ_INSERT_TAIL(&bus->queue, r, link);
  bus->queued++;
  event_active(bus->kick_ev, EV_TIMEOUT, 0);
  return 0;
}

int nt_bus_where(nt_bus *bus, const char *name, nt_bus_where_fn fn, void *ud,
                 nt_bus_req **preq) {
  nt_bus_req *r;
  if (!name || strlen(name) > NT_NAME_MAX || !fn) {
    return NATTER_ERR_INVALID;
  }
  if ((r = calloc(1, sizeof(*r))) == NULL) {
    return NATTER_ERR_NOMEM;
  }
  r->where = 1;
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->fn = fn;
  r->ud = ud;
  int rv = enqueue(bus, r);
  if (rv == 0 && preq) {
    *preq = r;
  }
  return rv;
}

void nt_bus_cancel(nt_bus *bus, nt_bus_req *req) {
  if (!req) {
    return;
  }
  if (req == bus->inflight) {
    req->fn = NULL; /* its answer comes, and goes nowhere */
    return;
  }
  TAILQ_REMOVE(&bus->queue, req, link);
  bus->queued--;
  req_free(req);
}

int nt_bus_send(nt_bus *bus, const char *broker_id, const char *payload) {
  nt_bus_req *r;
  if (!broker_id || !broker_id[0] || !payload ||
      strlen(payload) > BUS_PAYLOAD_MAX) {
    return NATTER_ERR_INVALID;
  }
  if ((r = calloc(1, sizeof(*r))) == NULL ||
      (r->payload = strdup(payload)) == NULL) {
    free(r);
    return NATTER_ERR_NOMEM;
  }
  channel_of(r->channel, broker_id);
  return enqueue(bus, r);
}
