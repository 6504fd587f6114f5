/* Structures shared by endpoint.c (socket, demux) and conn.c (one QUIC
 * connection). Nothing outside those two files includes this. */
#ifndef NT_QUIC_INTERNAL_H
#define NT_QUIC_INTERNAL_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <sys/queue.h>

#include "quic/endpoint.h"
#include "base/budget.h"
#include "base/hashmap.h"
#include "codec/relay_wire.h"
#include "quic/retry.h"
#include "quic/sendbuf.h"

#define NT_SCID_LEN 16
/* Smallest QUIC datagram addressed to us: 1 byte header, our 16-byte
 * connection ID, 1 byte packet number, 16 bytes AEAD tag. Anything
 * shorter is handed to the owner as a raw datagram. */
#define NT_MIN_QUIC_DATAGRAM 34
#define NT_MAX_UDP_PAYLOAD 1452 /* NGTCP2_MAX_PMTUD_UDP_PAYLOAD_SIZE */
/* On loopback the path is the local machine (MTU 64 KiB): no probing
 * needed, and each packet costs ngtcp2, the AEAD and the kernel the same
 * whatever its size, so packets are as large as IPv4 allows. */
#define NT_LOOPBACK_UDP_PAYLOAD 65507
/* One send: a GSO batch may not exceed 64 KiB (nor 64 segments). */
#define NT_TXBUF_SIZE 65507
/* What a 1-RTT packet spends besides stream bytes, at most: header (1 +
 * 20-byte DCID + 4-byte number), AEAD tag 16, a STREAM frame's header
 * (type, id, offset, length: up to 25) and an ACK frame riding along. */
#define NT_PKT_ROOM_MARGIN 160
#define NT_GSO_MAX_SEGMENTS 64
/* GSO batches one write wake-up may send (tests/bench/NOTES.md: 4 cut
 * CPU per GB in the NAT lab against 1; 8 or 16 no further). */
#define NT_WRITE_BATCHES 4
#define NT_WRITE_BATCHES_QUIET_NS (500 * NGTCP2_MILLISECONDS)

/* Per-stream bytes queued but unacknowledged, and per connection. */
#define NT_STREAM_SEND_WINDOW (1024 * 1024)
#define NT_CONN_SEND_WINDOW (8 * 1024 * 1024)

/* One connection ID that routes to |conn|: the key bytes of the
 * endpoint's CID table live here. */
typedef struct nt_cid_entry {
  uint8_t cid[NGTCP2_MAX_CIDLEN];
  size_t cidlen;
  nt_conn *conn;
  LIST_ENTRY(nt_cid_entry) conn_link; /* conn->cids */
} nt_cid_entry;

LIST_HEAD(nt_cid_list, nt_cid_entry);
LIST_HEAD(nt_conn_list, nt_conn);
TAILQ_HEAD(nt_conn_queue, nt_conn);
LIST_HEAD(nt_stream_list, nt_stream);

/* An extra socket of the endpoint, for port prediction (endpoint.h): it
 * belongs to |owner| until a connection runs on it, then to |conn|. */
typedef struct nt_aux_sock {
  nt_endpoint *ep;
  int id; /* > 0; 0 names the endpoint's own socket */
  int fd;
  nt_addr local;
  struct event *ev;
  void *owner;
  nt_conn *conn;
  int dead; /* closed: freed from the loop (ep->reap_ev) */
  LIST_ENTRY(nt_aux_sock) link;
} nt_aux_sock;
LIST_HEAD(nt_aux_list, nt_aux_sock);
TAILQ_HEAD(nt_stream_queue, nt_stream);

/* One queued DATAGRAM frame's payload (nt_conn_send_datagram). */
typedef struct nt_dgram {
  STAILQ_ENTRY(nt_dgram) link;
  size_t len;
  int tries;            /* packets it did not fit in */
  uint64_t queued_ns;   /* when nt_conn_send_datagram took it */
  uint8_t data[];
} nt_dgram;
STAILQ_HEAD(nt_dgram_queue, nt_dgram);
/* Short header, the longest connection ID, packet number and AEAD tag,
 * plus the DATAGRAM frame's type and length: what a packet adds to a
 * datagram's payload, at most. */
#define NT_DGRAM_PKT_OVERHEAD (1 + 20 + 4 + 16 + 1 + 4)

