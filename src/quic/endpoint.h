/* One UDP socket and the QUIC connections on it. The endpoint reads
 * datagrams, hands each to the connection its destination connection ID
 * names, offers unknown Initials to its owner (accept) and passes non-QUIC
 * datagrams (hole-punching probes) to its owner unchanged. Every connection
 * of a client shares this socket: that is what makes the address the broker
 * observed the address peers can reach. */
#ifndef NT_ENDPOINT_H
#define NT_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/addr.h"
#include "base/log.h"
#include "trust/tls.h"

struct event_base;

typedef struct nt_endpoint nt_endpoint;
typedef struct nt_conn nt_conn;
typedef struct nt_stream nt_stream;

/* Why a connection ended, as passed to nt_conn_callbacks.closed. */
typedef enum nt_close_reason {
  NT_CLOSE_LOCAL = 0,       /* nt_conn_close or nt_endpoint_free */
  NT_CLOSE_PEER,            /* the peer closed it (reason in the message) */
  NT_CLOSE_IDLE,            /* idle timeout: the peer went silent */
  NT_CLOSE_HANDSHAKE_TIMEOUT,
  NT_CLOSE_KEY_MISMATCH,    /* the peer's key is not the expected one */
  NT_CLOSE_TLS,             /* other handshake failure */
  NT_CLOSE_REFUSED,         /* the server refused it before the handshake
                               (a limit): the reason is in the message */
  NT_CLOSE_ERROR            /* protocol or internal error */
} nt_close_reason;

typedef struct nt_conn_callbacks {
  /* Handshake done and the peer key verified. */
  void (*established)(nt_conn *conn, void *user_data);
  /* The connection is gone; |conn| is invalid once this returns. Called
   * exactly once per connection, always from the event loop. |app_code| and
   * |message| come from the peer's CONNECTION_CLOSE when reason is
   * NT_CLOSE_PEER (message may be ""). */
  void (*closed)(nt_conn *conn, nt_close_reason reason, uint64_t app_code,
                 const char *message, void *user_data);
  /* The peer opened |stream|. The callee sets stream callbacks with
   * nt_stream_set_callbacks, or resets the stream. */
  void (*stream_opened)(nt_conn *conn, nt_stream *stream, void *user_data);
  /* The peer allows more streams: nt_conn_open_stream may work again
   * after it returned NT_STREAMS_BLOCKED. May be NULL. From the loop. */
  void (*streams_available)(nt_conn *conn, void *user_data);
  /* Nothing authenticated came from the peer for |silent_ms| while streams
   * are open or data is in flight (about 1.5 s plus 3 PTO): its address
   * may have changed. Repeated about every 2 s while it lasts. May be
   * NULL (then nothing is watched). From the loop. */
  void (*silent)(nt_conn *conn, uint64_t silent_ms, void *user_data);
  /* The connection now uses another remote address (validated, or the
   * server's rebinding); nt_conn_remote_addr() has it. May be NULL. */
  void (*moved)(nt_conn *conn, void *user_data);
  /* One QUIC DATAGRAM frame's payload (RFC 9221), whole. May be NULL
   * (then datagrams are dropped). Called while the packet is read: the
   * callee must not close the connection from here. */
  void (*datagram)(nt_conn *conn, const uint8_t *data, size_t len,
                   void *user_data);
} nt_conn_callbacks;

typedef struct nt_accept_params {
  const uint8_t *expected_fp; /* NULL: any key (read it after handshake) */
  const nt_conn_callbacks *callbacks;
  void *user_data;
  /* Refusing (accept returns 0): a one-line reason to send back in a
   * stateless CONNECTION_CLOSE (CONNECTION_REFUSED), so an honest client
   * learns which limit it hit; NULL drops the packet silently. Static or
   * owned by the callee until the next accept call. */
  const char *refuse_reason;
} nt_accept_params;

