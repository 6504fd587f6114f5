/* libFuzzer target: the HTTP/3 status pages (src/status/h3.c) as a
 * status reader (anyone who can reach the port; a key is optional) or,
 * for natter -status, the server it asks, may drive them: any streams,
 * any bytes on them, resets, a close, in any order. QUIC is
 * tests/fuzz/fake_quic.c, so each input is one connection from its
 * first stream on. The input is a program:
 *
 *   byte 0   bit 0: we are the client (a fetch), else the server;
 *            bit 1: the peer shows no certificate; bits 2-3: the
 *            server's reader comes from address (bits 2-3) of NADDRS
 *            (six IPv4 addresses, two of one IPv6 /64) with key
 *            (bits 4-5) of NKEYS (another's, the server's own, an
 *            -admin key, another's)
 *   then operations:
 *     0        the peer opens a bidirectional stream (a request)
 *     1        the peer opens a unidirectional stream (control, QPACK)
 *     2 I N .. N bytes on stream I (of those the peer opened, and in a
 *              fetch our request stream); 3 the same with FIN
 *     4 I C    the peer resets stream I
 *     5        the peer closes the connection (the end)
 *     6 A K    (server) another reader comes from address A with key K
 *              (K % 5 == 4: none), its handshake done unless bit 7 of K
 *              (NT_H3_MAX_* limits: handshakes, readers, per address,
 *              privileged slots)
 *     7 I      (server) other reader I's handshake ends, or it leaves
 *
 * Checked: no crash, leak or undefined behaviour; the page renderer gets
 * a bounded path and accept header; a fetch reports exactly once, with
 * at most NT_H3_MAX_BODY bytes; each input's readers leave with it (the
 * next input's first reader is admitted again). */
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_quic.h"
#include "fuzz_log.h"
#include "status/h3.h"

#define MAX_IDS 64
#define MAX_OTHERS 24 /* with the one the input drives: within MAX_CONNS */
#define NADDRS 8
#define NKEYS 4

static const uint8_t keys[NKEYS][NT_FINGERPRINT_LEN] = {
    {1, 2, 3}, {0x5e, 0x1f}, {0xad, 0x11}, {4, 5, 6}};

static void reader_addr(unsigned i, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (i % NADDRS >= NADDRS - 2) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(4433);
    in6->sin6_addr.s6_addr[0] = 0x20;
    in6->sin6_addr.s6_addr[1] = 0x01;
    in6->sin6_addr.s6_addr[2] = 0x0d;
    in6->sin6_addr.s6_addr[3] = 0xb8;
    in6->sin6_addr.s6_addr[15] = (uint8_t)i; /* one /64 */
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(4433);
    in->sin_addr.s_addr = htonl(0xc6336407 + (i % NADDRS)); /* 198.51.100.7 */
  }
}

static int render(struct evbuffer *body, const char *path, const char *accept,
                  const uint8_t *peer_fp, const char **content_type, void *ud) {
  (void)peer_fp;
  (void)ud;
  if (strlen(path) >= 256 || strlen(accept) >= 128) {
    abort();
  }
  if (getenv("FUZZ_VERBOSE")) {
    fprintf(stderr, "render %s (accept %s)\n", path, accept);
  }
  *content_type = "text/plain; charset=utf-8";
  evbuffer_add_printf(body, "status of %s for %s\n", path, accept);
  return strcmp(path, "/") == 0 ? 200 : 404;
}

typedef struct fetch_seen {
  int calls;
} fetch_seen;

