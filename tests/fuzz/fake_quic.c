/* The fake QUIC layer of fake_quic.h. Bounded: at most MAX_CONNS
 * connections and MAX_STREAMS streams each; what our side writes is kept
 * up to MAX_WRITTEN bytes per stream. */
#include "fake_quic.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS 32
#define MAX_STREAMS 64
#define MAX_WRITTEN 65536
#define MAGIC_CONN 0x66616b65636f6e6eull
#define MAGIC_STREAM 0x66616b6573747265ull

typedef struct fake_stream {
  uint64_t magic;
  fake_conn *conn;
  int64_t id;
  const nt_stream_callbacks *cbs;
  void *ud;
  int peer_fin; /* the peer ended its direction */
  int our_fin;  /* we ended ours */
  int reset;    /* our side reset it: closed on settle */
  uint8_t *written;
  size_t nwritten;
} fake_stream;

struct fake_conn {
  uint64_t magic;
  int server;
  struct sockaddr_storage remote;
  struct sockaddr_storage validated; /* where the peer was proved to be */
  nt_addr local; /* where its packets arrive: unknown (len 0) */
  uint8_t fp[NT_FINGERPRINT_LEN];
  int has_fp;
  const nt_conn_callbacks *cbs;
  void *ud;
  int closing; /* our side closed it: closed on settle */
  fake_stream *streams[MAX_STREAMS];
  size_t nstreams;
  int64_t next_peer_bidi, next_peer_uni, next_our_bidi, next_our_uni;
};

static fake_conn *conns[MAX_CONNS];
static size_t nconns;
static fake_conn *last_connect;

static fake_conn *as_fake_conn(const void *p) {
  for (size_t i = 0; i < nconns; i++) {
    if ((const void *)conns[i] == p) {
      return conns[i];
    }
  }
  return NULL;
}

static fake_stream *as_fake_stream(const void *p) {
  for (size_t i = 0; i < nconns; i++) {
    for (size_t j = 0; j < conns[i]->nstreams; j++) {
      if ((const void *)conns[i]->streams[j] == p) {
        return conns[i]->streams[j];
      }
    }
  }
  return NULL;
}

fake_conn *fake_conn_new(int server, const struct sockaddr *remote,
                         const uint8_t *fp, const nt_conn_callbacks *cbs,
                         void *ud) {
  if (nconns == MAX_CONNS) {
    return NULL;
  }
  fake_conn *fc = calloc(1, sizeof(*fc));
  if (!fc) {
    return NULL;
  }
  fc->magic = MAGIC_CONN;
  fc->server = server;
  memcpy(&fc->remote, remote,
         remote->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in));
  fc->validated = fc->remote;
  if (fp) {
    memcpy(fc->fp, fp, sizeof(fc->fp));
    fc->has_fp = 1;
  }
  fc->cbs = cbs;
  fc->ud = ud;
  /* RFC 9000 §2.1: the low bits say who opened it and which kind. */
  fc->next_peer_bidi = server ? 0 : 1;
  fc->next_peer_uni = server ? 2 : 3;
  fc->next_our_bidi = server ? 1 : 0;
  fc->next_our_uni = server ? 3 : 2;
  conns[nconns++] = fc;
  return fc;
}

nt_conn *fake_conn_handle(fake_conn *fc) {
  return (nt_conn *)fc;
}

void fake_conn_set_callbacks(fake_conn *fc, const nt_conn_callbacks *cbs,
                             void *ud) {
  fc->cbs = cbs;
  fc->ud = ud;
}

static fake_stream *stream_new(fake_conn *fc, int64_t id) {
  if (fc->nstreams == MAX_STREAMS) {
    return NULL;
  }
  fake_stream *s = calloc(1, sizeof(*s));
  if (!s) {
    return NULL;
  }
  s->magic = MAGIC_STREAM;
  s->conn = fc;
  s->id = id;
  fc->streams[fc->nstreams++] = s;
  return s;
}

