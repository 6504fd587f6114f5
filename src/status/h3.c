/* HTTP/3 status pages (h3.h). One h3_link per QUIC connection binds an
 * nghttp3_conn to it: peer streams are fed to nghttp3_conn_read_stream,
 * and what nghttp3_conn_writev_stream produces is copied into the QUIC
 * streams, which keep it until acknowledged; so nghttp3 may forget it at
 * once (write and ack offsets advance together). */
#include "status/h3.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp3/nghttp3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "base/budget.h"
#include "natter.h"

/* RFC 9114 §8.1 */
#define H3_NO_ERROR 0x100
#define H3_GENERAL_PROTOCOL_ERROR 0x101
#define H3_INTERNAL_ERROR 0x102
#define H3_EXCESSIVE_LOAD 0x107

#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_PATH 256
#define MAX_ACCEPT 128

typedef struct h3_link h3_link;

typedef struct h3_stream {
  h3_link *link;
  nt_stream *s;
  int64_t id;
  char method[16];
  char path[MAX_PATH];
  char accept[MAX_ACCEPT];
  int status;            /* client: the response's :status */
  struct evbuffer *body; /* server: response; client: what arrived */
  int body_given;        /* server: handed to nghttp3 */
  LIST_ENTRY(h3_stream) entry;
} h3_stream;

struct h3_link {
  int is_server;
  nt_conn *conn;
  nghttp3_conn *h3;
  const nt_log *log;
  LIST_HEAD(, h3_stream) streams;
  nt_h3_server *server; /* server links */
  nt_h3_fetch *fetch;   /* the client link */
  LIST_ENTRY(h3_link) entry;
  /* Server links: what they count as against the limits (h3.h). */
  enum { LINK_HANDSHAKE, LINK_ORDINARY, LINK_PRIVILEGED, LINK_REFUSED } stage;
  uint8_t source[NT_SOURCE_KEY_MAX];
  size_t sourcelen; /* 0: unknown */
};

struct nt_h3_server {
  const nt_log *log;
  nt_h3_render_fn render;
  void *user_data;
  LIST_HEAD(, h3_link) links;
  size_t nlinks;
  uint8_t own_fp[NT_FINGERPRINT_LEN];
  int have_own_fp;
  const nt_admins *admins;
  nt_log_gate refuse_gate; /* one "refused a status reader" line a second */
};

struct nt_h3_fetch {
  h3_link link;
  char path[MAX_PATH];
  char accept[MAX_ACCEPT];
  char authority[NT_ADDR_STRLEN];
  nt_h3_done_fn done;
  void *user_data;
  int finished;
  nt_log quiet; /* HTTP/3 errors show as the fetch's outcome */
};

static void link_write(h3_link *l);

static void link_fail(h3_link *l, int liberr) {
  nt_debug(l->log, "HTTP/3: %s", nghttp3_strerror(liberr));
  if (l->conn) {
    nt_conn_close(l->conn, nghttp3_err_infer_quic_app_error_code(liberr),
                  "HTTP/3 error");
  }
}

static h3_stream *find_stream(h3_link *l, int64_t id) {
  h3_stream *hs;
  LIST_FOREACH(hs, &l->streams, entry) {
    if (hs->id == id) {
      return hs;
    }
  }
  return NULL;
}

static void stream_free(h3_stream *hs) {
  LIST_REMOVE(hs, entry);
  if (hs->body) {
    evbuffer_free(hs->body);
  }
  free(hs);
}

/* ---- QUIC stream callbacks ---- */

static void qs_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                    void *ud) {
  h3_stream *hs = ud;
  h3_link *l = hs->link;
  /* Everything read is ours to drop (bodies are not taken), so the
   * credit goes back at once. */
  nt_stream_consume(s, len);
  if (!l->h3) {
    return;
  }
  nghttp3_ssize n = nghttp3_conn_read_stream(l->h3, hs->id, data, len, fin);
  if (n < 0) {
    link_fail(l, (int)n);
    return;
  }
  link_write(l);
}

static void qs_room(nt_stream *s, void *ud) {
  h3_stream *hs = ud;
  (void)s;
  if (hs->link->h3) {
    link_write(hs->link);
  }
}

