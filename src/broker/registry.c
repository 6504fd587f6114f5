/* The backend-independent half of the registry: argument checks, the
 * request queue that makes every storage call complete from the loop, and
 * the in-memory batch of last-seen updates (see registry.h). */
#include "broker/registry.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "base/hashmap.h"
#include "base/textfile.h"
#include "natter.h"

/* Requests run per turn of the loop before it polls again, so that a
 * long queue does not hold back the broker's sockets. */
#define RUN_PER_TURN 32

typedef enum {
  OP_LOOKUP,
  OP_BIND,
  OP_RELEASE,
  OP_FLUSH,
  OP_EXPIRE,
  OP_LIST,
  OP_COUNT /* internal: the count behind nt_registry_names */
} op_kind;

struct nt_registry_request {
  TAILQ_ENTRY(nt_registry_request) link;
  nt_registry *reg;
  op_kind kind;
  char name[NT_NAME_MAX + 1];
  uint8_t fingerprint[NT_FINGERPRINT_LEN];
  int64_t now, max_idle_s;
  unsigned flags;
  nt_registry_list_fn list_fn;
  void *list_user_data;
  nt_registry_done_fn done; /* NULL: nobody waits (a flush) */
  void *user_data;
  uint64_t busy_since_ms; /* first found the store locked; 0: never */
};

TAILQ_HEAD(request_queue, nt_registry_request);

typedef struct pending_touch {
  int64_t last_seen;
  char name[NT_NAME_MAX + 1]; /* the key in nt_registry.pending */
} pending_touch;

struct nt_registry {
  const nt_registry_ops *ops;
  void *impl;
  struct event *run_ev; /* zero-timeout timer: runs the queue */
  struct request_queue queue;
  size_t nqueued;
  nt_registry_request *auto_flush; /* queued by a touch at the threshold */
  /* Name -> pending_touch. Names come from clients: a keyed hash, so
   * that chosen names do not collide. */
  nt_hashmap pending;
  /* An asynchronous backend: the request it works on (the queue's first,
   * NULL once cancelled) and the touches it writes, which leave |pending|
   * when it succeeds unless touched again meanwhile. */
  int busy;
  nt_registry_request *inflight;
  nt_registry_seen *sent;
  size_t nsent;
  /* nt_registry_names: the count, whether one came, when the last count
   * request was queued, and the one queued now (NULL: none). */
  size_t names;
  int names_known;
  uint64_t names_asked_ms;
  nt_registry_request *counting;
};

static int check_name(const char *name, char *err, size_t errlen) {
  if (name == NULL || !nt_name_valid(name)) {
    nt_textfile_set_err(err, errlen,
                        "invalid name: use 1 to %d of A-Z a-z 0-9 . _ -",
                        NT_NAME_MAX);
    return NATTER_ERR_INVALID;
  }
  return 0;
}

/* ---- pending touches ---- */

static void pending_remove(nt_registry *reg, const char *name) {
  free(nt_hashmap_remove(&reg->pending, name, strlen(name)));
}

static void pending_clear(nt_registry *reg) {
  for (size_t i = 0; i < reg->pending.capacity; i++) {
    if (reg->pending.slots[i].key) {
      free(reg->pending.slots[i].value);
    }
  }
  nt_hashmap_clear(&reg->pending);
}

static void apply_pending(nt_registry *reg, nt_registry_entry *entry) {
  pending_touch *t =
      nt_hashmap_get(&reg->pending, entry->name, strlen(entry->name));

  if (t != NULL && t->last_seen > entry->last_seen) {
    entry->last_seen = t->last_seen;
  }
}

/* The pending touches as an array: *out is NULL when there are none.
 * Names point into |pending|, or with |copy| into the array's own block
 * (for a write that outlives this turn, while entries may go). */
