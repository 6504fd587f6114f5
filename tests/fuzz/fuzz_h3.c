/* libFuzzer target: the HTTP/3 status pages (src/status/h3.c) as a
 * status reader (anyone who can reach the port; a key is optional) or,
 * for natter -status, the server it asks, may drive them: any streams,
 * any bytes on them, resets, a close, in any order. QUIC is
 * tests/fuzz/fake_quic.c, so each input is one connection from its
 * first stream on. The input is a program:
 *
 *   byte 0   bit 0: we are the client (a fetch), else the server;
 *            bit 1: the peer shows no certificate
 *   then operations:
 *     0        the peer opens a bidirectional stream (a request)
 *     1        the peer opens a unidirectional stream (control, QPACK)
 *     2 I N .. N bytes on stream I (of those the peer opened, and in a
 *              fetch our request stream); 3 the same with FIN
 *     4 I C    the peer resets stream I
 *     5        the peer closes the connection (the end)
 *
 * Checked: no crash, leak or undefined behaviour; the page renderer gets
 * a bounded path and accept header; a fetch reports exactly once, with
 * at most NT_H3_MAX_BODY bytes. */
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_quic.h"
#include "status/h3.h"

#define MAX_IDS 64

static void sink(natter_log_level level, const char *line, void *ud) {
  (void)level;
  (void)ud;
  if (strlen(line) > 4096) {
    abort();
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
  static nt_log log = {sink, NATTER_LOG_DEBUG, NULL};
  static const uint8_t key[NT_FINGERPRINT_LEN] = {1, 2, 3};
  int64_t ids[MAX_IDS];
  size_t nids = 0, pos = 0;
  fetch_seen fs = {0};
  nt_h3_fetch *fetch = NULL;
  fake_conn *fc = NULL;

  if (!srv && nt_h3_server_new(&srv, &log, render, NULL) != 0) {
    abort();
  }
  if (size < 1) {
    return 0;
  }
  uint8_t flags = data[pos++];
  struct sockaddr_in peer;
  memset(&peer, 0, sizeof(peer));
  peer.sin_family = AF_INET;
  peer.sin_port = htons(4433);
  peer.sin_addr.s_addr = htonl(0xc6336407); /* 198.51.100.7 */

  if (flags & 1) {
    if (nt_h3_fetch_start(&fetch, NULL, (struct sockaddr *)&peer, sizeof(peer),
                          "/status", "application/json", fetch_done,
                          &fs) != 0 ||
        !(fc = fake_quic_last_connect())) {
      abort();
    }
  } else {
    nt_accept_params params;
    memset(&params, 0, sizeof(params));
    if (!nt_h3_server_accept(srv, &params) ||
        !(fc = fake_conn_new(1, (struct sockaddr *)&peer,
                             (flags & 2) ? NULL : key, params.callbacks,
                             params.user_data))) {
      abort();
    }
  }
  fake_conn_established(fc);
  fake_quic_settle();
  if (fetch && fake_quic_alive(fc) && fake_conn_nstreams(fc) > 0) {
    ids[nids++] = 0; /* our request stream: the response comes on it */
  }

  while (pos < size && fake_quic_alive(fc)) {
    uint8_t op = data[pos++] % 6;
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