static fake_stream *find_stream(fake_conn *fc, int64_t id) {
  for (size_t i = 0; i < fc->nstreams; i++) {
    if (fc->streams[i]->id == id) {
      return fc->streams[i];
    }
  }
  return NULL;
}

/* Unlinks and frees |s| after telling its owner, as QUIC does. */
static void stream_finish(fake_stream *s, int reset, uint64_t code) {
  fake_conn *fc = s->conn;
  for (size_t i = 0; i < fc->nstreams; i++) {
    if (fc->streams[i] == s) {
      fc->streams[i] = fc->streams[--fc->nstreams];
      break;
    }
  }
  if (s->cbs && s->cbs->closed) {
    s->cbs->closed((nt_stream *)s, reset, code, s->ud);
  }
  free(s->written);
  s->magic = 0;
  free(s);
}

static int is_uni(int64_t id) {
  return (id & 2) != 0;
}

static int opened_by_us(const fake_conn *fc, int64_t id) {
  return (int)(id & 1) == (fc->server ? 1 : 0);
}

/* Both directions done (a unidirectional stream has one). */
static int stream_done(const fake_stream *s) {
  if (is_uni(s->id)) {
    return opened_by_us(s->conn, s->id) ? s->our_fin : s->peer_fin;
  }
  return s->our_fin && s->peer_fin;
}

int fake_conn_established(fake_conn *fc) {
  if (fc->closing) {
    return -1;
  }
  if (fc->cbs && fc->cbs->established) {
    fc->cbs->established((nt_conn *)fc, fc->ud);
  }
  return 0;
}

int fake_conn_peer_open(fake_conn *fc, int uni, int64_t *id) {
  if (fc->closing) {
    return -1;
  }
  int64_t *next = uni ? &fc->next_peer_uni : &fc->next_peer_bidi;
  fake_stream *s = stream_new(fc, *next);
  if (!s) {
    return -1;
  }
  *id = *next;
  *next += 4;
  if (fc->cbs && fc->cbs->stream_opened) {
    fc->cbs->stream_opened((nt_conn *)fc, (nt_stream *)s, fc->ud);
  }
  return 0;
}

int fake_conn_peer_send(fake_conn *fc, int64_t id, const uint8_t *data,
                        size_t len, int fin) {
  fake_stream *s = fc->closing ? NULL : find_stream(fc, id);
  if (!s || s->reset || s->peer_fin || (is_uni(id) && opened_by_us(fc, id))) {
    return -1; /* QUIC drops it, or closes the connection */
  }
  s->peer_fin = fin;
  if (s->cbs && s->cbs->recv) {
    s->cbs->recv((nt_stream *)s, data, len, fin, s->ud);
  }
  return 0;
}

int fake_conn_peer_reset(fake_conn *fc, int64_t id, uint64_t code) {
  fake_stream *s = fc->closing ? NULL : find_stream(fc, id);
  if (!s) {
    return -1;
  }
  stream_finish(s, 1, code);
  return 0;
}

int fake_conn_peer_spoof(fake_conn *fc, const struct sockaddr *remote) {
  if (fc->closing) {
    return -1;
  }
  memset(&fc->remote, 0, sizeof(fc->remote));
  memcpy(&fc->remote, remote,
         remote->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in));
  return 0;
}

int fake_conn_peer_move(fake_conn *fc, const struct sockaddr *remote) {
  if (fake_conn_peer_spoof(fc, remote) != 0) {
    return -1;
  }
  fc->validated = fc->remote; /* path validation succeeded */
  if (fc->cbs && fc->cbs->moved) {
    fc->cbs->moved((nt_conn *)fc, fc->ud);
  }
  return 0;
}