struct nt_endpoint {
  struct event_base *base;
  int fd;
  int family; /* the socket's: AF_INET6 serves IPv4 too unless v6only */
  int v6only;
  nt_addr local;
  struct event *read_ev;
  nt_endpoint_config cfg;
  nt_hashmap cids;           /* connection ID -> nt_cid_entry */
  /* The entry the last packet was routed by: a bulk transfer's packets
   * all carry the same ID, so most skip the hash (SipHash per packet).
   * Cleared whenever an entry leaves the map. */
  struct nt_cid_entry *last_cid;
  struct nt_conn_list conns; /* every connection, for free */
  /* Connections that received packets in the current read batch: only
   * these are flushed after it, so a read costs what it carries, not
   * the number of connections. */
  struct nt_conn_queue dirty;
  nt_chunk_pool pool;
  uint8_t *rxbuf; /* NT_UDP_RECV_BATCH * NT_UDP_RECV_BUFSIZE (udpsock.h) */
  uint8_t txbuf[NT_TXBUF_SIZE];
  int gso_ok;     /* UDP_SEGMENT works on this socket */
  nt_retry retry; /* address validation under load */
  uint64_t rx_bytes, tx_bytes;
  uint64_t dropped;
  /* The relays datagrams come framed from (relay_wire.h): the broker's,
   * and those of other brokers of its network that relay for a peer
   * (introductions across brokers); the oldest gives way past
   * NT_ENDPOINT_RELAYS. */
  nt_addr relays[NT_ENDPOINT_RELAYS];
  size_t nrelays, relay_next;
  nt_addr raw_source; /* datagrams from here are never QUIC; len 0: none */
  /* The local address relayed paths carry inside ngtcp2: the socket's
   * own with another port. ngtcp2 0.12 migrates a client only to a path
   * with another local address, and moving off the relay keeps the
   * socket (one socket per client), so the relayed path gets this stand-in;
   * nothing is ever sent from it. */
  nt_addr relay_local;
  /* The channel of the connection nt_conn_new is creating to a relay
   * (set just before it). */
  uint8_t new_relay_token[NT_RELAY_TOKEN_LEN];
  uint8_t relaybuf[NT_TXBUF_SIZE]; /* relay-framed copies of a batch */
  /* Extra sockets (port prediction); the one nt_conn_new is creating a
   * connection on (set just before it, NULL: the endpoint's own). */
  struct nt_aux_list aux;
  unsigned naux;
  int aux_next_id;
  nt_aux_sock *new_aux;
  struct event *reap_ev;
  /* While the owner handles a datagram (callbacks->datagram): its sender
   * and the address it arrived at, the source of what goes back to it
   * (nt_endpoint_sendto). NULL otherwise. */
  const struct sockaddr *reply_to;
  const nt_addr *reply_src;
  /* TCP paths (tcp_path.h) by the key of their pseudo address: packets
   * to that address go over the TCP connection. */
  nt_hashmap tcp;
  /* Stateless resets (RFC 9000 §10.3): the secret every token is derived
   * from (the identity's, so a restarted process sends the tokens its
   * predecessor announced), and the budget that keeps them rare. */
  uint8_t reset_secret[32];
  uint64_t reset_window_ns; /* start of the current second */
  unsigned reset_in_window;
  uint64_t resets_sent, resets_over_budget;
  uint64_t resets_received; /* peers' resets that closed our connections */
  unsigned nclient_conns; /* connections we dialled (resets we can read) */
  nt_log_gate reset_gate;
};

struct nt_stream {
  nt_conn *conn;
  int64_t id;
  nt_sendbuf sb;
  int fin_queued, fin_sent;
  int blocked;      /* peer's flow control: wait for extend_max_stream_data */
  int in_pending;
  int closed;
  TAILQ_ENTRY(nt_stream) pending_link; /* conn->pending, if in_pending */
  LIST_ENTRY(nt_stream) conn_link;     /* conn->streams */
  nt_stream_callbacks cbs;
  void *user_data;
};