typedef struct nt_endpoint_callbacks {
  /* A QUIC Initial from an unknown |from|. Return 1 after filling |params|
   * to accept it as a server-side connection, 0 to drop it (or refuse it,
   * with params->refuse_reason). */
  int (*accept)(nt_endpoint *ep, const struct sockaddr *from,
                nt_accept_params *params, void *user_data);
  /* A datagram too short to be QUIC for us (under 34 bytes): hole-punching
   * probes are. |sock| names the socket it came in on: 0 the endpoint's
   * own, else an extra one (nt_endpoint_aux_open). */
  void (*datagram)(nt_endpoint *ep, const uint8_t *data, size_t len,
                   const struct sockaddr *from, socklen_t fromlen, int sock,
                   void *user_data);
  /* Optional, asked first for every new Initial, before any state is
   * made: return 1 to go on, or 0 to drop it (with *refuse_reason set, it
   * is refused statelessly with that reason; see nt_accept_params). */
  int (*admit)(nt_endpoint *ep, const struct sockaddr *from,
               const char **refuse_reason, void *user_data);
  /* Relay (relay_wire.h), may be NULL: a QUIC Initial that came through
   * the broker's relay on the channel |token| names. Return 1 after
   * filling |params| to accept it, 0 to drop it. */
  int (*accept_relayed)(nt_endpoint *ep, const uint8_t *token,
                        nt_accept_params *params, void *user_data);
  /* The relay echoed a bind (NT_RELAY_BIND) or closed the channel
   * (NT_RELAY_CLOSED, |reason| NT_RELAY_CLOSED_*). May be NULL. */
  void (*relay_signal)(nt_endpoint *ep, int type, const uint8_t *token,
                       int reason, void *user_data);
} nt_endpoint_callbacks;

typedef struct nt_endpoint_config {
  nt_addr bind;                /* local address to bind; port 0: any */
  int dual_stack;              /* with an unspecified |bind| address: one
                                  socket for IPv4 and IPv6 (udpsock.h) */
  nt_identity *identity;       /* borrowed; must outlive the endpoint */
  const nt_endpoint_callbacks *callbacks;
  void *user_data;
  const nt_log *log;           /* borrowed */
  uint64_t handshake_timeout_ms;
  uint64_t idle_timeout_ms;    /* RFC 9000 §10.1 max_idle_timeout */
  uint64_t keepalive_ms;       /* PING when quiet this long; 0: none */
  unsigned retry_above_per_s;  /* more new connections a second than this
                                  get a QUIC Retry first; 0: never */
  int rcvbuf_bytes;            /* socket receive buffer wanted; 0: 4 MiB */
  uint32_t max_streams_bidi;   /* streams a peer may open at once; 0: 256 */
  int small_packets;           /* never the 64 KiB loopback datagrams, and
                                  ask peers for none: a broker's thousands
                                  of connections then keep small receive
                                  buffers (ngtcp2 sizes them by the
                                  largest packet seen) */
  /* Optional: serve HTTP/3 (status pages) on this socket too. When set,
   * a new Initial is not offered to callbacks->accept at once: the
   * handshake starts offering ALPN NT_ALPN and "h3", and once the
   * ClientHello has chosen, callbacks->accept (NT_ALPN) or this ("h3")
   * decides as accept does, with user_data. An h3 peer may be anonymous
   * (nt_conn_peer_fingerprint NULL). */
  int (*accept_h3)(nt_endpoint *ep, const struct sockaddr *from,
                   nt_accept_params *params, void *user_data);
} nt_endpoint_config;

/* Monotonic clock in nanoseconds: the time base of every deadline. */
uint64_t nt_monotonic_ns(void);

/* Returns 0 and sets *pep, or a negative NATTER_ERR_* (NATTER_ERR_ADDR_IN_USE
 * when the bind port is taken) with a one-line reason in |err|. */
int nt_endpoint_new(nt_endpoint **pep, struct event_base *base,
                    const nt_endpoint_config *cfg, char *err, size_t errlen);