static int collect_pending(nt_registry *reg, int copy, nt_registry_seen **out,
                           size_t *nout, char *err, size_t errlen) {
  size_t n = 0, count = nt_hashmap_count(&reg->pending);
  nt_registry_seen *touches;
  char *names;

  *out = NULL;
  *nout = 0;
  if (count == 0) {
    return 0;
  }
  touches = malloc(count * (sizeof(*touches) + (copy ? NT_NAME_MAX + 1 : 0)));
  if (touches == NULL) {
    nt_textfile_set_err(err, errlen,
                        "cannot write last-seen times: out of memory");
    return NATTER_ERR_NOMEM;
  }
  names = (char *)(touches + count);
  for (size_t i = 0; i < reg->pending.capacity; i++) {
    pending_touch *t = reg->pending.slots[i].value;
    if (reg->pending.slots[i].key) {
      touches[n].name = t->name;
      if (copy) {
        char *name = names + n * (NT_NAME_MAX + 1);
        memcpy(name, t->name, strlen(t->name) + 1);
        touches[n].name = name;
      }
      touches[n].last_seen = t->last_seen;
      n++;
    }
  }
  *out = touches;
  *nout = n;
  return 0;
}

/* Writes every pending touch in one transaction; they stay pending on
 * failure. */
static int flush_pending(nt_registry *reg, char *err, size_t errlen) {
  nt_registry_seen *touches;
  size_t n;
  int rv = collect_pending(reg, 0, &touches, &n, err, errlen);

  if (rv != 0 || n == 0) {
    return rv;
  }
  rv = reg->ops->touch_many(reg->impl, touches, n, err, errlen);
  free(touches);
  if (rv == 0) {
    pending_clear(reg);
  }
  return rv;
}

/* ---- the queue ---- */

static void schedule(nt_registry *reg) {
  static const struct timeval now = {0, 0};

  /* A timer, not event_active: active events run again within the same
   * turn, timers only after the loop has polled its sockets. */
  evtimer_add(reg->run_ev, &now);
}

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The store was locked by another process: the queue waits (its order is
 * the contract) while the loop serves everything else. */
static void schedule_retry(nt_registry *reg, uint64_t waited_ms) {
  /* Quick at first (an operator's -release takes milliseconds), then
   * every NT_REGISTRY_BUSY_RETRY_MS. */
  uint64_t ms = waited_ms < 10 ? 2 : NT_REGISTRY_BUSY_RETRY_MS;
  struct timeval tv = {0, (long)(ms * 1000)};

  evtimer_add(reg->run_ev, &tv);
}