struct nt_conn {
  nt_endpoint *ep;
  ngtcp2_conn *qc;
  ngtcp2_crypto_conn_ref conn_ref;
  nt_tls_session *tls;
  nt_addr remote;
  /* The last remote address the peer proved it receives at: set at the
   * handshake's end, moved only by a successful path validation (never
   * by a packet from a new address alone, which anyone can send). */
  nt_addr validated;
  int is_server;
  int established;
  int closing;   /* closed; free pending */
  int close_pending; /* nt_conn_close asked; CONNECTION_CLOSE not sent */
  char close_reason_text[256];
  nt_close_reason close_reason;
  uint64_t close_app_code;
  char close_message[256];
  uint8_t peer_fp[NT_FINGERPRINT_LEN];
  struct event *timer;
  struct event *write_ev; /* coalesces write requests into one loop pass */
  struct event *streams_ev; /* streams_available, from the loop */
  struct event *free_ev;
  nt_conn_callbacks cbs;
  void *user_data;
  struct nt_stream_list streams;  /* all streams of the connection */
  struct nt_stream_queue pending; /* streams with bytes or FIN to send */
  uint64_t send_held;             /* bytes queued and unacked on all streams */
  uint64_t tx_bytes, rx_bytes;
  size_t path_payload; /* the largest UDP payload PMTUD found so far */
  int want_send_room; /* a stream ran out of room; notify after acks */
  ngtcp2_connection_close_error last_error;
  struct nt_cid_list cids; /* every ID the endpoint routes to us */
  LIST_ENTRY(nt_conn) ep_link;
  int dirty; /* on ep->dirty */
  TAILQ_ENTRY(nt_conn) dirty_link;
  /* HTTP/3 status (h3.c): the protocol was chosen by ALPN "h3"; peer uni
   * streams are then taken, and the peer may be anonymous (no key). */
  int is_h3;
  int anonymous;
  /* Paths and roaming (conn.c, "paths"). */
  uint64_t rx_mark;         /* callbacks a received packet fired */
  uint64_t last_rx_ns;      /* last authenticated packet, any path */
  uint64_t last_cur_rx_ns;  /* ... from the current remote address */
  uint64_t silent_noted_ns; /* last silent() call */
  uint32_t path_gen;        /* local tags handed out (client migrations) */
  int migrating;            /* client: validating mig_local -> mig_remote */
  nt_addr mig_local, mig_remote;
  int moved;              /* the current path changed: tell the owner */
  int got_reset;          /* the peer answered with a stateless reset */
  int resend_now;         /* moved to a new path: run loss recovery now */
  int fast_keepalive;     /* 0 idle, 1 streams open (NT_ACTIVE_KEEPALIVE),
                             2 data arriving (NT_FLOW_KEEPALIVE) */
  uint64_t watch_rx_bytes;    /* rx_bytes at the last watch tick */
  uint64_t flow_ns;           /* last tick that saw NT_FLOW_BYTES arrive */
  uint64_t inflight_since_ns; /* first tick that saw bytes in flight */
  uint64_t active_since_ns;   /* first tick that saw the peer owe us */
  struct event *watch_ev; /* silence watch, when the owner wants it */
  /* Packets to |relay_addr| (the relay it was made through) go framed
   * with this channel token. */
  int relay_on;
  uint8_t relay_token[NT_RELAY_TOKEN_LEN];
  nt_addr relay_addr;
  /* The extra socket this connection runs on (NULL: the endpoint's). */
  nt_aux_sock *aux;
  /* DATAGRAM frames waiting for a packet (conn.c, "datagrams"). */
  struct nt_dgram_queue dgrams;
  size_t ndgrams, dgram_bytes;
  uint64_t dgrams_dropped;
  /* Server side: our address the peer sends to, the source of every
   * direct packet of ours (udpsock.h, nt_udp_arrival). len 0: unknown
   * (a client's connection, which sent first: the kernel picks, and
   * follows the host's routing as it changes). */
  nt_addr src;
};

uint64_t nt_timestamp(void);

/* Keepalive while streams are open or data is in flight: a receiver that
 * only ACKs still sends something every second, so its NAT mapping stays
 * open and a dead path shows within about a second and a half (the PING
 * unanswered for NT_QUICK_SILENCE_MS). Idle connections
 * use the endpoint's (cheaper) keepalive_ms. */
#define NT_ACTIVE_KEEPALIVE_MS 1000
/* How often the silence watch looks. */
#define NT_WATCH_INTERVAL_MS 100
/* While data arrives (NT_FLOW_BYTES in a watch interval, in the last 2 s)
 * the keepalive is this short, so that the receiving side of a transfer
 * has a PING in flight soon after the path breaks and notices too. */
#define NT_FLOW_KEEPALIVE_MS 100
#define NT_FLOW_BYTES 1024
/* Nothing back this long (or two probe timeouts, if longer) while
 * packets are owed an acknowledgement: the path is suspected broken and
 * the owner is told (silent()) at once, not after loss recovery's
 * exponential backoff. At most every NT_SILENT_REPEAT_MS. */
#define NT_QUICK_SILENCE_MS 300
#define NT_SILENT_REPEAT_MS 1000

