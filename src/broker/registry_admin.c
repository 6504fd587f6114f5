/* The registry for operators: natter_registry_list and _release (natter.h)
 * on a broker's registry, from another process while the broker runs
 * (SQLite's locking keeps both consistent; the broker sees a release at its
 * next lookup). The registry completes requests from an event loop: each
 * call here runs a private one until its request is done. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/paths.h"
#include "base/textfile.h"
#include "broker/registry.h"
#include "natter.h"
#include "trust/tls.h"

/* Opens the existing registry at |location| (NULL: the default file) on
 * |base|. Listing or releasing never creates a registry: a wrong path
 * must say so, and an in-memory one exists only inside its broker. */
static int open_existing(nt_registry **preg, struct event_base *base,
                         const char *location, char *err, size_t errlen) {
  char def[1024];
  const nt_registry_ops *ops;
  const char *path;
  struct stat st;
  int rv;

  *preg = NULL;
  if (!location) {
    if (nt_default_registry_path(def, sizeof(def)) != 0) {
      nt_textfile_set_err(err, errlen,
                          "no default registry path (set HOME or "
                          "STATE_DIRECTORY, or give -registry FILE)");
      return NATTER_ERR_INVALID;
    }
    location = def;
  }
  rv = nt_registry_parse_location(location, &ops, &path, err, errlen);
  if (rv != 0) {
    return rv;
  }
  if (ops == &nt_registry_pg_ops) {
    /* A database the brokers share: an unreachable one fails the
     * request with the reason. */
    return nt_registry_open(preg, base, location, err, errlen);
  }
  if (ops != &nt_registry_sqlite_ops) {
    nt_textfile_set_err(err, errlen,
                        "registry %s lives inside its broker's process: "
                        "there is nothing to list or release from here",
                        location);
    return NATTER_ERR_INVALID;
  }
  if (stat(path, &st) != 0) {
    nt_textfile_set_err(err, errlen, "registry %s: %s", path,
                        errno == ENOENT ? "no such file (no broker has used "
                                          "it yet, or another -registry)"
                                        : strerror(errno));
    return NATTER_ERR_REGISTRY;
  }
  return nt_registry_open(preg, base, location, err, errlen);
}

/* One request at a time, run to its end on a private loop. */
typedef struct admin_call {
  int done;
  int rv;
  char *err;
  size_t errlen;
} admin_call;

static void admin_done(const nt_registry_result *res, void *ud) {
  admin_call *call = ud;

  call->done = 1;
  call->rv = res->rv;
  if (res->rv != 0) {
    nt_textfile_set_err(call->err, call->errlen, "%s", res->err);
  }
}

static int admin_wait(struct event_base *base, admin_call *call) {
  while (!call->done) {
    if (event_base_loop(base, EVLOOP_ONCE) != 0) {
      nt_textfile_set_err(call->err, call->errlen,
                          "registry: the event loop failed");
      return NATTER_ERR_REGISTRY;
    }
  }
  return call->rv;
}

/* Queues the one request of an operator's call on |reg|; it completes
 * through admin_done into |call|. */
typedef int (*admin_request_fn)(nt_registry *reg, admin_call *call,
                                const void *arg);

/* Opens the registry at |location| on a private loop, queues the request
 * and runs the loop until it is done. */
static int admin_run(const char *location, admin_request_fn request,
                     const void *arg, char *err, size_t errlen) {
  admin_call call = {0, 0, err, errlen};
  struct event_base *base = event_base_new();
  nt_registry *reg;
  int rv;

  if (!base) {
    nt_textfile_set_err(err, errlen, "registry: cannot make an event loop");
    return NATTER_ERR_NOMEM;
  }
  rv = open_existing(&reg, base, location, err, errlen);
  if (rv == 0) {
    rv = request(reg, &call, arg);
    if (rv == 0) {
      rv = admin_wait(base, &call);
    }
    nt_registry_close(reg);
  }
  event_base_free(base);
  return rv;
}

typedef struct list_ctx {
  natter_registry_fn fn;
  void *user_data;
} list_ctx;

static int list_one(const nt_registry_entry *e, void *ud) {
  list_ctx *ctx = ud;
  char hex[NT_FINGERPRINT_HEX_LEN + 1];
  natter_registry_entry out;

  nt_fingerprint_hex(e->fingerprint, hex);
  out.name = e->name;
  out.fingerprint = hex;
  out.first_seen = e->first_seen;
  out.last_seen = e->last_seen;
  return ctx->fn(&out, ctx->user_data);
}

static int request_list(nt_registry *reg, admin_call *call, const void *arg) {
  return nt_registry_list(reg, list_one, (void *)arg, admin_done, call, NULL,
                          call->err, call->errlen);
}

int natter_registry_list(const char *path, natter_registry_fn fn,
                         void *user_data, char *err, size_t errlen) {
  list_ctx ctx = {fn, user_data};

  if (!fn) {
    nt_textfile_set_err(err, errlen, "no callback");
    return NATTER_ERR_INVALID;
  }
  return admin_run(path, request_list, &ctx, err, errlen);
}

static int request_release(nt_registry *reg, admin_call *call,
                           const void *name) {
  return nt_registry_release(reg, name, admin_done, call, NULL, call->err,
                             call->errlen);
}

int natter_registry_release(const char *path, const char *name, char *err,
                            size_t errlen) {
  if (!name) {
    nt_textfile_set_err(err, errlen, "no name");
    return NATTER_ERR_INVALID;
  }
  int rv = admin_run(path, request_release, name, err, errlen);
  if (rv == NATTER_ERR_PEER_UNKNOWN) {
    nt_textfile_set_err(err, errlen, "\"%.63s\" is not bound in this registry",
                        name);
  }
  return rv;
}