static int queue_request(nt_registry *reg, op_kind kind, const char *name,
                         nt_registry_done_fn done, void *user_data,
                         nt_registry_request **preq, nt_registry_request **out,
                         char *err, size_t errlen) {
  nt_registry_request *req;

  if (preq != NULL) {
    *preq = NULL;
  }
  if (reg->nqueued >= NT_REGISTRY_MAX_OUTSTANDING) {
    nt_textfile_set_err(err, errlen,
                        "too many registry requests waiting (%d, the "
                        "limit): its storage is slow or stuck",
                        NT_REGISTRY_MAX_OUTSTANDING);
    return NATTER_ERR_REGISTRY;
  }
  req = calloc(1, sizeof(*req));
  if (req == NULL) {
    nt_textfile_set_err(err, errlen, "registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  req->reg = reg;
  req->kind = kind;
  if (name != NULL) {
    memcpy(req->name, name, strlen(name) + 1);
  }
  req->done = done;
  req->user_data = user_data;
  TAILQ_INSERT_TAIL(&reg->queue, req, link);
  reg->nqueued++;
  schedule(reg);
  if (preq != NULL) {
    *preq = req;
  }
  *out = req;
  return 0;
}

static void unlink_request(nt_registry_request *req) {
  nt_registry *reg = req->reg;

  TAILQ_REMOVE(&reg->queue, req, link);
  reg->nqueued--;
  if (reg->auto_flush == req) {
    reg->auto_flush = NULL;
  }
  if (reg->counting == req) {
    reg->counting = NULL;
  }
}

/* What a request that succeeded does to the count of names: requests
 * run in queue order, so a change after the count's request adds to
 * what it found. */
static void count_names(nt_registry *reg, const nt_registry_request *req,
                        const nt_registry_result *res) {
  if (res->rv != 0) {
    return;
  }
  switch (req->kind) {
  case OP_COUNT:
    reg->names = res->count;
    reg->names_known = 1;
    break;
  case OP_BIND:
    reg->names += res->created != 0;
    break;
  case OP_RELEASE:
    reg->names -= reg->names > 0;
    break;
  case OP_EXPIRE:
    reg->names -= res->removed < reg->names ? res->removed : reg->names;
    break;
  default:
    break;
  }
}

void nt_registry_cancel(nt_registry_request *req) {
  if (req != NULL) {
    if (req->reg->inflight == req) {
      /* The backend finishes it; its answer goes nowhere. */
      req->reg->inflight = NULL;
    }
    unlink_request(req);
    free(req);
  }
}

size_t nt_registry_outstanding(const nt_registry *reg) {
  return reg->nqueued;
}

/* ---- what each request does, from the loop ---- */

static int run_bind(nt_registry *reg, const nt_registry_request *req,
                    nt_registry_result *res, char *err, size_t errlen) {
  nt_registry_entry entry;
  int rv = reg->ops->lookup(reg->impl, req->name, &entry, err, errlen);

  if (rv == NATTER_ERR_PEER_UNKNOWN) {
    if (req->flags & NT_REGISTRY_BIND_EXISTING) {
      return rv; /* err: "name ... is not bound" */
    }
    rv = reg->ops->insert(reg->impl, req->name, req->fingerprint, req->now, err,
                          errlen);
    res->created = rv == 0;
    if (rv != NATTER_ERR_NAME_TAKEN) {
      return rv;
    }
    /* Bound meanwhile by another process sharing the store: decide on
     * what it wrote. */
    rv = reg->ops->lookup(reg->impl, req->name, &entry, err, errlen);
  }
  if (rv != 0) {
    return rv;
  }
  /* Fingerprints are public; no constant-time compare needed. */
  if (memcmp(entry.fingerprint, req->fingerprint, NT_FINGERPRINT_LEN) != 0) {
    res->entry = entry;
    if (!(req->flags & NT_REGISTRY_BIND_TAKEOVER)) {
      nt_textfile_set_err(err, errlen, "name %s is bound to another key",
                          req->name);
      return NATTER_ERR_NAME_TAKEN;
    }
    rv = reg->ops->release(reg->impl, req->name, err, errlen);
    if (rv != 0 && rv != NATTER_ERR_PEER_UNKNOWN) {
      return rv;
    }
    pending_remove(reg, req->name);
    rv = reg->ops->insert(reg->impl, req->name, req->fingerprint, req->now, err,
                          errlen);
    res->replaced = rv == 0;
    return rv;
  }
  /* Bound to this key already: a touch, in memory. Last-seen times are
   * advisory: one that cannot be recorded refuses no one. */
  (void)nt_registry_touch(reg, req->name, req->now, NULL, 0);
  return 0;
}

typedef struct list_ctx {
  nt_registry *reg;
  nt_registry_list_fn fn;
  void *user_data;
} list_ctx;

static int list_one(const nt_registry_entry *stored, void *user_data) {
  list_ctx *ctx = user_data;
  nt_registry_entry entry = *stored;

  apply_pending(ctx->reg, &entry);
  return ctx->fn(&entry, ctx->user_data);
}

static int run_request(nt_registry *reg, const nt_registry_request *req,
                       nt_registry_result *res, char *err, size_t errlen) {
  int rv;

  switch (req->kind) {
  case OP_LOOKUP:
    rv = reg->ops->lookup(reg->impl, req->name, &res->entry, err, errlen);
    if (rv == 0) {
      apply_pending(reg, &res->entry);
    }
    return rv;
  case OP_BIND:
    return run_bind(reg, req, res, err, errlen);
  case OP_RELEASE:
    pending_remove(reg, req->name);
    return reg->ops->release(reg->impl, req->name, err, errlen);
  case OP_FLUSH:
    return flush_pending(reg, err, errlen);
  case OP_EXPIRE:
    if (req->max_idle_s <= 0) {
      return 0;
    }
    /* Pending touches first: a name seen a moment ago must not expire on
     * an old stored time. */
    rv = flush_pending(reg, err, errlen);
    if (rv == 0) {
      rv = reg->ops->expire(reg->impl, req->now - req->max_idle_s,
                            NT_REGISTRY_EXPIRE_BATCH, &res->removed, err,
                            errlen);
    }
    return rv;
  case OP_LIST: {
    list_ctx ctx = {reg, req->list_fn, req->list_user_data};
    return reg->ops->list(reg->impl, list_one, &ctx, err, errlen);
  }
  case OP_COUNT:
    return reg->ops->count(reg->impl, &res->count, err, errlen);
  }
  return NATTER_ERR_INVALID;
}

/* ---- an asynchronous backend ---- */

/* A listing's rows, while its request is still wanted. */
static int async_list_one(const nt_registry_entry *stored, void *user_data) {
  nt_registry *reg = user_data;
  nt_registry_request *req = reg->inflight;
  nt_registry_entry entry = *stored;

  if (req == NULL) {
    return 1; /* cancelled: stop */
  }
  apply_pending(reg, &entry);
  return req->list_fn(&entry, req->list_user_data);
}

/* The touches written by a successful flush leave |pending|, unless seen
 * again since. */
static void forget_sent(nt_registry *reg, int written) {
  for (size_t i = 0; written && i < reg->nsent; i++) {
    const char *name = reg->sent[i].name; /* a copy: collect_pending */
    pending_touch *t = nt_hashmap_get(&reg->pending, name, strlen(name));
    if (t != NULL && t->last_seen <= reg->sent[i].last_seen) {
      pending_remove(reg, name);
    }
  }
  free(reg->sent);
  reg->sent = NULL;
  reg->nsent = 0;
}

static void async_done(nt_registry_result *res, void *arg) {
  nt_registry *reg = arg;
  nt_registry_request *req = reg->inflight;

  reg->busy = 0;
  reg->inflight = NULL;
  forget_sent(reg, res->rv == 0);
  if (req != NULL) {
    if (req->kind == OP_BIND && res->rv == 0) {
      if (res->replaced) {
        pending_remove(reg, req->name);
      } else if (!res->created) {
        /* Bound to this key already: a touch, in memory. */
        (void)nt_registry_touch(reg, req->name, req->now, NULL, 0);
      }
    } else if (req->kind == OP_LOOKUP && res->rv == 0) {
      apply_pending(reg, &res->entry);
    }
    count_names(reg, req, res);
    unlink_request(req);
    if (res->rv == 0) {
      res->err = "";
    }
    if (req->done != NULL) {
      req->done(res, req->user_data);
    }
    free(req);
  }
  if (!TAILQ_EMPTY(&reg->queue)) {
    schedule(reg);
  }
}

/* Hands the queue's first request to the backend; 0 when it started. */
static int async_start(nt_registry *reg, nt_registry_request *req, char *err,
                       size_t errlen) {
  nt_registry_call call;
  int rv = 0;

  memset(&call, 0, sizeof(call));
  call.name = req->name;
  call.fingerprint = req->fingerprint;
  call.now = req->now;
  call.flags = req->flags;
  switch (req->kind) {
  case OP_LOOKUP:
    call.kind = NT_REGISTRY_CALL_LOOKUP;
    break;
  case OP_BIND:
    call.kind = NT_REGISTRY_CALL_BIND;
    break;
  case OP_RELEASE:
    call.kind = NT_REGISTRY_CALL_RELEASE;
    pending_remove(reg, req->name);
    break;
  case OP_FLUSH:
  case OP_EXPIRE:
    call.kind = req->kind == OP_FLUSH ? NT_REGISTRY_CALL_FLUSH
                                      : NT_REGISTRY_CALL_EXPIRE;
    call.cutoff = req->now - req->max_idle_s;
    call.limit = NT_REGISTRY_EXPIRE_BATCH;
    rv = collect_pending(reg, 1, &reg->sent, &reg->nsent, err, errlen);
    call.touches = reg->sent;
    call.ntouches = reg->nsent;
    break;
  case OP_LIST:
    call.kind = NT_REGISTRY_CALL_LIST;
    call.list_fn = async_list_one;
    call.list_user_data = reg;
    break;
  case OP_COUNT:
    call.kind = NT_REGISTRY_CALL_COUNT;
    break;
  }
  if (rv == 0) {
    reg->busy = 1;
    reg->inflight = req;
    rv = reg->ops->async->start(reg->impl, &call, async_done, reg, err, errlen);
    if (rv != 0) {
      reg->busy = 0;
      reg->inflight = NULL;
    }
  }
  if (rv != 0) {
    forget_sent(reg, 0);
  }
  return rv;
}

static void run_async(nt_registry *reg) {
  while (!reg->busy && !TAILQ_EMPTY(&reg->queue)) {
    nt_registry_request *req = TAILQ_FIRST(&reg->queue);
    nt_registry_result res;
    char err[512] = "";
    int noop = req->kind == OP_EXPIRE && req->max_idle_s <= 0;
    int rv = noop ? 0 : async_start(reg, req, err, sizeof(err));

    if (noop || rv != 0) {
      /* Done at once: nothing to do, or the backend could not start it
       * (the store is unreachable). */
      memset(&res, 0, sizeof(res));
      res.rv = rv;
      res.err = rv != 0 ? err : "";
      unlink_request(req);
      if (req->done != NULL) {
        req->done(&res, req->user_data);
      }
      free(req);
      continue;
    }
    return;
  }
}

static void run_cb(evutil_socket_t fd, short what, void *arg) {
  nt_registry *reg = arg;
  (void)fd;
  (void)what;

  if (reg->ops->async != NULL) {
    run_async(reg);
    return;
  }
  for (int i = 0; i < RUN_PER_TURN && !TAILQ_EMPTY(&reg->queue); i++) {
    nt_registry_request *req = TAILQ_FIRST(&reg->queue);
    nt_registry_result res;
    char err[512] = "";

    memset(&res, 0, sizeof(res));
    res.rv = run_request(reg, req, &res, err, sizeof(err));
    if (res.rv == NT_REGISTRY_ERR_BUSY) {
      uint64_t now = monotonic_ms();
      if (req->busy_since_ms == 0) {
        req->busy_since_ms = now;
      }
      if (now - req->busy_since_ms < NT_REGISTRY_BUSY_WAIT_MS) {
        /* Still first in the queue, still cancellable. */
        schedule_retry(reg, now - req->busy_since_ms);
        return;
      }
      res.rv = NATTER_ERR_REGISTRY; /* err says the lock is held */
    }
    count_names(reg, req, &res);
    /* Out of the queue before the callback: from here it owns the
     * moment, and may queue or cancel others. */
    unlink_request(req);
    res.err = res.rv != 0 ? err : "";
    if (req->done != NULL) {
      req->done(&res, req->user_data);
    }
    free(req);
  }
  if (!TAILQ_EMPTY(&reg->queue)) {
    schedule(reg);
  }
}

/* ---- open and close ---- */

int nt_registry_open(nt_registry **preg, struct event_base *base,
                     const char *location, char *err, size_t errlen) {
  uint8_t seed[NT_HASHMAP_SEED_LEN];
  const nt_registry_ops *ops;
  const char *where;
  nt_registry *reg;
  int rv;

  *preg = NULL;
  rv = nt_registry_parse_location(location, &ops, &where, err, errlen);
  if (rv != 0) {
    return rv;
  }
  if (base == NULL) {
    nt_textfile_set_err(err, errlen, "registry: no event loop");
    return NATTER_ERR_INVALID;
  }
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    nt_textfile_set_err(err, errlen, "cannot open registry: no randomness");
    return NATTER_ERR_REGISTRY;
  }
  reg = calloc(1, sizeof(*reg));
  if (reg == NULL || (reg->run_ev = evtimer_new(base, run_cb, reg)) == NULL) {
    free(reg);
    nt_textfile_set_err(err, errlen, "cannot open registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  reg->ops = ops;
  TAILQ_INIT(&reg->queue);
  nt_hashmap_init(&reg->pending, seed);
  rv = reg->ops->async != NULL
           ? reg->ops->async->open(&reg->impl, base, where, err, errlen)
           : reg->ops->open(&reg->impl, where, err, errlen);
  if (rv != 0) {
    event_free(reg->run_ev);
    free(reg);
    return rv;
  }
  *preg = reg;
  return 0;
}

int nt_registry_names(nt_registry *reg, size_t *n) {
  uint64_t now = monotonic_ms();
  nt_registry_request *req;

  if (reg->counting == NULL &&
      (reg->ops->async != NULL || reg->ops->count != NULL) &&
      (reg->names_asked_ms == 0 ||
       now - reg->names_asked_ms >= NT_REGISTRY_COUNT_REFRESH_S * 1000ull) &&
      queue_request(reg, OP_COUNT, NULL, NULL, NULL, NULL, &req, NULL, 0) ==
          0) {
    /* Out of memory or a full queue: asked again at the next call. */
    reg->counting = req;
    reg->names_asked_ms = now ? now : 1;
  }
  *n = reg->names;
  return reg->names_known ? 0 : -1;
}

void nt_registry_close(nt_registry *reg) {
  if (reg == NULL) {
    return;
  }
  while (!TAILQ_EMPTY(&reg->queue)) {
    nt_registry_cancel(TAILQ_FIRST(&reg->queue));
  }
  if (reg->ops->async != NULL) {
    nt_registry_seen *touches = NULL;
    size_t n = 0;
    (void)collect_pending(reg, 0, &touches, &n, NULL, 0);
    reg->ops->async->close(reg->impl, touches, n);
    free(touches);
    forget_sent(reg, 0);
  } else {
    (void)flush_pending(reg, NULL, 0);
    reg->ops->close(reg->impl);
  }
  pending_clear(reg);
  event_free(reg->run_ev);
  free(reg);
}

const char *nt_registry_backend(const nt_registry *reg) {
  return reg->ops->name;
}

void nt_registry_set_log(nt_registry *reg, const struct nt_log *log) {
  if (reg->ops->async != NULL) {
    reg->ops->async->set_log(reg->impl, log);
  }
}

void nt_registry_set_broker(nt_registry *reg, const char *broker_id) {
  if (reg->ops->async != NULL) {
    reg->ops->async->set_broker(reg->impl, broker_id);
  }
}

void nt_registry_presence(nt_registry *reg, const char *name,
                          const uint8_t *fingerprint, int64_t since,
                          int present) {
  if (reg->ops->async != NULL && name != NULL && nt_name_valid(name)) {
    reg->ops->async->presence(reg->impl, name, fingerprint, since, present);
  }
}

void nt_registry_describe(const nt_registry *reg, char *buf, size_t len) {
  if (len > 0) {
    buf[0] = '\0';
  }
  if (reg->ops->async != NULL) {
    reg->ops->async->describe(reg->impl, buf, len);
  }
}

/* ---- the requests ---- */

/* What every request on a name checks first: |name| is valid, and *preq
 * reads NULL also when nothing gets queued. */
static int check_named_request(const char *name, nt_registry_request **preq,
                               char *err, size_t errlen) {
  if (preq != NULL) {
    *preq = NULL;
  }
  return check_name(name, err, errlen);
}

int nt_registry_lookup(nt_registry *reg, const char *name,
                       nt_registry_done_fn done, void *user_data,
                       nt_registry_request **preq, char *err, size_t errlen) {
  nt_registry_request *req;
  int rv = check_named_request(name, preq, err, errlen);

  if (rv == 0 && done == NULL) {
    nt_textfile_set_err(err, errlen, "registry lookup: no callback");
    rv = NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    return rv;
  }
  return queue_request(reg, OP_LOOKUP, name, done, user_data, preq, &req, err,
                       errlen);
}

int nt_registry_bind(nt_registry *reg, const char *name,
                     const uint8_t *fingerprint, int64_t now, unsigned flags,
                     nt_registry_done_fn done, void *user_data,
                     nt_registry_request **preq, char *err, size_t errlen) {
  nt_registry_request *req;
  int rv = check_named_request(name, preq, err, errlen);

  if (rv != 0) {
    return rv;
  }
  if (fingerprint == NULL || done == NULL) {
    nt_textfile_set_err(err, errlen, "cannot bind %s: %s", name,
                        fingerprint ? "no callback" : "no key fingerprint");
    return NATTER_ERR_INVALID;
  }
  rv = queue_request(reg, OP_BIND, name, done, user_data, preq, &req, err,
                     errlen);
  if (rv == 0) {
    memcpy(req->fingerprint, fingerprint, NT_FINGERPRINT_LEN);
    req->now = now;
    req->flags = flags;
  }
  return rv;
}

int nt_registry_release(nt_registry *reg, const char *name,
                        nt_registry_done_fn done, void *user_data,
                        nt_registry_request **preq, char *err, size_t errlen) {
  nt_registry_request *req;
  int rv = check_named_request(name, preq, err, errlen);

  if (rv != 0) {
    return rv;
  }
  return queue_request(reg, OP_RELEASE, name, done, user_data, preq, &req, err,
                       errlen);
}

int nt_registry_flush(nt_registry *reg, nt_registry_done_fn done,
                      void *user_data, nt_registry_request **preq, char *err,
                      size_t errlen) {
  nt_registry_request *req;

  return queue_request(reg, OP_FLUSH, NULL, done, user_data, preq, &req, err,
                       errlen);
}

int nt_registry_expire(nt_registry *reg, int64_t now, int64_t max_idle_s,
                       nt_registry_done_fn done, void *user_data,
                       nt_registry_request **preq, char *err, size_t errlen) {
  nt_registry_request *req;
  int rv = queue_request(reg, OP_EXPIRE, NULL, done, user_data, preq, &req, err,
                         errlen);

  if (rv == 0) {
    req->now = now;
    req->max_idle_s = max_idle_s;
  }
  return rv;
}

int nt_registry_list(nt_registry *reg, nt_registry_list_fn fn,
                     void *list_user_data, nt_registry_done_fn done,
                     void *user_data, nt_registry_request **preq, char *err,
                     size_t errlen) {
  nt_registry_request *req;
  int rv;

  if (preq != NULL) {
    *preq = NULL; /* also when nothing is queued */
  }
  if (fn == NULL) {
    nt_textfile_set_err(err, errlen, "registry listing: no callback");
    return NATTER_ERR_INVALID;
  }
  rv = queue_request(reg, OP_LIST, NULL, done, user_data, preq, &req, err,
                     errlen);
  if (rv == 0) {
    req->list_fn = fn;
    req->list_user_data = list_user_data;
  }
  return rv;
}

int nt_registry_touch(nt_registry *reg, const char *name, int64_t now,
                      char *err, size_t errlen) {
  pending_touch *t;
  nt_registry_request *req;
  int rv = check_name(name, err, errlen);

  if (rv != 0) {
    return rv;
  }
  t = nt_hashmap_get(&reg->pending, name, strlen(name));
  if (t != NULL) {
    if (now > t->last_seen) {
      t->last_seen = now;
    }
    return 0;
  }
  if (nt_hashmap_count(&reg->pending) >= NT_REGISTRY_MAX_NAMES) {
    nt_textfile_set_err(err, errlen,
                        "cannot record last-seen time of %s: %d times wait "
                        "to be written already",
                        name, NT_REGISTRY_MAX_NAMES);
    return NATTER_ERR_REGISTRY;
  }
  t = calloc(1, sizeof(*t));
  if (t != NULL) {
    memcpy(t->name, name, strlen(name) + 1);
    t->last_seen = now;
    if (nt_hashmap_put(&reg->pending, t->name, strlen(t->name), t) != 0) {
      free(t);
      t = NULL;
    }
  }
  if (t == NULL) {
    nt_textfile_set_err(
        err, errlen, "cannot record last-seen time of %s: out of memory", name);
    return NATTER_ERR_NOMEM;
  }
  /* Enough for one transaction: write them soon rather than at the next
   * timer. A full queue only postpones it to the next touch. */
  if (nt_hashmap_count(&reg->pending) >= NT_REGISTRY_MAX_PENDING &&
      reg->auto_flush == NULL &&
      queue_request(reg, OP_FLUSH, NULL, NULL, NULL, NULL, &req, NULL, 0) ==
          0) {
    reg->auto_flush = req;
  }
  return 0;
}

size_t nt_registry_pending(const nt_registry *reg) {
  return nt_hashmap_count(&reg->pending);
}