/* endpoint.c */
/* Stateless resets the endpoint sends in one second at most (each smaller
 * than the packet that triggered it, at most NT_RESET_MAX_LEN bytes): a
 * flood of packets of unknown connections gets no more than this. */
#define NT_RESET_MAX_PER_S 100
#define NT_RESET_MAX_LEN 48
/* The stateless reset token of connection ID |cid| (16 bytes out). Returns
 * 0 or -1. */
int nt_endpoint_reset_token(const nt_endpoint *ep, uint8_t *token,
                            const uint8_t *cid, size_t cidlen);
/* Routes datagrams for |cid| to |conn|. An ID already routed (to any
 * connection) is left as it is. Returns 0 or a negative NATTER_ERR_*. */
int nt_endpoint_add_cid(nt_endpoint *ep, const uint8_t *cid, size_t cidlen,
                        nt_conn *conn);
void nt_endpoint_remove_cid(nt_endpoint *ep, const uint8_t *cid, size_t cidlen);
/* Puts a new |conn| on the endpoint's list of connections. */
void nt_endpoint_add_conn(nt_endpoint *ep, nt_conn *conn);
/* Takes |conn| off every list of the endpoint and drops its connection
 * IDs: the last thing before it is freed. */
void nt_endpoint_forget_conn(nt_endpoint *ep, nt_conn *conn);
/* A routed connection's ClientHello chose |is_h3| or natter's ALPN: asks
 * the owner (accept or accept_h3) and fills |params|. Returns 1 when the
 * owner takes it. */
int nt_endpoint_route(nt_endpoint *ep, nt_conn *conn, int is_h3,
                      nt_accept_params *params);
/* Sends |n| packets of |segsize| bytes (the last may be shorter) that lie
 * back to back in |buf|, as one GSO write when possible; from |src| when
 * it is given (len > 0), else from the address the kernel picks. */
void nt_endpoint_send_packets(nt_endpoint *ep, int fd, const uint8_t *buf,
                              size_t len, size_t segsize,
                              const struct sockaddr *to, const nt_addr *src);

/* A connection on |aux| is gone: the socket goes with it. */
void nt_endpoint_aux_release(nt_endpoint *ep, nt_aux_sock *aux);
/* |owner|'s free extra socket |id| (open, carrying no connection), else
 * NULL. */
nt_aux_sock *nt_endpoint_aux_free_sock(nt_endpoint *ep, int id,
                                       const void *owner);
/* |conn| runs on |aux| from now on: it leaves its owner's pool. */
void nt_endpoint_aux_take(nt_aux_sock *aux, nt_conn *conn);

/* Sends like nt_endpoint_send_packets to |relay|, each packet framed for
 * it with |token| (relay_wire.h). */
void nt_endpoint_send_relayed(nt_endpoint *ep, const nt_addr *relay,
                              const uint8_t *token, const uint8_t *buf,
                              size_t len, size_t segsize);
/* 1 when |sa| is one of the endpoint's relays (nt_endpoint_set_relay). */
int nt_endpoint_is_relay(const nt_endpoint *ep, const struct sockaddr *sa);

/* conn.c */
/* Returns 0 and sets *pconn, or a negative NATTER_ERR_*. */
int nt_conn_new(nt_conn **pconn, nt_endpoint *ep, int is_server,
                const struct sockaddr *remote, socklen_t remotelen,
                const ngtcp2_pkt_hd *initial_hd, const ngtcp2_cid *odcid,
                const uint8_t *expected_fp, const nt_conn_callbacks *cbs,
                void *user_data);
/* With |cbs| NULL: a server connection whose owner is chosen once the
 * ClientHello names the protocol (nt_endpoint_route). */
/* An HTTP/3 client connection (natter -status): ALPN "h3" only. */
int nt_conn_new_h3_client(nt_conn **pconn, nt_endpoint *ep,
                          const struct sockaddr *remote, socklen_t remotelen,
                          const uint8_t *expected_fp,
                          const nt_conn_callbacks *cbs, void *user_data);
/* Feeds one datagram that arrived at our address |dst| (NULL or len 0:
 * unknown, or relayed); the connection may schedule its own close. */
void nt_conn_recv(nt_conn *conn, const uint8_t *data, size_t len,
                  const struct sockaddr *from, socklen_t fromlen,
                  const nt_addr *dst);
/* Flushes pending writes now (after a batch of datagrams was read). */
void nt_conn_flush(nt_conn *conn);
/* Frees without callbacks after sending CONNECTION_CLOSE (endpoint free). */
void nt_conn_destroy(nt_conn *conn);

#endif
