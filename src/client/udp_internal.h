/* What udp_flow.c (the flow table, listener flows, datagram dispatch) and
 * udp_forward.c (local sockets, opener flows) share. Nothing else includes
 * this. */
#ifndef NT_UDP_INTERNAL_H
#define NT_UDP_INTERNAL_H

#include <sys/queue.h>
#include <sys/socket.h>

#include "base/budget.h"
#include "client/udp.h"
#include "codec/dgram.h"
#include "codec/wire.h"

typedef enum udp_flow_state {
  F_WAIT_PEER,   /* opener: waits for the peer connection */
  F_WAIT_RESULT, /* opener: StreamOpen sent */
  F_RESOLVING,   /* listener: resolving the target's name */
  F_OPEN,        /* datagrams flow */
  F_REFUSED      /* refused: held (opener) or waiting for the reset */
} udp_flow_state;

typedef struct udp_pending {
  size_t len;
  uint8_t *data;
} udp_pending;

typedef struct udp_flow {
  nt_udp *u;
  int opener;
  udp_flow_state state;
  char peer[NT_NAME_MAX + 1];
  nt_conn *conn;     /* once the stream is open */
  nt_stream *stream; /* NULL once gone */
  int64_t id;        /* the stream's id: the datagrams' flow id */
  uint8_t hdr[8];    /* its encoded header (codec/dgram.h) */
  size_t hdrlen;
  struct event *timer; /* idle (or refusal hold) */
  uint64_t last_ns;    /* last datagram either way */
  /* opener */
  nt_udp_forward *fwd;
  struct sockaddr_storage src; /* the local source */
  socklen_t srclen;
  nt_peer_waiter waiter;
  nt_wire_reader reader;
  udp_pending pending[NT_UDP_PENDING_MAX];
  size_t npending, pending_bytes;
  /* listener */
  int fd; /* connected to the target, or -1 */
  struct event *read_ev;
  struct evdns_getaddrinfo_request *dns_req;
  char host[NT_HOST_MAX + 1];
  uint16_t port;
  LIST_ENTRY(udp_flow) link;     /* u->flows */
  LIST_ENTRY(udp_flow) fwd_link; /* fwd->flows (opener) */
} udp_flow;

LIST_HEAD(udp_flow_list, udp_flow);

struct nt_udp {
  nt_udp_env env;
  struct udp_flow_list flows; /* every flow, both sides */
  nt_udp_counts counts;       /* listener side; forwards keep their own */
  nt_log_gate limit_gate;     /* the per-peer flow limit's log line */
  nt_log_gate big_gate;       /* "too big" lines */
  nt_log_gate refuse_gate;    /* refused flows: a line a second */
  uint8_t rxbuf[NT_DGRAM_MAX_PAYLOAD]; /* one datagram read from a socket */
};

/* A local UDP socket's receive buffer: a burst the loop has not read yet
 * waits here rather than being dropped by the kernel (the kernel caps it
 * at net.core.rmem_max). */
#define NT_UDP_RCVBUF (1024 * 1024)
void nt_udp_socket_buffers(int fd);

/* Flows of |peer| on the side |opener| names. */
size_t nt_udp_flows_of(const nt_udp *u, const char *peer, int opener);
/* Allocates a flow of |u| (on its list). NULL without memory. */
udp_flow *nt_udp_flow_alloc(nt_udp *u, int opener, const char *peer);
/* Ends |flow|: its stream is reset (unless gone), socket closed, freed. */
void nt_udp_flow_end(udp_flow *flow);
/* The stream is open: remembers its id and header. */
void nt_udp_flow_set_stream(udp_flow *flow, nt_stream *stream);
/* Arms the idle timer for |s| seconds from now. */
void nt_udp_flow_arm(udp_flow *flow, uint32_t s);
/* Sends one payload as a DATAGRAM on the flow's connection, counting it
 * in |counts|. Returns 0 when queued. */
int nt_udp_flow_send(udp_flow *flow, const uint8_t *data, size_t len,
                     nt_udp_counts *counts);
/* Opener (udp_forward.c): a datagram for the flow arrived from the peer. */
void nt_udp_forward_deliver(udp_flow *flow, const uint8_t *data, size_t len);
/* Opener: the flow ends for its idle timeout (an event for the owner). */
void nt_udp_forward_flow_idle(udp_flow *flow);
/* Opener: the flow is about to be freed. */
void nt_udp_forward_flow_gone(udp_flow *flow);

#endif
