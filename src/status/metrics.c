/* Prometheus metrics endpoint (metrics.h). */
#include "status/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "natter.h"

struct nt_metrics {
  struct evhttp *http;
  uint16_t port;
  nt_metrics_render_fn render;
  void *user_data;
  nt_metrics_page_fn page; /* other paths (the dashboard); may be NULL */
  void *page_data;
  void (*page_free)(void *page_data);
};

static void metrics_cb(struct evhttp_request *req, void *arg) {
  nt_metrics *m = arg;
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

  if (path && strcmp(path, "/metrics") != 0 && m->page &&
      m->page(req, path, m->page_data)) {
    return;
  }
  if (!path || strcmp(path, "/metrics") != 0) {
    evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
    return;
  }
  if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
    evhttp_send_error(req, 405, "GET only");
    return;
  }
  struct evbuffer *out = evbuffer_new();
  if (!out) {
    evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
    return;
  }
  m->render(out, m->user_data);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8");
  evhttp_send_reply(req, HTTP_OK, "OK", out);
  evbuffer_free(out);
}

int nt_metrics_new(nt_metrics **pm, struct event_base *base, const char *addr,
                   nt_metrics_render_fn render, void *user_data, char *err,
                   size_t errlen) {
  nt_addr a;
  char host[NT_ADDR_STRLEN];
  size_t iplen;

  *pm = NULL;
  /* Numeric only: this runs inside the loop, where a blocking lookup of
   * a name would stall every connection. */
  if (nt_addr_parse(&a, addr, "127.0.0.1", err, errlen) != 0) {
    return NATTER_ERR_INVALID;
  }
  if (!nt_addr_is_loopback((struct sockaddr *)&a.ss)) {
    snprintf(err, errlen,
             "metrics address %.80s is not a loopback address: metrics are "
             "served on 127.0.0.1 or ::1 only (put a proxy in front to "
             "publish them)",
             addr);
    return NATTER_ERR_INVALID;
  }
  const uint8_t *ip = nt_addr_raw((struct sockaddr *)&a.ss, &iplen);
  if (!inet_ntop(a.ss.ss_family, ip, host, sizeof(host))) {
    snprintf(err, errlen, "bad metrics address %.80s", addr);
    return NATTER_ERR_INVALID;
  }
  nt_metrics *m = calloc(1, sizeof(*m));
  if (!m) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  m->render = render;
  m->user_data = user_data;
  m->http = evhttp_new(base);
  if (!m->http) {
    free(m);
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  /* Scrapes are small: bound what a local client can make us hold. */
  evhttp_set_max_headers_size(m->http, 8192);
  evhttp_set_max_body_size(m->http, 0);
  evhttp_set_timeout(m->http, 10);
  evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_gencb(m->http, metrics_cb, m);
  uint16_t port = nt_addr_port((struct sockaddr *)&a.ss);
  struct evhttp_bound_socket *bound =
      evhttp_bind_socket_with_handle(m->http, host, port);
  if (!bound) {
    int e = errno;
    snprintf(err, errlen, "cannot listen for metrics on %s: %s",
             nt_addr_str((struct sockaddr *)&a.ss, host), strerror(e));
    evhttp_free(m->http);
    free(m);
    return e == EADDRINUSE ? NATTER_ERR_ADDR_IN_USE : NATTER_ERR_SOCKET;
  }
  nt_addr bound_addr;
  bound_addr.len = sizeof(bound_addr.ss);
  if (getsockname(evhttp_bound_socket_get_fd(bound),
                  (struct sockaddr *)&bound_addr.ss, &bound_addr.len) == 0) {
    port = nt_addr_port((struct sockaddr *)&bound_addr.ss);
  }
  m->port = port;
  *pm = m;
  return 0;
}

void nt_metrics_free(nt_metrics *m) {
  if (!m) {
    return;
  }
  evhttp_free(m->http);
  if (m->page_free) {
    m->page_free(m->page_data);
  }
  free(m);
}

void nt_metrics_set_pages(nt_metrics *m, nt_metrics_page_fn page,
                          void *user_data, void (*free_fn)(void *)) {
  m->page = page;
  m->page_data = user_data;
  m->page_free = free_fn;
}

uint16_t nt_metrics_port(const nt_metrics *m) {
  return m ? m->port : 0;
}

void nt_prom_header(struct evbuffer *out, const char *name, const char *type,
                    const char *help) {
  evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                      type);
}

/* Label values: the format escapes backslash, double quote and line feed;
 * everything else is UTF-8 as it is. Names here are natter names
 * (A-Za-z0-9._-) or our own words, but the escaping costs nothing. */
static void put_labels(struct evbuffer *out, const char *const *labels,
                       size_t nlabels) {
  if (nlabels == 0) {
    return;
  }
  evbuffer_add(out, "{", 1);
  for (size_t i = 0; i < nlabels; i++) {
    evbuffer_add_printf(out, "%s%s=\"", i ? "," : "", labels[2 * i]);
    for (const char *p = labels[2 * i + 1]; *p; p++) {
      if (*p == '\\' || *p == '"') {
        evbuffer_add_printf(out, "\\%c", *p);
      } else if (*p == '\n') {
        evbuffer_add(out, "\\n", 2);
      } else {
        evbuffer_add(out, p, 1);
      }
    }
    evbuffer_add(out, "\"", 1);
  }
  evbuffer_add(out, "}", 1);
}

void nt_prom_sample(struct evbuffer *out, const char *name,
                    const char *const *labels, size_t nlabels, uint64_t value) {
  evbuffer_add_printf(out, "%s", name);
  put_labels(out, labels, nlabels);
  evbuffer_add_printf(out, " %llu\n", (unsigned long long)value);
}

void nt_prom_sample_double(struct evbuffer *out, const char *name,
                           const char *const *labels, size_t nlabels,
                           double value) {
  evbuffer_add_printf(out, "%s", name);
  put_labels(out, labels, nlabels);
  evbuffer_add_printf(out, " %.6f\n", value);
}
