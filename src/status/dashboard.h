/* The HTML dashboard of a broker or a client, on the metrics server's
 * loopback HTTP port (metrics.h): GET / (the page), /dashboard.css,
 * /dashboard.js (compiled in, dashboard_assets.h) and /dashboard.json
 * (what the role's callbacks write, and the last hour of samples from a
 * ring this module keeps, history.h). Every answer carries a strict
 * Content-Security-Policy (no inline script or style, nothing from
 * elsewhere), nosniff, and no caching; a request whose Host is not a
 * loopback address or "localhost" is refused (421), so a web page that
 * rebinds its own name to 127.0.0.1 cannot read the JSON. */
#ifndef NT_DASHBOARD_H
#define NT_DASHBOARD_H

#include "status/history.h"
#include "status/metrics.h"

struct event_base;
struct evbuffer;

/* Fills |p| with the role's running totals now (all but unix_ms). */
typedef void (*nt_dashboard_sample_fn)(nt_history_point *p, void *user_data);
/* Writes the role's part of /dashboard.json: one or more members
 * ("name":value, comma-separated, no braces around them). */
typedef void (*nt_dashboard_json_fn)(struct evbuffer *out, void *user_data);

/* Serves the dashboard on |m| for |role| ("broker" or "client", a static
 * string) and takes a sample now and every NT_HISTORY_INTERVAL_MS; |m|
 * owns it from then on (nt_metrics_free stops it). Returns 0, or
 * NATTER_ERR_NOMEM (then |m| serves /metrics only). */
int nt_dashboard_attach(nt_metrics *m, struct event_base *base,
                        const char *role, nt_dashboard_sample_fn sample,
                        nt_dashboard_json_fn json, void *user_data);

/* The policy every answer carries (for the tests and the docs). */
#define NT_DASHBOARD_CSP                                                       \
  "default-src 'none'; script-src 'self'; style-src 'self'; "                  \
  "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "                \
  "form-action 'none'; frame-ancestors 'none'"

/* 1 when |host| (a Host header: name or address, maybe with a port) is
 * "localhost" or a loopback address, else 0. NULL is refused. */
int nt_dashboard_host_ok(const char *host);

#endif