/* Closes every connection (sending CONNECTION_CLOSE, no callbacks) and the
 * socket. */
void nt_endpoint_free(nt_endpoint *ep);

uint16_t nt_endpoint_port(const nt_endpoint *ep);
int nt_endpoint_family(const nt_endpoint *ep);
/* 1 when the socket can reach addresses of |family| (AF_INET, AF_INET6):
 * a dual-stack endpoint reaches both. Every address the endpoint hands up
 * (accept, datagram, nt_conn_remote_addr) is plain AF_INET for IPv4, never
 * v4-mapped; addresses given to it may be either. */
int nt_endpoint_reaches(const nt_endpoint *ep, int family);

/* Sends one raw datagram (hole punching). Returns 0 or NATTER_ERR_SOCKET. */
int nt_endpoint_sendto(nt_endpoint *ep, const uint8_t *data, size_t len,
                       const struct sockaddr *to, socklen_t tolen);

/* Opens a client connection to |to|. With |expected_fp| non-NULL the
 * handshake fails unless the server's key has that fingerprint. Returns 0
 * or a negative NATTER_ERR_*. */
int nt_endpoint_connect(nt_endpoint *ep, const struct sockaddr *to,
                        socklen_t tolen, const uint8_t *expected_fp,
                        const nt_conn_callbacks *callbacks, void *user_data,
                        nt_conn **pconn);

/* ---- extra sockets, for port prediction ----
 *
 * A NAT that maps every destination to a new random port (symmetric)
 * cannot be reached at any port of it the broker saw. Each extra socket
 * that sends to the peer makes that NAT open one more mapping that lets
 * the peer's address in; with a few hundred of them, the peer's probes to
 * random ports of our public address hit one within a few hundred tries
 * (the birthday paradox). The peer connection then runs on the socket
 * that was hit, and every other extra socket is closed: each connection
 * still uses exactly one socket. Ids are > 0; 0 names the endpoint's own
 * socket. */
#define NT_ENDPOINT_MAX_AUX 1024
/* Descriptors of RLIMIT_NOFILE extra sockets leave to everything else
 * (with a soft limit of 1024 and no higher hard one: 256 sockets for
 * prediction). */
#define NT_ENDPOINT_FD_RESERVE 768

/* Opens up to |n| extra sockets for |owner| (fewer when descriptors or
 * NT_ENDPOINT_MAX_AUX run out); returns how many. */
unsigned nt_endpoint_aux_open(nt_endpoint *ep, void *owner, unsigned n);
/* How many of |owner|'s extra sockets are open and carry no connection. */
unsigned nt_endpoint_aux_count(const nt_endpoint *ep, const void *owner);
/* Sends |data| to |to| from each of |owner|'s free extra sockets. */
void nt_endpoint_aux_send_all(nt_endpoint *ep, void *owner, const uint8_t *data,
                              size_t len, const struct sockaddr *to,
                              socklen_t tolen);
/* Closes |owner|'s extra sockets except |keep| and those a connection
 * runs on (a connection's socket closes with the connection). */
void nt_endpoint_aux_close(nt_endpoint *ep, void *owner, int keep);
/* Sends one raw datagram from socket |sock| (0: the endpoint's own). */
int nt_endpoint_send_on(nt_endpoint *ep, int sock, const uint8_t *data,
                        size_t len, const struct sockaddr *to, socklen_t tolen);
/* nt_endpoint_connect from socket |sock|: the connection takes it over. */
int nt_endpoint_connect_on(nt_endpoint *ep, int sock, const struct sockaddr *to,
                           socklen_t tolen, const uint8_t *expected_fp,
                           const nt_conn_callbacks *callbacks, void *user_data,
                           nt_conn **pconn);
/* The socket a connection runs on: 0 the endpoint's own, else extra. */
int nt_conn_socket(const nt_conn *conn);

/* ---- the broker's relay (relay_wire.h) ---- */

