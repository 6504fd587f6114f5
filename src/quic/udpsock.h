/* UDP sockets of one family or both: the one place that decides how
 * natter's UDP sockets are opened (the endpoint's, and the broker's
 * mapping-check and relay ports), so that all of them follow one rule. */
#ifndef NT_UDPSOCK_H
#define NT_UDPSOCK_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/addr.h"

/* Opens a non-blocking, close-on-exec UDP socket bound to |bind|.
 *
 * With |dual| and an unspecified bind address (0.0.0.0 or ::), one socket
 * serves both families: AF_INET6 with IPV6_V6ONLY off, bound to [::] and
 * the port. Where the host has no IPv6 (no AF_INET6 sockets, or [::]
 * cannot be bound for another reason than the port being taken) it is an
 * IPv4 socket on 0.0.0.0 instead. Without |dual| an IPv6 bind address
 * gets IPV6_V6ONLY on: exactly the family asked for.
 *
 * A socket bound to an unspecified address also reports where each
 * datagram was addressed (IPV6_RECVPKTINFO, IP_PKTINFO; read it with
 * nt_udp_arrival): on a host with several addresses of one family the
 * kernel would otherwise answer from the address its routing prefers, not
 * the one the client sent to, and the client's NAT or firewall drops that
 * answer. Replies then name their source (nt_udp_send).
 *
 * Returns the descriptor and sets *family and *v6only, or -errno. */
int nt_udp_open(const nt_addr *bind, int dual, int *family, int *v6only);

/* Whether a socket opened so (|family|, |v6only|) can send to and receive
 * from addresses of |addr_family| (AF_INET or AF_INET6). */
int nt_udp_reaches(int family, int v6only, int addr_family);

/* Control-message room (msg_control) a receive needs for the arrival
 * address: add it to whatever else the socket reports (UDP_GRO). */
#define NT_UDP_PKTINFO_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo))

/* The local address a received datagram was sent to, from the
 * IPV6_PKTINFO or IP_PKTINFO control message in |msg|, in *dst: plain
 * AF_INET for IPv4 (also when a dual-stack socket reports it v4-mapped),
 * port 0, an IPv6 link-local address with its interface as scope. Returns
 * 1, or 0 with dst->len 0 when |msg| carries none (a socket bound to one
 * address, or a client's). */
int nt_udp_arrival(const struct msghdr *msg, nt_addr *dst);

/* Batched reads (the endpoint's and the relay's sockets): recvmmsg into
 * NT_UDP_RECV_BATCH buffers of NT_UDP_RECV_BUFSIZE bytes; with UDP_GRO a
 * buffer may hold a train of same-sized datagrams from one sender. */
#define NT_UDP_RECV_BATCH 16
#define NT_UDP_RECV_BUFSIZE 65536

/* One datagram of a batch: its bytes (writable, valid during the call),
 * the sender (IPv4 as plain AF_INET, never v4-mapped) and the address it
 * was sent to (len 0 when unknown, see nt_udp_arrival). */
typedef void (*nt_udp_datagram_fn)(uint8_t *data, size_t len,
                                   const struct sockaddr *from,
                                   socklen_t fromlen, const nt_addr *dst,
                                   void *user_data);

/* One recvmmsg on |fd| into |buf| (NT_UDP_RECV_BATCH *
 * NT_UDP_RECV_BUFSIZE bytes), each datagram split out of its train and
 * handed to |fn| in order. Returns the number of datagrams (0: nothing
 * waiting, or an error) and sets *full when every buffer was used, so
 * that more may be waiting. */
size_t nt_udp_recv_batch(int fd, uint8_t *buf, nt_udp_datagram_fn fn,
                         void *user_data, int *full);

/* One received message of nt_udp_recv_batch: |len| bytes in
 * msg->msg_iov[0] from msg->msg_name (a sockaddr_storage, unmapped in
 * place), its cmsgs as the kernel wrote them. Splits it into datagrams
 * (nt_udp_gro_segment), hands each to |fn| in order with the arrival
 * address (nt_udp_arrival), and returns how many (at least 1). The
 * socket-free part of a read, for tests and fuzzing. */
size_t nt_udp_deliver(struct msghdr *msg, size_t len, nt_udp_datagram_fn fn,
                      void *user_data);

/* A received |len| bytes may be a GRO train (UDP_GRO): datagrams of the
 * returned size back to back, the last one possibly shorter. Without the
 * cmsg it is one datagram: returns |len|. */
size_t nt_udp_gro_segment(const struct msghdr *msg, size_t len);

/* Writes the cmsg that makes |src| the source of a datagram to |dest| (as
 * the socket of |family| wants it: v4-mapped on a dual-stack one) at
 * |cm|, which has NT_UDP_PKTINFO_SPACE bytes; returns the room it took,
 * or 0 when |src| cannot be the source of that datagram (another family).
 * For callers that build their own messages (the relay's batches). */
size_t nt_udp_put_source(struct cmsghdr *cm, int family,
                         const struct sockaddr *dest, const nt_addr *src);

/* Sends |len| bytes to |to| (either spelling of IPv4: it is mapped for a
 * socket of |family|, |v6only| as nt_udp_open set them). With |segsize|
 * under |len| the kernel cuts the buffer into datagrams of that size
 * (UDP_SEGMENT). With |src| (len > 0, of |to|'s family) the datagram
 * leaves from that address, the one the peer's datagram arrived at
 * (nt_udp_arrival); should the host have lost it meanwhile, the kernel
 * picks the source as without one. Returns 0, or -errno (-EAFNOSUPPORT
 * when the socket cannot reach |to|). */
int nt_udp_send(int fd, int family, int v6only, const void *buf, size_t len,
                size_t segsize, const struct sockaddr *to, const nt_addr *src);

#endif
