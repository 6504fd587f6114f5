/* UDP forwarding (doc/design.md, "UDP flows"). Each local source
 * address:port that sends to a UDP forward is one flow: the opener opens a
 * bidirectional stream whose StreamOpen says "udp", the listener checks its
 * -allow-udp rules and answers StreamOpenResult as for TCP, then holds one
 * connected UDP socket to the target for the flow. Datagrams travel both
 * ways in QUIC DATAGRAM frames (codec/dgram.h) that name the flow by its
 * stream id; a lost one is lost. The stream's end ends the flow; a flow
 * with no datagram either way for the idle timeout ends; a peer has at
 * most max_flows flows on each side. Datagrams larger than the path
 * allows are dropped and counted, never split. */
#ifndef NT_UDP_H
#define NT_UDP_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/log.h"
#include "client/peer.h"
#include "codec/stream_header.h"
#include "natter.h"
#include "quic/endpoint.h"
#include "trust/access.h"

struct event_base;
struct evdns_base;

/* Local datagrams waiting for their flow's stream to open, at most (and
 * at most NT_UDP_PENDING_BYTES of them): the first ones (a DNS query, the
 * start of a stream at a fixed rate) must not be lost to the opening. */
#define NT_UDP_PENDING_MAX 64
#define NT_UDP_PENDING_BYTES (64 * 1024)
/* A flow the listener refused holds its source this long (its datagrams
 * dropped) before a datagram from it may ask again. */
#define NT_UDP_REFUSED_HOLD_S 5
/* Datagrams read from one socket per loop pass. */
#define NT_UDP_READ_BATCH 64
/* A flow's idle timeout when the config says 0 (a zero-filled config). */
#define NT_UDP_IDLE_DEFAULT_S 60

typedef struct nt_udp nt_udp;
typedef struct nt_udp_forward nt_udp_forward;

typedef struct nt_udp_env {
  struct event_base *base;
  struct evdns_base *dns;
  const nt_log *log;
  const char *self_name;
  int listen;                  /* serve UDP StreamOpens at all */
  const nt_access *allow_udp;  /* -allow-udp: the only UDP targets */
  uint32_t idle_timeout_s;     /* a flow with no datagram this long ends;
                                  never 0: client.c puts the default */
  uint32_t max_flows_per_peer; /* per side; 0: no limit */
  nt_peers *peers;
} nt_udp_env;

/* Datagram counts, for the forward's log and the metrics. */
typedef struct nt_udp_counts {
  uint64_t sent, received;   /* datagrams local -> peer, peer -> local */
  uint64_t dropped_too_big;  /* larger than the path allows */
  uint64_t dropped_full;     /* the connection's queue was full, or the
                                flow was not open (yet) */
  uint64_t flows_refused;    /* flows over the per-peer limit */
} nt_udp_counts;

/* |env| is copied; what it points to must outlive the table. */
nt_udp *nt_udp_new(const nt_udp_env *env);
/* Ends every flow (streams reset, sockets closed) and frees the table;
 * every nt_udp_forward must be gone already. NULL is a no-op. */
void nt_udp_free(nt_udp *u);
/* The client's totals over every forward and listener flow. */
void nt_udp_get_counts(const nt_udp *u, nt_udp_counts *out);

/* Listener: |peer| (its key as TLS verified it, may be NULL) sent a
 * StreamOpen with udp set on |stream|, already decoded: the flow takes the
 * stream over, answers it and reaches the target, or refuses. */
void nt_udp_accept(nt_udp *u, const char *peer, const uint8_t *key,
                   nt_stream *stream, const nt_open_request *req);

/* A DATAGRAM frame from |conn| (the connection to |peer|). */
void nt_udp_on_datagram(nt_udp *u, nt_conn *conn, const uint8_t *data,
                        size_t len);

/* What a UDP forward reports to its owner (forward.c). */
typedef struct nt_udp_forward_callbacks {
  /* NATTER_EVENT_FORWARD_OPENED, _CLOSED or _FAILED for one flow. */
  void (*event)(natter_event_type type, int error, int quiet,
                const char *message, void *user_data);
} nt_udp_forward_callbacks;

/* Opener: binds |bind| (a UDP address and port) and carries each local
 * source's datagrams to |host|:|port| on |peer|. Counts flows and bytes in
 * |stats| (connections: flows started; active: flows open). Returns 0 or a
 * NATTER_ERR_* with a one-line reason in |err|. */
int nt_udp_forward_new(nt_udp_forward **pf, nt_udp *u, const nt_addr *bind,
                       const char *peer, const char *host, uint16_t port,
                       natter_forward_stats *stats,
                       const nt_udp_forward_callbacks *callbacks,
                       void *user_data, char *err, size_t errlen);
/* Ends its flows and closes its socket. NULL is a no-op. */
void nt_udp_forward_free(nt_udp_forward *f);
/* Its own counts. */
void nt_udp_forward_counts(const nt_udp_forward *f, nt_udp_counts *out);

#endif
