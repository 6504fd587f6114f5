/* The registry for operators: natter_registry_list and _release (natter.h)
 * on a broker's registry file, from another process while the broker runs
 * (SQLite's locking keeps both consistent; the broker sees a release at its
 * next lookup). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "natter.h"
#include "base/paths.h"
#include "broker/registry.h"
#include "base/textfile.h"
#include "trust/tls.h"

/* Opens the existing file at |path| (NULL: the default). Listing or
 * releasing never creates a registry: a wrong path must say so. */
static int open_existing(nt_registry **preg, const char *path, char *err,
                         size_t errlen) {
  char def[1024];
  struct stat st;

  *preg = NULL;
  if (!path) {
    if (nt_default_registry_path(def, sizeof(def)) != 0) {
      nt_textfile_set_err(err, errlen,
                          "no default registry path (set HOME or "
                          "STATE_DIRECTORY, or give -registry FILE)");
      return NATTER_ERR_INVALID;
    }
    path = def;
  }
  if (path[0] == '\0') {
    nt_textfile_set_err(err, errlen, "no registry file given");
    return NATTER_ERR_INVALID;
  }
  if (stat(path, &st) != 0) {
    nt_textfile_set_err(err, errlen, "registry %s: %s", path,
                        errno == ENOENT ? "no such file (no broker has used "
                                          "it yet, or another -registry)"
                                        : strerror(errno));
    return NATTER_ERR_REGISTRY;
  }
  return nt_registry_open(preg, NULL, path, err, errlen);
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

int natter_registry_list(const char *path, natter_registry_fn fn,
                         void *user_data, char *err, size_t errlen) {
  nt_registry *reg;
  list_ctx ctx = {fn, user_data};

  if (!fn) {
    nt_textfile_set_err(err, errlen, "no callback");
    return NATTER_ERR_INVALID;
  }
  int rv = open_existing(&reg, path, err, errlen);
  if (rv != 0) {
    return rv;
  }
  rv = nt_registry_list(reg, list_one, &ctx, err, errlen);
  nt_registry_close(reg);
  return rv;
}

int natter_registry_release(const char *path, const char *name, char *err,
                            size_t errlen) {
  nt_registry *reg;

  if (!name) {
    nt_textfile_set_err(err, errlen, "no name");
    return NATTER_ERR_INVALID;
  }
  int rv = open_existing(&reg, path, err, errlen);
  if (rv != 0) {
    return rv;
  }
  rv = nt_registry_release(reg, name, err, errlen);
  if (rv == NATTER_ERR_PEER_UNKNOWN) {
    nt_textfile_set_err(err, errlen, "\"%.63s\" is not bound in this registry",
                        name);
  }
  nt_registry_close(reg);
  return rv;
}