static void conn_finish(fake_conn *fc, nt_close_reason reason, uint64_t code,
                        const char *message) {
  for (size_t i = 0; i < nconns; i++) {
    if (conns[i] == fc) {
      conns[i] = conns[--nconns];
      break;
    }
  }
  /* Still findable by the callbacks below (they may call nt_conn_*):
   * keep it in a slot of its own until they return. */
  conns[nconns++] = fc;
  while (fc->nstreams) {
    stream_finish(fc->streams[0], 1, 0);
  }
  if (fc->cbs && fc->cbs->closed) {
    fc->cbs->closed((nt_conn *)fc, reason, code, message, fc->ud);
  }
  for (size_t i = 0; i < nconns; i++) {
    if (conns[i] == fc) {
      conns[i] = conns[--nconns];
      break;
    }
  }
  if (last_connect == fc) {
    last_connect = NULL;
  }
  fc->magic = 0;
  free(fc);
}

void fake_conn_peer_close(fake_conn *fc, uint64_t code) {
  conn_finish(fc, fc->closing ? NT_CLOSE_LOCAL : NT_CLOSE_PEER, code, "");
}

int64_t fake_conn_stream_at(fake_conn *fc, size_t i) {
  return i < fc->nstreams ? fc->streams[i]->id : -1;
}

size_t fake_conn_nstreams(fake_conn *fc) {
  return fc->nstreams;
}

int fake_conn_closed(const fake_conn *fc) {
  return fc->closing;
}

const uint8_t *fake_conn_written(fake_conn *fc, int64_t id, size_t *len) {
  fake_stream *s = find_stream(fc, id);
  if (!s) {
    return NULL;
  }
  *len = s->nwritten;
  return s->written;
}

void fake_quic_settle(void) {
  for (int again = 1; again;) {
    again = 0;
    for (size_t i = 0; i < nconns && !again; i++) {
      fake_conn *fc = conns[i];
      if (fc->closing) {
        conn_finish(fc, NT_CLOSE_LOCAL, 0, "");
        again = 1;
        break;
      }
      for (size_t j = 0; j < fc->nstreams; j++) {
        fake_stream *s = fc->streams[j];
        if (s->reset || stream_done(s)) {
          stream_finish(s, s->reset, 0);
          again = 1;
          break;
        }
      }
    }
  }
}

void fake_quic_close_all(void) {
  fake_quic_settle();
  while (nconns) {
    conn_finish(conns[nconns - 1], NT_CLOSE_PEER, 0, "");
  }
}

int fake_quic_alive(const fake_conn *fc) {
  return as_fake_conn(fc) != NULL;
}

size_t fake_quic_nconns(void) {
  return nconns;
}

fake_conn *fake_quic_last_connect(void) {
  return last_connect;
}

/* ---- the wrapped functions (-Wl,--wrap=NAME) ---- */

void __real_nt_conn_close(nt_conn *conn, uint64_t app_code, const char *reason);
const struct sockaddr *__real_nt_conn_remote_addr(const nt_conn *conn);
const struct sockaddr *__real_nt_conn_validated_addr(const nt_conn *conn);
const nt_addr *__real_nt_conn_local_addr(const nt_conn *conn);
uint64_t __real_nt_conn_last_rx_ns(const nt_conn *conn);
void __real_nt_conn_get_path_stats(const nt_conn *conn,
                                   nt_conn_path_stats *out);
const uint8_t *__real_nt_conn_peer_fingerprint(const nt_conn *conn);
int __real_nt_conn_open_stream(nt_conn *conn, nt_stream **pstream);
int __real_nt_conn_open_uni_stream(nt_conn *conn, nt_stream **pstream);
void __real_nt_stream_set_callbacks(nt_stream *stream,
                                    const nt_stream_callbacks *callbacks,
                                    void *user_data);
nt_conn *__real_nt_stream_conn(const nt_stream *stream);
int64_t __real_nt_stream_id(const nt_stream *stream);
int __real_nt_stream_write(nt_stream *stream, const uint8_t *data, size_t len);
void __real_nt_stream_shutdown_write(nt_stream *stream);
void __real_nt_stream_reset(nt_stream *stream, uint64_t app_code);
void __real_nt_stream_consume(nt_stream *stream, size_t n);
int __real_nt_endpoint_connect_h3(nt_endpoint *ep, const struct sockaddr *to,
                                  socklen_t tolen, const uint8_t *expected_fp,
                                  const nt_conn_callbacks *callbacks,
                                  void *user_data, nt_conn **pconn);

