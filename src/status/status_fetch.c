/* natter_status_fetch_*: the HTTP/3 client behind natter -status. Its own
 * endpoint (one UDP socket, as every natter connection has) and one
 * nt_h3_fetch on it, presenting this machine's identity as the TLS client
 * key so that a client recognises its own operator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic/endpoint.h"
#include "status/h3.h"
#include "natter.h"
#include "base/paths.h"

struct natter_status_fetch {
  nt_log log;
  nt_identity *identity;
  nt_endpoint *ep;
  nt_h3_fetch *fetch;
  natter_status_fn fn;
  void *user_data;
};

static const nt_endpoint_callbacks no_accept = {NULL, NULL, NULL, NULL, NULL};

static void fetch_done(int error, int status, const char *body, size_t len,
                       void *ud) {
  natter_status_fetch *f = ud;
  f->fn(error, status, body, len, f->user_data);
}

int natter_status_fetch_start(natter_status_fetch **pfetch,
                              struct event_base *base, const char *addr,
                              const char *identity_file, int text,
                              natter_status_fn fn, void *user_data) {
  char err[512];
  nt_addr to;
  nt_endpoint_config epcfg;
  int rv;

  if (!pfetch) {
    return NATTER_ERR_INVALID;
  }
  *pfetch = NULL;
  if (!base || !addr || !fn) {
    return NATTER_ERR_INVALID;
  }
  natter_status_fetch *f = calloc(1, sizeof(*f));
  if (!f) {
    return NATTER_ERR_NOMEM;
  }
  f->log.level = NATTER_LOG_ERROR;
  f->fn = fn;
  f->user_data = user_data;
  rv = nt_addr_parse(&to, addr, "127.0.0.1", err, sizeof(err));
  if (rv == 0 && nt_addr_port((struct sockaddr *)&to.ss) == 0) {
    snprintf(err, sizeof(err), "port must be 1..65535");
    rv = NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    nt_error(&f->log, "bad status address \"%.80s\": %s", addr, err);
    natter_status_fetch_free(f);
    return rv;
  }
  rv = identity_file && identity_file[0]
           ? nt_identity_load_or_create(&f->identity, identity_file, err,
                                        sizeof(err))
           : nt_identity_new_ephemeral(&f->identity, err, sizeof(err));
  if (rv != 0) {
    nt_error(&f->log, "%s", err);
    natter_status_fetch_free(f);
    return NATTER_ERR_IDENTITY;
  }
  memset(&epcfg, 0, sizeof(epcfg));
  epcfg.bind.ss.ss_family = to.ss.ss_family;
  epcfg.bind.len = to.len;
  epcfg.identity = f->identity;
  epcfg.callbacks = &no_accept;
  epcfg.user_data = f;
  epcfg.log = &f->log;
  epcfg.handshake_timeout_ms = 5000;
  epcfg.idle_timeout_ms = 10000;
  rv = nt_endpoint_new(&f->ep, base, &epcfg, err, sizeof(err));
  if (rv != 0) {
    nt_error(&f->log, "%s", err);
    natter_status_fetch_free(f);
    return rv;
  }
  rv = nt_h3_fetch_start(&f->fetch, f->ep, (struct sockaddr *)&to.ss, to.len,
                         "/status", text ? "text/plain" : "application/json",
                         fetch_done, f);
  if (rv != 0) {
    natter_status_fetch_free(f);
    return rv;
  }
  *pfetch = f;
  return 0;
}

void natter_status_fetch_free(natter_status_fetch *f) {
  if (!f) {
    return;
  }
  nt_endpoint_free(f->ep); /* first: the fetch's connection lives on it */
  nt_h3_fetch_free(f->fetch);
  nt_identity_free(f->identity);
  free(f);
}