static void qs_closed(nt_stream *s, int reset, uint64_t code, void *ud) {
  h3_stream *hs = ud;
  (void)s;
  (void)reset;
  if (hs->link->h3) {
    nghttp3_conn_close_stream(hs->link->h3, hs->id, code ? code : H3_NO_ERROR);
  }
  stream_free(hs);
}

static const nt_stream_callbacks qs_callbacks = {qs_recv, qs_room, qs_closed};

static h3_stream *stream_add(h3_link *l, nt_stream *s) {
  h3_stream *hs = calloc(1, sizeof(*hs));
  if (!hs) {
    return NULL;
  }
  hs->link = l;
  hs->s = s;
  hs->id = nt_stream_id(s);
  LIST_INSERT_HEAD(&l->streams, hs, entry);
  nt_stream_set_callbacks(s, &qs_callbacks, hs);
  return hs;
}

/* Copies what nghttp3 has to send into the QUIC streams. */
static void link_write(h3_link *l) {
  for (int round = 0; round < 64 && l->h3; round++) {
    nghttp3_vec vec[16];
    int64_t id = -1;
    int fin = 0;
    nghttp3_ssize n = nghttp3_conn_writev_stream(l->h3, &id, &fin, vec, 16);
    if (n < 0) {
      link_fail(l, (int)n);
      return;
    }
    if (id < 0) {
      return;
    }
    h3_stream *hs = find_stream(l, id);
    size_t total = 0;
    for (nghttp3_ssize i = 0; i < n; i++) {
      if (hs && vec[i].len &&
          nt_stream_write(hs->s, vec[i].base, vec[i].len) != 0) {
        link_fail(l, NGHTTP3_ERR_CALLBACK_FAILURE);
        return;
      }
      total += vec[i].len;
    }
    if (hs && fin) {
      nt_stream_shutdown_write(hs->s);
    }
    int rv = nghttp3_conn_add_write_offset(l->h3, id, total);
    if (rv == 0 && total) {
      rv = nghttp3_conn_add_ack_offset(l->h3, id, total);
    }
    if (rv != 0) {
      link_fail(l, rv);
      return;
    }
    if (!hs) {
      /* A stream that is gone: nghttp3 keeps nothing for it now. */
      nghttp3_conn_close_stream(l->h3, id, H3_NO_ERROR);
    }
  }
}

/* ---- nghttp3 callbacks ---- */

static void copy_rcbuf(char *out, size_t outlen, nghttp3_rcbuf *buf) {
  nghttp3_vec v = nghttp3_rcbuf_get_buf(buf);
  size_t n = v.len < outlen - 1 ? v.len : outlen - 1;
  memcpy(out, v.base, n);
  out[n] = '\0';
}

static int on_header(nghttp3_conn *conn, int64_t id, int32_t token,
                     nghttp3_rcbuf *name, nghttp3_rcbuf *value, uint8_t flags,
                     void *ud, void *sud) {
  h3_link *l = ud;
  h3_stream *hs = sud ? sud : find_stream(l, id);
  (void)conn;
  (void)name;
  (void)flags;
  if (!hs) {
    return 0;
  }
  switch (token) {
  case NGHTTP3_QPACK_TOKEN__PATH:
    copy_rcbuf(hs->path, sizeof(hs->path), value);
    break;
  case NGHTTP3_QPACK_TOKEN__METHOD:
    copy_rcbuf(hs->method, sizeof(hs->method), value);
    break;
  case NGHTTP3_QPACK_TOKEN_ACCEPT:
    copy_rcbuf(hs->accept, sizeof(hs->accept), value);
    break;
  case NGHTTP3_QPACK_TOKEN__STATUS: {
    char st[8];
    copy_rcbuf(st, sizeof(st), value);
    hs->status = atoi(st);
    break;
  }
  default:
    break;
  }
  return 0;
}

static nghttp3_ssize read_body(nghttp3_conn *conn, int64_t id, nghttp3_vec *vec,
                               size_t veccnt, uint32_t *pflags, void *ud,
                               void *sud) {
  h3_link *l = ud;
  h3_stream *hs = sud ? sud : find_stream(l, id);
  (void)conn;
  (void)veccnt;
  *pflags |= NGHTTP3_DATA_FLAG_EOF;
  if (!hs || hs->body_given || !hs->body ||
      evbuffer_get_length(hs->body) == 0) {
    return 0;
  }
  hs->body_given = 1;
  vec[0].len = evbuffer_get_length(hs->body);
  vec[0].base = evbuffer_pullup(hs->body, -1); /* lives until the stream */
  return 1;
}