/* Datagrams from |relay| are relay-framed from now on: the broker's
 * relay, or another broker's that relays for one peer. At most
 * NT_ENDPOINT_RELAYS at once: the one added longest ago that no
 * connection runs through gives way, and when every one has a
 * connection, NATTER_ERR_NOMEM (|relay| is not added). Len 0 forgets
 * them all. Returns 0 otherwise. */
#define NT_ENDPOINT_RELAYS 8
int nt_endpoint_set_relay(nt_endpoint *ep, const nt_addr *relay);
/* Datagrams from |from| (the gateway's port mapping port) go to
 * callbacks->datagram whatever their length, never to QUIC; len 0 turns
 * it off. */
void nt_endpoint_set_raw_source(nt_endpoint *ep, const nt_addr *from);
/* Tells |relay| where we are for channel |token| (NT_RELAY_BIND). */
int nt_endpoint_relay_bind(nt_endpoint *ep, const nt_addr *relay,
                           const uint8_t *token);
/* Opens a client connection whose packets go through |relay| on channel
 * |token| (set the relay first). As nt_endpoint_connect. */
int nt_endpoint_connect_relayed(nt_endpoint *ep, const nt_addr *relay,
                                const uint8_t *token,
                                const uint8_t *expected_fp,
                                const nt_conn_callbacks *callbacks,
                                void *user_data, nt_conn **pconn);

/* Stateless resets (RFC 9000 §10.3) so far: sent to packets of
 * connections unknown here, received from peers (each closed a connection
 * of ours), and not sent because NT_RESET_MAX_PER_S was reached. */
void nt_endpoint_reset_stats(const nt_endpoint *ep, uint64_t *sent,
                             uint64_t *received, uint64_t *dropped);

/* UDP payload bytes received and sent on this endpoint so far. */
void nt_endpoint_traffic(const nt_endpoint *ep, uint64_t *rx, uint64_t *tx);

/* ---- connections ---- */

/* Closes with an application error code and a reason the peer can log;
 * closed() follows from the loop. Safe to call more than once. */
void nt_conn_close(nt_conn *conn, uint64_t app_code, const char *reason);

void nt_conn_set_user_data(nt_conn *conn, void *user_data);
const struct sockaddr *nt_conn_remote_addr(const nt_conn *conn);
/* Where the peer was last proved to be (RFC 9000 §8.2, §9.3): the
 * address at the handshake's end, then each path validation that
 * succeeded. nt_conn_remote_addr() moves as soon as an authenticated
 * packet comes from a new address, before it is validated, and a copy of
 * a genuine packet sent from another source (an on-path attacker, or the
 * peer itself spoofing) moves it too: whatever is told to others about
 * the peer (introductions, relay channels) takes this one. Before the
 * handshake ends, the address the connection started with. */
const struct sockaddr *nt_conn_validated_addr(const nt_conn *conn);
/* Our address the peer's packets arrive at (a server's connection, from
 * IP_PKTINFO); len 0 while unknown or for a client's connection. */
const nt_addr *nt_conn_local_addr(const nt_conn *conn);
/* The peer's key fingerprint once established, else NULL. */
const uint8_t *nt_conn_peer_fingerprint(const nt_conn *conn);
/* How many bidirectional streams the peer lets us open at once (its
 * transport parameters; a listener's max-streams), 0 before they are
 * known. */
uint64_t nt_conn_peer_max_streams(const nt_conn *conn);
int nt_conn_is_established(const nt_conn *conn);
/* Sends at once what loss recovery would resend at its next timeout (a
 * PTO probe), e.g. after a fresh hole punch reopened the path, instead of
 * waiting out the backed-off timer. */
void nt_conn_kick(nt_conn *conn);
/* PING after |ms| of silence on this connection (the endpoint's
 * keepalive_ms is the default). */
