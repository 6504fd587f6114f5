/* What the status pages and metrics of both roles share: who may read the
 * detailed page (admin keys), the clocks they report in, and the renderers
 * that turn the public status getters into Prometheus text and JSON. The
 * renderers read only what natter.h exports, so the pages, the metrics and
 * an embedder all see the same numbers: the library keeps one set of
 * books. */
#ifndef NT_STATUS_H
#define NT_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "natter.h"
#include "trust/tls.h"

struct evbuffer;

#define NT_MAX_ADMINS 64

/* Keys allowed to read detailed status. */
typedef struct nt_admins {
  uint8_t fp[NT_MAX_ADMINS][NT_FINGERPRINT_LEN];
  size_t n;
} nt_admins;

/* Adds |hex| (natter_fingerprint_check form). Returns 0, or
 * NATTER_ERR_INVALID for a bad fingerprint or a full list. */
int nt_admins_add(nt_admins *a, const char *hex);
int nt_admins_contains(const nt_admins *a, const uint8_t *fp);

/* Wall clock in milliseconds since the Unix epoch. */
uint64_t nt_unix_ms(void);
/* The wall-clock time of monotonic instant |mono_ns| (in the past). */
uint64_t nt_unix_ms_of_monotonic(uint64_t mono_ns);

/* Prometheus text for a broker / a client. */
void nt_render_broker_metrics(struct evbuffer *out, void *broker);
void nt_render_client_metrics(struct evbuffer *out, void *client);

/* The JSON status document. |detailed| adds what only an admin (or, for a
 * client, its own key) may see: per-client or per-peer rows. */
void nt_render_broker_json(struct evbuffer *out, const natter_broker *b,
                           int detailed);
void nt_render_client_json(struct evbuffer *out, const natter_client *c,
                           int detailed);

/* The readable tables natter -status prints (text/plain). */
void nt_render_broker_text(struct evbuffer *out, const natter_broker *b,
                           int detailed);
void nt_render_client_text(struct evbuffer *out, const natter_client *c,
                           int detailed);

#endif