void __wrap_nt_conn_close(nt_conn *conn, uint64_t app_code, const char *reason);
const struct sockaddr *__wrap_nt_conn_remote_addr(const nt_conn *conn);
const struct sockaddr *__wrap_nt_conn_validated_addr(const nt_conn *conn);
const nt_addr *__wrap_nt_conn_local_addr(const nt_conn *conn);
uint64_t __wrap_nt_conn_last_rx_ns(const nt_conn *conn);
void __wrap_nt_conn_get_path_stats(const nt_conn *conn,
                                   nt_conn_path_stats *out);
const uint8_t *__wrap_nt_conn_peer_fingerprint(const nt_conn *conn);
int __wrap_nt_conn_open_stream(nt_conn *conn, nt_stream **pstream);
int __wrap_nt_conn_open_uni_stream(nt_conn *conn, nt_stream **pstream);
void __wrap_nt_stream_set_callbacks(nt_stream *stream,
                                    const nt_stream_callbacks *callbacks,
                                    void *user_data);
nt_conn *__wrap_nt_stream_conn(const nt_stream *stream);
int64_t __wrap_nt_stream_id(const nt_stream *stream);
int __wrap_nt_stream_write(nt_stream *stream, const uint8_t *data, size_t len);
void __wrap_nt_stream_shutdown_write(nt_stream *stream);
void __wrap_nt_stream_reset(nt_stream *stream, uint64_t app_code);
void __wrap_nt_stream_consume(nt_stream *stream, size_t n);
int __wrap_nt_endpoint_connect_h3(nt_endpoint *ep, const struct sockaddr *to,
                                  socklen_t tolen, const uint8_t *expected_fp,
                                  const nt_conn_callbacks *callbacks,
                                  void *user_data, nt_conn **pconn);

void __wrap_nt_conn_close(nt_conn *conn, uint64_t app_code,
                          const char *reason) {
  fake_conn *fc = as_fake_conn(conn);
  if (!fc) {
    __real_nt_conn_close(conn, app_code, reason);
    return;
  }
  if (reason == NULL || strlen(reason) > 1024) {
    abort(); /* a reason is a short line */
  }
  fc->closing = 1;
}

const struct sockaddr *__wrap_nt_conn_remote_addr(const nt_conn *conn) {
  fake_conn *fc = as_fake_conn(conn);
  return fc ? (const struct sockaddr *)&fc->remote
            : __real_nt_conn_remote_addr(conn);
}

const struct sockaddr *__wrap_nt_conn_validated_addr(const nt_conn *conn) {
  fake_conn *fc = as_fake_conn(conn);
  return fc ? (const struct sockaddr *)&fc->validated
            : __real_nt_conn_validated_addr(conn);
}

const nt_addr *__wrap_nt_conn_local_addr(const nt_conn *conn) {
  fake_conn *fc = as_fake_conn(conn);
  return fc ? &fc->local : __real_nt_conn_local_addr(conn);
}

uint64_t __wrap_nt_conn_last_rx_ns(const nt_conn *conn) {
  fake_conn *fc = as_fake_conn(conn);
  return fc ? 1 : __real_nt_conn_last_rx_ns(conn);
}

void __wrap_nt_conn_get_path_stats(const nt_conn *conn,
                                   nt_conn_path_stats *out) {
  fake_conn *fc = as_fake_conn(conn);
  if (!fc) {
    __real_nt_conn_get_path_stats(conn, out);
    return;
  }
  memset(out, 0, sizeof(*out));
}

const uint8_t *__wrap_nt_conn_peer_fingerprint(const nt_conn *conn) {
  fake_conn *fc = as_fake_conn(conn);
  if (!fc) {
    return __real_nt_conn_peer_fingerprint(conn);
  }
  return fc->has_fp ? fc->fp : NULL;
}

