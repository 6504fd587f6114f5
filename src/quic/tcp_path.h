/* One TCP connection that carries datagrams (the TCP fallback,
 * doc/design.md): a preamble from the connecting side, then frames of
 * codec/tcpframe.h both ways. It stands for one UDP address, its pseudo
 * address: the broker's UDP address on a client, the TCP peer's address
 * on the broker. The endpoint sends packets for that address over it and
 * hands its datagrams on as from that address (nt_endpoint_tcp_add); so
 * does the broker's relay.
 *
 * Bounded: at most NT_TCP_LINK_MAX_QUEUED bytes wait to be sent (further
 * datagrams are dropped, as a full UDP socket buffer drops them, and QUIC
 * resends), at most one frame plus a read's worth are held on input, and
 * a connection that receives nothing for its idle timeout is closed. */
#ifndef NT_TCP_PATH_H
#define NT_TCP_PATH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/addr.h"
#include "codec/tcpframe.h"

struct event_base;

#define NT_TCP_LINK_MAX_QUEUED (256 * 1024)
/* Bytes that name a pseudo address in a hash table: the IPv6 address
 * (IPv4 v4-mapped) and the port. */
#define NT_TCP_LINK_KEY_LEN 18

typedef struct nt_tcp_link nt_tcp_link;

typedef struct nt_tcp_link_callbacks {
  /* Accepting side: the preamble named |target| (NT_TCPFRAME_TO_*).
   * Return 0 to go on; otherwise the link closes (closed is called). */
  int (*ready)(nt_tcp_link *link, int target, void *user_data);
  /* One datagram, |data| writable and valid during the call. The callee
   * must not free the link here. */
  void (*datagram)(nt_tcp_link *link, uint8_t *data, size_t len,
                   void *user_data);
  /* After the datagrams of one read. May be NULL. */
  void (*read_done)(nt_tcp_link *link, void *user_data);
  /* Connecting side: the TCP handshake is done. May be NULL. */
  void (*connected)(nt_tcp_link *link, void *user_data);
  /* The connection is over (|why|: one line); nothing more is sent or
   * received. The owner frees the link (here or later). */
  void (*closed)(nt_tcp_link *link, const char *why, void *user_data);
} nt_tcp_link_callbacks;

/* Connects to |to| (TCP) for datagrams of |pseudo|, with the preamble for
 * |target| queued. Returns 0 and sets *plink, or a negative NATTER_ERR_*.
 * |idle_ms| 0: no idle timeout. */
int nt_tcp_link_connect(nt_tcp_link **plink, struct event_base *base,
                        const struct sockaddr *to, socklen_t tolen,
                        const struct sockaddr *pseudo, socklen_t pseudolen,
                        int target, uint64_t idle_ms,
                        const nt_tcp_link_callbacks *cbs, void *user_data);

/* Takes |fd|, an accepted TCP connection from |peer| (its pseudo
 * address), which must first send a preamble. */
int nt_tcp_link_accept(nt_tcp_link **plink, struct event_base *base, int fd,
                       const struct sockaddr *peer, socklen_t peerlen,
                       uint64_t idle_ms, const nt_tcp_link_callbacks *cbs,
                       void *user_data);

/* Closes the connection and frees the link; no callback. NULL: no-op. */
void nt_tcp_link_free(nt_tcp_link *link);

/* Queues |len| bytes (datagrams of |segsize| bytes each, the last one
 * possibly shorter; 0: one datagram) as frames. Returns 0, or -1 when they
 * were dropped (queue full, connection not usable). */
int nt_tcp_link_send(nt_tcp_link *link, const uint8_t *buf, size_t len,
                     size_t segsize);

const nt_addr *nt_tcp_link_pseudo(const nt_tcp_link *link);
/* The key of |link|'s pseudo address (NT_TCP_LINK_KEY_LEN bytes). */
const uint8_t *nt_tcp_link_key(const nt_tcp_link *link);
/* Writes the key of |sa| into |key|; returns 0, or -1 for a family that
 * has none. */
int nt_tcp_link_key_of(const struct sockaddr *sa,
                       uint8_t key[NT_TCP_LINK_KEY_LEN]);
int nt_tcp_link_target(const nt_tcp_link *link);
int nt_tcp_link_is_connected(const nt_tcp_link *link);
/* Bytes sent and received over TCP (frames and preamble). */
void nt_tcp_link_traffic(const nt_tcp_link *link, uint64_t *rx, uint64_t *tx);

/* Somewhere for the owner to keep its own pointer (the endpoint's or the
 * relay's registration). */
void nt_tcp_link_set_owner(nt_tcp_link *link, void *owner);
void *nt_tcp_link_owner(const nt_tcp_link *link);

#endif