void nt_conn_set_keepalive(nt_conn *conn, uint64_t ms);
/* Milliseconds since the last authenticated packet from the peer. */
uint64_t nt_conn_silent_ms(const nt_conn *conn);
/* 1 while the connection's current path goes through the relay. */
int nt_conn_is_relayed(const nt_conn *conn);
/* Moves a relayed client connection to the direct path |to| (a punch
 * answered from there): QUIC connection migration (RFC 9000 §9), same
 * connection, streams untouched. Returns 0 or -1. */
int nt_conn_migrate(nt_conn *conn, const struct sockaddr *to, socklen_t tolen);
/* Moves a connection to the extra socket |sock| (|owner|'s and free:
 * opened for a new port prediction and found by the peer) and, a
 * client's, to the peer's
 * address |to| (QUIC migration): the same connection, streams untouched,
 * now sending from that socket; the socket it ran on is closed. A
 * server's only sends from there (its peer follows). For a path found by
 * port prediction whose NAT changed its ports. Returns 0 or -1. */
int nt_conn_migrate_on(nt_conn *conn, int sock, const void *owner,
                       const struct sockaddr *to, socklen_t tolen);
/* Smoothed RTT and the UDP payload bytes this connection sent/received. */
void nt_conn_get_stats(const nt_conn *conn, uint64_t *rtt_us, uint64_t *tx,
                       uint64_t *rx);

/* For status pages: the monotonic time (ns) of the last datagram from
 * the peer, and the path's numbers as ngtcp2 keeps them. */
uint64_t nt_conn_last_rx_ns(const nt_conn *conn);
typedef struct nt_conn_path_stats {
  uint64_t rtt_us;    /* smoothed */
  uint64_t pto_count; /* probe timeouts in a row: a sign of loss */
  uint64_t cwnd;      /* congestion window, bytes */
  uint64_t bytes_sent, bytes_received; /* UDP payload bytes */
  uint64_t max_udp_payload; /* the largest packet the path carries now */
} nt_conn_path_stats;
void nt_conn_get_path_stats(const nt_conn *conn, nt_conn_path_stats *out);
/* Datagrams the endpoint dropped (no connection, refused Initials). */
uint64_t nt_endpoint_dropped(const nt_endpoint *ep);

/* ---- datagrams (RFC 9221): unreliable, never retransmitted ---- */

/* Datagrams queued on one connection and not yet in a packet, at most;
 * beyond that (the path is congested) new ones are dropped. */
#define NT_DGRAM_QUEUE_MAX 512
#define NT_DGRAM_QUEUE_BYTES (2 * 1024 * 1024)
/* The largest DATAGRAM payload nt_conn_send_datagram takes now: what one
 * packet on the current path holds and the peer accepts. 0 before the
 * handshake ends or when the peer takes no datagrams. It may grow as the
 * path's MTU is discovered. */
size_t nt_conn_datagram_max(nt_conn *conn);
/* Queues one DATAGRAM frame made of |hdr| then |data| (either may be
 * empty), sent with the next packets. Returns 0; NT_DGRAM_TOO_BIG when it
 * exceeds nt_conn_datagram_max(); NT_DGRAM_FULL when the queue is full;
 * -1 when the connection is not usable. Nothing is queued on failure. */
#define NT_DGRAM_TOO_BIG 1
#define NT_DGRAM_FULL 2
int nt_conn_send_datagram(nt_conn *conn, const uint8_t *hdr, size_t hdrlen,
                          const uint8_t *data, size_t len);
/* Datagrams this connection dropped after queueing them (the peer's limit
 * shrank, or ngtcp2 refused them). */
uint64_t nt_conn_datagrams_dropped(const nt_conn *conn);

/* ---- streams ---- */