static void respond(h3_link *l, h3_stream *hs) {
  nt_h3_server *srv = l->server;
  const char *ctype = "text/plain; charset=utf-8";
  char status[8], length[24];
  int code;

  hs->body = evbuffer_new();
  if (!hs->body) {
    link_fail(l, NGHTTP3_ERR_NOMEM);
    return;
  }
  if (strcmp(hs->method, "GET") != 0) {
    code = 405;
    evbuffer_add_printf(hs->body, "only GET\n");
  } else {
    code =
        srv->render(hs->body, hs->path, hs->accept,
                    nt_conn_peer_fingerprint(l->conn), &ctype, srv->user_data);
  }
  snprintf(status, sizeof(status), "%d", code);
  snprintf(length, sizeof(length), "%zu", evbuffer_get_length(hs->body));
#define NV(n, v)                                                               \
  {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                   \
   NGHTTP3_NV_FLAG_NONE}
  nghttp3_nv nva[] = {NV(":status", status), NV("content-type", ctype),
                      NV("content-length", length),
                      NV("cache-control", "no-store")};
#undef NV
  nghttp3_data_reader reader = {read_body};
  int rv = nghttp3_conn_submit_response(l->h3, hs->id, nva,
                                        sizeof(nva) / sizeof(nva[0]), &reader);
  if (rv != 0) {
    link_fail(l, rv);
  }
}

static int on_end_stream(nghttp3_conn *conn, int64_t id, void *ud, void *sud) {
  h3_link *l = ud;
  h3_stream *hs = sud ? sud : find_stream(l, id);
  (void)conn;
  if (!hs) {
    return 0;
  }
  if (l->is_server) {
    respond(l, hs);
    return 0;
  }
  nt_h3_fetch *f = l->fetch;
  if (!f->finished) {
    f->finished = 1;
    size_t len = hs->body ? evbuffer_get_length(hs->body) : 0;
    const char *data = len ? (const char *)evbuffer_pullup(hs->body, -1) : "";
    f->done(0, hs->status, data, len, f->user_data);
    nt_conn_close(l->conn, H3_NO_ERROR, "");
  }
  return 0;
}

