/* The dashboard (dashboard.h): static files, the JSON document and the
 * ring of samples behind its charts. */
#include "status/dashboard.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"
#include "status/dashboard_assets.h"
#include "status/status.h"

typedef struct nt_dashboard {
  struct event *tick;
  const char *role;
  nt_dashboard_sample_fn sample;
  nt_dashboard_json_fn json;
  void *user_data;
  nt_history history; /* fixed size: see history.h */
} nt_dashboard;

static void take_sample(nt_dashboard *d, nt_history_point *p) {
  memset(p, 0, sizeof(*p));
  d->sample(p, d->user_data);
  p->unix_ms = nt_unix_ms();
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  nt_dashboard *d = arg;
  nt_history_point p;
  (void)fd;
  (void)what;
  take_sample(d, &p);
  nt_history_add(&d->history, &p);
}

int nt_dashboard_host_ok(const char *host) {
  char name[64];
  struct in6_addr a6;
  struct in_addr a4;
  size_t len;

  if (!host) {
    return 0;
  }
  if (host[0] == '[') { /* [v6]:port */
    const char *end = strchr(host, ']');
    if (!end || (end[1] && end[1] != ':')) {
      return 0;
    }
    len = (size_t)(end - host - 1);
    host++;
  } else {
    const char *colon = strchr(host, ':');
    len = colon ? (size_t)(colon - host) : strlen(host);
  }
  if (len == 0 || len >= sizeof(name)) {
    return 0;
  }
  memcpy(name, host, len);
  name[len] = '\0';
  if (strcmp(name, "localhost") == 0) {
    return 1;
  }
  if (inet_pton(AF_INET, name, &a4) == 1) {
    return (ntohl(a4.s_addr) >> 24) == 127;
  }
  if (inet_pton(AF_INET6, name, &a6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&a6);
  }
  return 0;
}

static void add_headers(struct evhttp_request *req, const char *type) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", type);
  evhttp_add_header(h, "Content-Security-Policy", NT_DASHBOARD_CSP);
  evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
  evhttp_add_header(h, "X-Frame-Options", "DENY");
  evhttp_add_header(h, "Referrer-Policy", "no-referrer");
  evhttp_add_header(h, "Cache-Control", "no-store");
}

static void history_point_json(struct evbuffer *out, const nt_history_point *p,
                               int first) {
  evbuffer_add_printf(out, "%s[%llu,%llu,%llu,%llu,%llu]", first ? "" : ",",
                      (unsigned long long)p->unix_ms,
                      (unsigned long long)p->bytes_received,
                      (unsigned long long)p->bytes_sent,
                      (unsigned long long)p->relayed_bytes,
                      (unsigned long long)p->count);
}

static void render_json(nt_dashboard *d, struct evbuffer *out) {
  nt_history_point now;
  size_t n = nt_history_count(&d->history);

  evbuffer_add_printf(out, "{\"role\":\"%s\",\"interval_ms\":%d,", d->role,
                      NT_HISTORY_INTERVAL_MS);
  d->json(out, d->user_data);
  /* The ring's points, oldest first, then one taken now, so that the
   * charts have a line from the first seconds on. */
  evbuffer_add_printf(out, ",\"history_fields\":[\"unix_ms\","
                           "\"bytes_received\",\"bytes_sent\","
                           "\"relayed_bytes\",\"count\"],\"history\":[");
  for (size_t i = 0; i < n; i++) {
    history_point_json(out, nt_history_at(&d->history, i), i == 0);
  }
  take_sample(d, &now);
  history_point_json(out, &now, n == 0);
  evbuffer_add(out, "]}\n", 3);
}

static int serve(struct evhttp_request *req, const char *path, void *arg) {
  nt_dashboard *d = arg;
  const unsigned char *data = NULL;
  size_t len = 0;
  const char *type = NULL;

  if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
    data = nt_asset_index_html;
    len = nt_asset_index_html_len;
    type = "text/html; charset=utf-8";
  } else if (strcmp(path, "/dashboard.css") == 0) {
    data = nt_asset_dashboard_css;
    len = nt_asset_dashboard_css_len;
    type = "text/css; charset=utf-8";
  } else if (strcmp(path, "/dashboard.js") == 0) {
    data = nt_asset_dashboard_js;
    len = nt_asset_dashboard_js_len;
    type = "text/javascript; charset=utf-8";
  } else if (strcmp(path, "/dashboard.json") == 0) {
    type = "application/json";
  } else {
    return 0;
  }
  if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
      evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
    evhttp_send_error(req, 405, "GET only");
    return 1;
  }
  /* DNS rebinding: a page of evil.example whose name now resolves to
   * 127.0.0.1 would send "Host: evil.example". */
  if (!nt_dashboard_host_ok(
          evhttp_find_header(evhttp_request_get_input_headers(req), "Host"))) {
    evhttp_send_error(req, 421, "the dashboard answers to localhost only");
    return 1;
  }
  struct evbuffer *out = evbuffer_new();
  if (!out) {
    evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
    return 1;
  }
  if (data) {
    evbuffer_add_reference(out, data, len, NULL, NULL);
  } else {
    render_json(d, out);
  }
  add_headers(req, type);
  evhttp_send_reply(req, HTTP_OK, "OK", out);
  evbuffer_free(out);
  return 1;
}

static void dashboard_free(void *arg) {
  nt_dashboard *d = arg;
  event_free(d->tick);
  free(d);
}

int nt_dashboard_attach(nt_metrics *m, struct event_base *base,
                        const char *role, nt_dashboard_sample_fn sample,
                        nt_dashboard_json_fn json, void *user_data) {
  nt_dashboard *d = calloc(1, sizeof(*d));
  if (!d) {
    return NATTER_ERR_NOMEM;
  }
  d->tick = event_new(base, -1, EV_PERSIST, tick_cb, d);
  if (!d->tick) {
    free(d);
    return NATTER_ERR_NOMEM;
  }
  d->role = role;
  d->sample = sample;
  d->json = json;
  d->user_data = user_data;
  nt_history_init(&d->history);
  struct timeval tv = {NT_HISTORY_INTERVAL_MS / 1000,
                       (NT_HISTORY_INTERVAL_MS % 1000) * 1000};
  event_add(d->tick, &tv);
  tick_cb(-1, 0, d); /* the first point: the charts start here */
  nt_metrics_set_pages(m, serve, d, dashboard_free);
  return 0;
}