typedef struct nt_stream_callbacks {
  /* Bytes in order; |fin| marks the end. The callee calls
   * nt_stream_consume() as it hands them on, which is what opens flow
   * control again: bytes not consumed keep the peer throttled. */
  void (*recv)(nt_stream *stream, const uint8_t *data, size_t len, int fin,
               void *user_data);
  /* Acknowledged bytes freed room: nt_stream_send_room() grew. */
  void (*send_room)(nt_stream *stream, void *user_data);
  /* The stream is gone (both directions done, or reset by either side, or
   * its connection closed). |stream| is invalid once this returns. */
  void (*closed)(nt_stream *stream, int reset, uint64_t app_code,
                 void *user_data);
} nt_stream_callbacks;

/* Opens a bidirectional stream. Returns 0, NT_STREAMS_BLOCKED when the
 * peer's stream limit is reached (streams_available says when to try
 * again), or -1 when the connection is not usable. */
#define NT_STREAMS_BLOCKED 1
int nt_conn_open_stream(nt_conn *conn, nt_stream **pstream);
/* The same for a unidirectional stream (HTTP/3 control and QPACK). */
int nt_conn_open_uni_stream(nt_conn *conn, nt_stream **pstream);
/* Opens an HTTP/3 client connection to |to| (ALPN "h3"), presenting the
 * endpoint's identity; |expected_fp| as for nt_endpoint_connect. */
int nt_endpoint_connect_h3(nt_endpoint *ep, const struct sockaddr *to,
                           socklen_t tolen, const uint8_t *expected_fp,
                           const nt_conn_callbacks *callbacks, void *user_data,
                           nt_conn **pconn);

void nt_stream_set_callbacks(nt_stream *stream,
                             const nt_stream_callbacks *callbacks,
                             void *user_data);
nt_conn *nt_stream_conn(const nt_stream *stream);
int64_t nt_stream_id(const nt_stream *stream);
/* The endpoint's pool of buffer chunks (sendbuf.h), which outlives every
 * stream on it: where a stream's user keeps the bytes the stream gave it
 * and the local end has not taken yet, in the same recycled memory. */
struct nt_chunk_pool *nt_stream_chunk_pool(const nt_stream *stream);

/* How many more bytes this stream may queue now (per-stream and
 * per-connection send windows). */
size_t nt_stream_send_room(const nt_stream *stream);
/* Queues a copy of |data| regardless of room (small control messages). */
int nt_stream_write(nt_stream *stream, const uint8_t *data, size_t len);
/* Reads up to |max| bytes from |fd| straight into the send queue. */
ssize_t nt_stream_read_fd(nt_stream *stream, int fd, size_t max);
/* Ends our direction after the queued bytes (FIN). */
void nt_stream_shutdown_write(nt_stream *stream);
/* Aborts both directions (RESET_STREAM + STOP_SENDING). */
void nt_stream_reset(nt_stream *stream, uint64_t app_code);
/* Returns |n| received bytes' worth of flow-control credit to the peer. */
void nt_stream_consume(nt_stream *stream, size_t n);

/* ---- TCP paths (the TCP fallback, tcp_path.h) ----
 *
 * While |link| is added, every packet the endpoint sends to its pseudo
 * address goes over it instead of the UDP socket; the owner hands each
 * datagram the link reads to nt_endpoint_tcp_input (as if it came from
 * that address over UDP) and calls nt_endpoint_tcp_flush after a read.
 * The link stays its owner's: remove it before freeing it. */
struct nt_tcp_link;
int nt_endpoint_tcp_add(nt_endpoint *ep, struct nt_tcp_link *link);
void nt_endpoint_tcp_remove(nt_endpoint *ep, struct nt_tcp_link *link);
/* 1 when packets to |addr| go over a TCP path now. */
int nt_endpoint_tcp_has(const nt_endpoint *ep, const struct sockaddr *addr);
void nt_endpoint_tcp_input(nt_endpoint *ep, struct nt_tcp_link *link,
                           uint8_t *data, size_t len);
void nt_endpoint_tcp_flush(nt_endpoint *ep);
/* 1 when |conn|'s packets go over a TCP path now. */
int nt_conn_over_tcp(const nt_conn *conn);

#endif