static int on_data(nghttp3_conn *conn, int64_t id, const uint8_t *data,
                   size_t len, void *ud, void *sud) {
  h3_link *l = ud;
  h3_stream *hs = sud ? sud : find_stream(l, id);
  (void)conn;
  if (!hs || l->is_server) {
    return 0; /* request bodies are not taken */
  }
  if ((!hs->body && !(hs->body = evbuffer_new())) ||
      evbuffer_get_length(hs->body) + len > NT_H3_MAX_BODY ||
      evbuffer_add(hs->body, data, len) != 0) {
    return NGHTTP3_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static const nghttp3_callbacks h3_callbacks = {
    .recv_header = on_header,
    .end_stream = on_end_stream,
    .recv_data = on_data,
};

/* Makes the nghttp3 side of |l| once QUIC is up: settings and the three
 * unidirectional streams each side owes the other (RFC 9114 §6.2). */
static int link_start(h3_link *l, nt_conn *conn) {
  nghttp3_settings settings;
  nt_stream *ctrl, *enc, *dec;
  h3_stream *hc, *he, *hd;

  l->conn = conn;
  nghttp3_settings_default(&settings);
  settings.max_field_section_size = 16384;
  settings.qpack_max_dtable_capacity = 0;
  settings.qpack_blocked_streams = 0;
  int rv = l->is_server
               ? nghttp3_conn_server_new(&l->h3, &h3_callbacks, &settings,
                                         nghttp3_mem_default(), l)
               : nghttp3_conn_client_new(&l->h3, &h3_callbacks, &settings,
                                         nghttp3_mem_default(), l);
  if (rv != 0) {
    l->h3 = NULL;
    return -1;
  }
  if (l->is_server) {
    nghttp3_conn_set_max_client_streams_bidi(l->h3, 256);
  }
  if (nt_conn_open_uni_stream(conn, &ctrl) != 0 ||
      !(hc = stream_add(l, ctrl)) || nt_conn_open_uni_stream(conn, &enc) != 0 ||
      !(he = stream_add(l, enc)) || nt_conn_open_uni_stream(conn, &dec) != 0 ||
      !(hd = stream_add(l, dec)) ||
      nghttp3_conn_bind_control_stream(l->h3, hc->id) != 0 ||
      nghttp3_conn_bind_qpack_streams(l->h3, he->id, hd->id) != 0) {
    return -1;
  }
  return 0;
}

static void link_clear(h3_link *l) {
  while (!LIST_EMPTY(&l->streams)) {
    /* Only bookkeeping is left: the QUIC streams are gone already. */
    stream_free(LIST_FIRST(&l->streams));
  }
  if (l->h3) {
    nghttp3_conn_del(l->h3);
    l->h3 = NULL;
  }
  l->conn = NULL;
}

static void link_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  h3_link *l = ud;
  (void)conn;
  h3_stream *hs = l->h3 ? stream_add(l, s) : NULL;
  if (!hs) {
    nt_stream_reset(s, H3_INTERNAL_ERROR);
    return;
  }
  if ((hs->id & 0x2) == 0) { /* bidirectional: a request (RFC 9000 §2.1) */
    nghttp3_conn_set_stream_user_data(l->h3, hs->id, hs);
  }
}

/* ---- server ---- */

/* Links at |stage|, from |source| when it is not NULL. */
static size_t count_links(const nt_h3_server *srv, int stage,
                          const uint8_t *source, size_t sourcelen) {
  size_t n = 0;
  const h3_link *l;
  LIST_FOREACH(l, &srv->links, entry) {
    n += (int)l->stage == stage &&
         (!source || (l->sourcelen == sourcelen &&
                      memcmp(l->source, source, sourcelen) == 0));
  }
  return n;
}

static void log_refusal(nt_h3_server *srv, const struct sockaddr *from,
                        const char *why) {
  char addr[NT_ADDR_STRLEN];
  unsigned held;
  if (nt_log_gate_pass(&srv->refuse_gate, nt_monotonic_ns(), &held)) {
    nt_warn(srv->log, "refused an HTTP/3 status reader from %s: %s%s",
            from ? nt_addr_str(from, addr) : "?", why,
            held ? " (and more like it)" : "");
  }
}

static int privileged(const nt_h3_server *srv, const uint8_t *fp) {
  return fp && ((srv->have_own_fp &&
                 memcmp(fp, srv->own_fp, NT_FINGERPRINT_LEN) == 0) ||
                (srv->admins && nt_admins_contains(srv->admins, fp)));
}

/* The handshake is done and the reader's key known: a slot by who it is,
 * or a close that says which limit it hit. Returns 0 when admitted. */
static int admit_reader(h3_link *l, nt_conn *conn) {
  nt_h3_server *srv = l->server;
  const char *why = NULL;
  char reason[160];

  if (privileged(srv, nt_conn_peer_fingerprint(conn))) {
    if (count_links(srv, LINK_PRIVILEGED, NULL, 0) >= NT_H3_MAX_PRIVILEGED) {
      snprintf(reason, sizeof(reason),
               "%d status readers with the server's own or an -admin key "
               "are connected already",
               NT_H3_MAX_PRIVILEGED);
      why = reason;
    } else {
      l->stage = LINK_PRIVILEGED;
    }
  } else if (count_links(srv, LINK_ORDINARY, NULL, 0) >= NT_H3_MAX_CONNS) {
    snprintf(reason, sizeof(reason),
             "%d status readers are connected already (an -admin key has "
             "slots of its own)",
             NT_H3_MAX_CONNS);
    why = reason;
  } else if (l->sourcelen &&
             count_links(srv, LINK_ORDINARY, l->source, l->sourcelen) >=
                 NT_H3_MAX_PER_ADDRESS) {
    snprintf(reason, sizeof(reason),
             "%d status readers from this address are connected already",
             NT_H3_MAX_PER_ADDRESS);
    why = reason;
  } else {
    l->stage = LINK_ORDINARY;
  }
  if (!why) {
    return 0;
  }
  l->stage = LINK_REFUSED;
  log_refusal(srv, nt_conn_remote_addr(conn), why);
  nt_conn_close(conn, H3_EXCESSIVE_LOAD, why);
  return -1;
}

static void server_established(nt_conn *conn, void *ud) {
  h3_link *l = ud;
  if (admit_reader(l, conn) != 0) {
    return;
  }
  if (link_start(l, conn) != 0) {
    nt_conn_close(conn, H3_INTERNAL_ERROR, "cannot start HTTP/3");
    return;
  }
  link_write(l);
}

static void server_closed(nt_conn *conn, nt_close_reason reason,
                          uint64_t app_code, const char *message, void *ud) {
  h3_link *l = ud;
  (void)conn;
  (void)reason;
  (void)app_code;
  (void)message;
  link_clear(l);
  LIST_REMOVE(l, entry);
  l->server->nlinks--;
  free(l);
}

static const nt_conn_callbacks server_conn_callbacks = {
    server_established, server_closed, link_stream_opened, NULL, NULL, NULL, NULL};

int nt_h3_server_new(nt_h3_server **pserver, const nt_log *log,
                     nt_h3_render_fn render, void *user_data) {
  nt_h3_server *srv = calloc(1, sizeof(*srv));
  *pserver = NULL;
  if (!srv) {
    return NATTER_ERR_NOMEM;
  }
  srv->log = log;
  srv->render = render;
  srv->user_data = user_data;
  LIST_INIT(&srv->links);
  *pserver = srv;
  return 0;
}

void nt_h3_server_free(nt_h3_server *srv) {
  if (!srv) {
    return;
  }
  while (!LIST_EMPTY(&srv->links)) {
    h3_link *l = LIST_FIRST(&srv->links);
    /* The endpoint freed the connection and its streams already. */
    while (!LIST_EMPTY(&l->streams)) {
      stream_free(LIST_FIRST(&l->streams));
    }
    if (l->h3) {
      nghttp3_conn_del(l->h3);
    }
    LIST_REMOVE(l, entry);
    free(l);
  }
  free(srv);
}

void nt_h3_server_set_privileged(nt_h3_server *srv, const uint8_t *own_fp,
                                 const nt_admins *admins) {
  if (own_fp) {
    memcpy(srv->own_fp, own_fp, NT_FINGERPRINT_LEN);
    srv->have_own_fp = 1;
  }
  srv->admins = admins;
}

int nt_h3_server_accept(nt_h3_server *srv, nt_accept_params *params) {
  return nt_h3_server_accept_from(srv, NULL, params);
}

int nt_h3_server_accept_from(nt_h3_server *srv, const struct sockaddr *from,
                             nt_accept_params *params) {
  uint8_t source[NT_SOURCE_KEY_MAX];
  size_t sourcelen = from ? nt_source_key(from, source) : 0;

  if (count_links(srv, LINK_HANDSHAKE, NULL, 0) >= NT_H3_MAX_HANDSHAKES) {
    log_refusal(srv, from,
                STR(NT_H3_MAX_HANDSHAKES) " handshakes are under way");
    return 0;
  }
  if (sourcelen && count_links(srv, LINK_HANDSHAKE, source, sourcelen) >=
                       NT_H3_MAX_PER_ADDRESS) {
    log_refusal(srv, from,
                STR(NT_H3_MAX_PER_ADDRESS) " handshakes from this address "
                                           "are under way");
    return 0;
  }
  h3_link *l = calloc(1, sizeof(*l));
  if (!l) {
    return 0;
  }
  l->stage = LINK_HANDSHAKE;
  memcpy(l->source, source, sourcelen);
  l->sourcelen = sourcelen;
  l->is_server = 1;
  l->log = srv->log;
  l->server = srv;
  LIST_INIT(&l->streams);
  LIST_INSERT_HEAD(&srv->links, l, entry);
  srv->nlinks++;
  params->expected_fp = NULL; /* anyone; the key decides what it reads */
  params->callbacks = &server_conn_callbacks;
  params->user_data = l;
  return 1;
}

/* ---- client ---- */

static void fetch_finish(nt_h3_fetch *f, int error, const char *why) {
  if (f->finished) {
    return;
  }
  f->finished = 1;
  f->done(error, 0, why, strlen(why), f->user_data);
}

static void fetch_established(nt_conn *conn, void *ud) {
  nt_h3_fetch *f = ud;
  h3_link *l = &f->link;
  nt_stream *s;
  h3_stream *hs;

  if (link_start(l, conn) != 0 || nt_conn_open_stream(conn, &s) != 0 ||
      !(hs = stream_add(l, s))) {
    nt_conn_close(conn, H3_INTERNAL_ERROR, "cannot start HTTP/3");
    fetch_finish(f, NATTER_ERR_NOMEM, "cannot start an HTTP/3 request");
    return;
  }
  nghttp3_conn_set_stream_user_data(l->h3, hs->id, hs);
#define NV(n, v)                                                               \
  {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                   \
   NGHTTP3_NV_FLAG_NONE}
  nghttp3_nv nva[] = {NV(":method", "GET"),
                      NV(":scheme", "https"),
                      NV(":authority", f->authority),
                      NV(":path", f->path),
                      NV("accept", f->accept),
                      NV("user-agent", "natter/" NATTER_VERSION_STRING)};
#undef NV
  if (nghttp3_conn_submit_request(
          l->h3, hs->id, nva, sizeof(nva) / sizeof(nva[0]), NULL, NULL) != 0) {
    nt_conn_close(conn, H3_INTERNAL_ERROR, "cannot send the request");
    fetch_finish(f, NATTER_ERR_NOMEM, "cannot send the HTTP/3 request");
    return;
  }
  link_write(l);
}

static void fetch_closed(nt_conn *conn, nt_close_reason reason,
                         uint64_t app_code, const char *message, void *ud) {
  nt_h3_fetch *f = ud;
  char why[400];
  (void)conn;
  (void)app_code;
  link_clear(&f->link);
  snprintf(why, sizeof(why), "%s",
           reason == NT_CLOSE_HANDSHAKE_TIMEOUT || reason == NT_CLOSE_IDLE
               ? "no answer (is natter running there, and is UDP allowed?)"
           : reason == NT_CLOSE_KEY_MISMATCH
               ? "the server's key is not the expected one"
           : reason == NT_CLOSE_TLS
               ? "TLS handshake failed (does it serve HTTP/3 status?)"
           : message && message[0] ? message
                                   : "connection closed before the answer");
  fetch_finish(f,
               reason == NT_CLOSE_HANDSHAKE_TIMEOUT || reason == NT_CLOSE_IDLE
                   ? NATTER_ERR_TIMEOUT
                   : NATTER_ERR_CLOSED,
               why);
}

static const nt_conn_callbacks fetch_conn_callbacks = {
    fetch_established, fetch_closed, link_stream_opened, NULL, NULL, NULL, NULL};

int nt_h3_fetch_start(nt_h3_fetch **pfetch, nt_endpoint *ep,
                      const struct sockaddr *to, socklen_t tolen,
                      const char *path, const char *accept, nt_h3_done_fn done,
                      void *user_data) {
  nt_h3_fetch *f = calloc(1, sizeof(*f));
  *pfetch = NULL;
  if (!f) {
    return NATTER_ERR_NOMEM;
  }
  f->quiet.level = NATTER_LOG_ERROR;
  f->link.log = &f->quiet;
  f->link.fetch = f;
  LIST_INIT(&f->link.streams);
  snprintf(f->path, sizeof(f->path), "%s", path);
  snprintf(f->accept, sizeof(f->accept), "%s", accept);
  nt_addr_str(to, f->authority);
  f->done = done;
  f->user_data = user_data;
  nt_conn *conn;
  int rv = nt_endpoint_connect_h3(ep, to, tolen, NULL, &fetch_conn_callbacks, f,
                                  &conn);
  if (rv != 0) {
    free(f);
    return rv;
  }
  f->link.conn = conn;
  *pfetch = f;
  return 0;
}

void nt_h3_fetch_free(nt_h3_fetch *f) {
  if (!f) {
    return;
  }
  link_clear(&f->link);
  free(f);
}
