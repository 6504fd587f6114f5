/* Prometheus metrics over HTTP/1.1 on a loopback TCP address, served by
 * libevent's evhttp (no HTTP parser of ours), plus the few helpers that
 * write the text exposition format (version 0.0.4). What the metrics say
 * comes from the owner's render callback; this module only serves it. */
#ifndef NT_METRICS_H
#define NT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

struct event_base;
struct evbuffer;

typedef struct nt_metrics nt_metrics;

/* Writes the whole exposition text into |out|. */
typedef void (*nt_metrics_render_fn)(struct evbuffer *out, void *user_data);

/* Listens on |addr| ("IP:PORT", loopback only; port 0: any free port) and
 * answers GET /metrics with what |render| writes; other paths go to the
 * pages set by nt_metrics_set_pages (the dashboard), else get 404,
 * other methods 405. Returns 0 and sets *pm, or NATTER_ERR_INVALID (bad
 * or non-loopback address) or NATTER_ERR_ADDR_IN_USE, with a one-line
 * reason in |err|. */
int nt_metrics_new(nt_metrics **pm, struct event_base *base, const char *addr,
                   nt_metrics_render_fn render, void *user_data, char *err,
                   size_t errlen);
void nt_metrics_free(nt_metrics *m);

struct evhttp_request;
/* Answers a request for |path| (not /metrics) and returns 1, or returns
 * 0 to leave it to the 404. */
typedef int (*nt_metrics_page_fn)(struct evhttp_request *req,
                                  const char *path, void *user_data);
/* Hands every other path to |page| first (the dashboard, dashboard.h);
 * |m| then owns |user_data| and releases it with |free_fn| (may be NULL)
 * in nt_metrics_free. */
void nt_metrics_set_pages(nt_metrics *m, nt_metrics_page_fn page,
                          void *user_data, void (*free_fn)(void *));
uint16_t nt_metrics_port(const nt_metrics *m);

/* ---- the text format ---- */

/* "# HELP name help\n# TYPE name type\n". |type| is "counter" or
 * "gauge". */
void nt_prom_header(struct evbuffer *out, const char *name, const char *type,
                    const char *help);
/* One sample: name{labels} value. |labels| holds |nlabels| name/value
 * pairs (names must be valid label names; values are escaped here). */
void nt_prom_sample(struct evbuffer *out, const char *name,
                    const char *const *labels, size_t nlabels, uint64_t value);
/* The same with a floating-point value (seconds). */
void nt_prom_sample_double(struct evbuffer *out, const char *name,
                           const char *const *labels, size_t nlabels,
                           double value);

#endif