static void fetch_done(int error, int status, const char *body, size_t len,
                       void *ud) {
  fetch_seen *fs = ud;
  if (getenv("FUZZ_VERBOSE")) {
    fprintf(stderr, "fetch done: %d %d %.*s\n", error, status, (int)len, body);
  }
  if (++fs->calls > 1 || len > NT_H3_MAX_BODY || (len && !body) ||
      (error && strlen(body) != len)) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static nt_h3_server *srv;
  static nt_log log = {fuzz_log_sink, NATTER_LOG_DEBUG, (void *)"h3"};
  static nt_admins admins;
  int64_t ids[MAX_IDS];
  fake_conn *others[MAX_OTHERS];
  int other_up[MAX_OTHERS];
  size_t nothers = 0;
  size_t nids = 0, pos = 0;
  fetch_seen fs = {0};
  nt_h3_fetch *fetch = NULL;
  fake_conn *fc = NULL;

  if (!srv) {
    if (nt_h3_server_new(&srv, &log, render, NULL) != 0) {
      abort();
    }
    memcpy(admins.fp[0], keys[2], NT_FINGERPRINT_LEN);
    admins.n = 1;
    nt_h3_server_set_privileged(srv, keys[1], &admins);
  }
  if (size < 1) {
    return 0;
  }
  uint8_t flags = data[pos++];
  struct sockaddr_storage peer;
  reader_addr((flags >> 2) & 3, &peer);
  socklen_t peerlen = peer.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);

  if (flags & 1) {
    if (nt_h3_fetch_start(&fetch, NULL, (struct sockaddr *)&peer, peerlen,
                          "/status", "application/json", fetch_done,
                          &fs) != 0 ||
        !(fc = fake_quic_last_connect())) {
      abort();
    }
  } else {
    nt_accept_params params;
    memset(&params, 0, sizeof(params));
    /* The readers of earlier inputs have left: this one has a slot. */
    if (!nt_h3_server_accept_from(srv, (struct sockaddr *)&peer, &params) ||
        !(fc = fake_conn_new(1, (struct sockaddr *)&peer,
                             (flags & 2) ? NULL : keys[(flags >> 4) & 3],
                             params.callbacks, params.user_data))) {
      abort();
    }
  }
  fake_conn_established(fc);
  fake_quic_settle();
  if (fetch && fake_quic_alive(fc) && fake_conn_nstreams(fc) > 0) {
    ids[nids++] = 0; /* our request stream: the response comes on it */
  }

  while (pos < size && fake_quic_alive(fc)) {
    uint8_t op = data[pos++] % 8;
    int64_t id;
    if (op <= 1) {
      if (fake_conn_peer_open(fc, op, &id) == 0 && nids < MAX_IDS) {
        ids[nids++] = id;
      }
    } else if ((op == 2 || op == 3) && size - pos >= 2 && nids) {
      id = ids[data[pos++] % nids];
      size_t n = data[pos++];
      n = n < size - pos ? n : size - pos;
      fake_conn_peer_send(fc, id, data + pos, n, op == 3);
      pos += n;
    } else if (op == 4 && size - pos >= 2 && nids) {
      id = ids[data[pos++] % nids];
      fake_conn_peer_reset(fc, id, 0x100 + data[pos++]);
    } else if (op == 5) {
      fake_conn_peer_close(fc, 0x100);
      break;
    } else if (op == 6 && size - pos >= 2 && !fetch) {
      uint8_t a = data[pos++], k = data[pos++];
      struct sockaddr_storage from;
      nt_accept_params params;
      memset(&params, 0, sizeof(params));
      reader_addr(a, &from);
      if (nothers < MAX_OTHERS &&
          nt_h3_server_accept_from(srv, (struct sockaddr *)&from, &params)) {
        fake_conn *o = fake_conn_new(1, (struct sockaddr *)&from,
                                     k % 5 == 4 ? NULL : keys[k % 5],
                                     params.callbacks, params.user_data);
        if (!o) {
          abort(); /* within MAX_CONNS */
        }
        for (size_t j = 0; j < nothers; j++) {
          if (others[j] == o) {
            others[j] = NULL; /* that one is gone; its memory is o's */
          }
        }
        others[nothers] = o;
        other_up[nothers] = !(k & 0x80);
        if (other_up[nothers]) {
          fake_conn_established(o);
        }
        nothers++;
      }
    } else if (op == 7 && size - pos >= 1 && !fetch) {
      size_t i = data[pos++];
      if (i < nothers && others[i] && fake_quic_alive(others[i])) {
        if (!other_up[i]) {
          other_up[i] = 1;
          fake_conn_established(others[i]);
        } else {
          fake_conn_peer_close(others[i], 0x100);
        }
      }
    } else {
      break;
    }
    fake_quic_settle();
  }
  fake_quic_close_all();
  if (fetch) {
    if (fs.calls != 1) {
      abort(); /* a fetch always ends with an answer or a reason */
    }
    nt_h3_fetch_free(fetch);
  }
  return 0;
}