static int open_ours(fake_conn *fc, int uni, nt_stream **pstream) {
  if (fc->closing) {
    return NATTER_ERR_CLOSED;
  }
  int64_t *next = uni ? &fc->next_our_uni : &fc->next_our_bidi;
  fake_stream *s = stream_new(fc, *next);
  if (!s) {
    return NT_STREAMS_BLOCKED;
  }
  *next += 4;
  *pstream = (nt_stream *)s;
  return 0;
}

int __wrap_nt_conn_open_stream(nt_conn *conn, nt_stream **pstream) {
  fake_conn *fc = as_fake_conn(conn);
  return fc ? open_ours(fc, 0, pstream)
            : __real_nt_conn_open_stream(conn, pstream);
}

int __wrap_nt_conn_open_uni_stream(nt_conn *conn, nt_stream **pstream) {
  fake_conn *fc = as_fake_conn(conn);
  return fc ? open_ours(fc, 1, pstream)
            : __real_nt_conn_open_uni_stream(conn, pstream);
}

void __wrap_nt_stream_set_callbacks(nt_stream *stream,
                                    const nt_stream_callbacks *callbacks,
                                    void *user_data) {
  fake_stream *s = as_fake_stream(stream);
  if (!s) {
    __real_nt_stream_set_callbacks(stream, callbacks, user_data);
    return;
  }
  s->cbs = callbacks;
  s->ud = user_data;
}

nt_conn *__wrap_nt_stream_conn(const nt_stream *stream) {
  fake_stream *s = as_fake_stream(stream);
  return s ? (nt_conn *)s->conn : __real_nt_stream_conn(stream);
}

int64_t __wrap_nt_stream_id(const nt_stream *stream) {
  fake_stream *s = as_fake_stream(stream);
  return s ? s->id : __real_nt_stream_id(stream);
}

int __wrap_nt_stream_write(nt_stream *stream, const uint8_t *data, size_t len) {
  fake_stream *s = as_fake_stream(stream);
  if (!s) {
    return __real_nt_stream_write(stream, data, len);
  }
  if (s->our_fin || (is_uni(s->id) && !opened_by_us(s->conn, s->id))) {
    abort(); /* writing where QUIC never could */
  }
  if (s->reset || s->conn->closing) {
    return NATTER_ERR_CLOSED; /* as a real closing stream */
  }
  size_t keep =
      s->nwritten + len > MAX_WRITTEN ? MAX_WRITTEN - s->nwritten : len;
  if (keep) {
    uint8_t *grown = realloc(s->written, s->nwritten + keep);
    if (!grown) {
      return NATTER_ERR_NOMEM;
    }
    memcpy(grown + s->nwritten, data, keep);
    s->written = grown;
    s->nwritten += keep;
  }
  return 0;
}

void __wrap_nt_stream_shutdown_write(nt_stream *stream) {
  fake_stream *s = as_fake_stream(stream);
  if (!s) {
    __real_nt_stream_shutdown_write(stream);
    return;
  }
  s->our_fin = 1;
}

void __wrap_nt_stream_reset(nt_stream *stream, uint64_t app_code) {
  fake_stream *s = as_fake_stream(stream);
  if (!s) {
    __real_nt_stream_reset(stream, app_code);
    return;
  }
  s->reset = 1;
}

void __wrap_nt_stream_consume(nt_stream *stream, size_t n) {
  fake_stream *s = as_fake_stream(stream);
  if (!s) {
    __real_nt_stream_consume(stream, n);
  }
}

int __wrap_nt_endpoint_connect_h3(nt_endpoint *ep, const struct sockaddr *to,
                                  socklen_t tolen, const uint8_t *expected_fp,
                                  const nt_conn_callbacks *callbacks,
                                  void *user_data, nt_conn **pconn) {
  if (ep) {
    return __real_nt_endpoint_connect_h3(ep, to, tolen, expected_fp, callbacks,
                                         user_data, pconn);
  }
  fake_conn *fc = fake_conn_new(0, to, NULL, callbacks, user_data);
  if (!fc) {
    return NATTER_ERR_NOMEM;
  }
  last_connect = fc;
  *pconn = (nt_conn *)fc;
  return 0;
}
