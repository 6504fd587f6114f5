/* Socket addresses: parsing "host:port", printing, comparing. */
#ifndef NT_ADDR_H
#define NT_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nt_addr {
  struct sockaddr_storage ss;
  socklen_t len;
} nt_addr;

#define NT_ADDR_STRLEN 64 /* "[ffff:...:ffff]:65535" fits */

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (empty host = |any_host|).
 * Resolves HOST with getaddrinfo (blocking; start-up only). Returns 0, or
 * with a reason in |err| NATTER_ERR_RESOLVE when HOST does not resolve and
 * NATTER_ERR_INVALID when |text| is malformed. */
int nt_addr_parse(nt_addr *addr, const char *text, const char *any_host,
                  char *err, size_t errlen);

/* Formats as "1.2.3.4:5" or "[::1]:5" into |out| (NT_ADDR_STRLEN). */
const char *nt_addr_str(const struct sockaddr *sa, char *out);

int nt_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* 1 when |a| and |b| are the same IP address, whatever their ports. */
int nt_addr_same_host(const struct sockaddr *a, const struct sockaddr *b);
uint16_t nt_addr_port(const struct sockaddr *sa);
void nt_addr_set_port(struct sockaddr *sa, uint16_t port);

/* Builds a sockaddr from raw IP bytes (4 or 16) and a port; -1 on bad
 * input. */
int nt_addr_from_raw(nt_addr *addr, const uint8_t *ip, size_t iplen,
                     uint16_t port);
/* Returns a pointer to the IP bytes and their count (4 or 16). */
const uint8_t *nt_addr_raw(const struct sockaddr *sa, size_t *iplen);

int nt_addr_is_loopback(const struct sockaddr *sa);
/* 1 when |sa|'s IP address is this host's own (loopback, or an address
 * of one of its interfaces in this network namespace): packets to it never
 * leave the host, whatever its interfaces' MTU. Asks the kernel each time
 * (getifaddrs), so not for a per-packet path. */
int nt_addr_is_own(const struct sockaddr *sa);

/* A dual-stack socket (AF_INET6, IPV6_V6ONLY off) reports IPv4 peers as
 * v4-mapped IPv6 addresses (::ffff:a.b.c.d, RFC 4291 §2.5.5.2). Sockets
 * normalise at their edge so that everything above sees one spelling of
 * each address (logs, comparisons, per-address limits, the broker's
 * observed addresses):
 *
 * nt_addr_unmap turns a v4-mapped address into the plain AF_INET one, in
 * place (|*len| follows); anything else is left alone. */
void nt_addr_unmap(struct sockaddr_storage *ss, socklen_t *len);
/* The other way, for sending on a socket of |sock_family| (|sock_v6only|:
 * IPV6_V6ONLY on): |sa| as that socket wants it in |out|, an IPv4
 * address v4-mapped on an AF_INET6 socket. Returns the length, or 0 when
 * that socket cannot reach |sa| (another family). */
socklen_t nt_addr_for_socket(int sock_family, int sock_v6only,
                             const struct sockaddr *sa,
                             struct sockaddr_storage *out);

#endif
