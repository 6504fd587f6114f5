/* Forward specs as users type them: "LOCALPORT:PEER[:HOST]:PORT", and
 * the forms of peer names and key fingerprints. */
#ifndef NT_SPEC_H
#define NT_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define NT_NAME_MAX 63  /* peer names: [A-Za-z0-9._-], 1..63 bytes */
#define NT_HOST_MAX 253 /* DNS name limit (RFC 1035 §2.3.4) */
/* A key is named by its fingerprint: SHA-256 of the DER
 * SubjectPublicKeyInfo, written as lowercase hex. */
#define NT_FINGERPRINT_LEN 32
#define NT_FINGERPRINT_HEX_LEN (2 * NT_FINGERPRINT_LEN)

enum { NT_SPEC_TCP = 0, NT_SPEC_UDP = 1, NT_SPEC_SOCKS = 2 };

typedef struct nt_spec {
  uint16_t local_port;          /* 0: stdin/stdout (spec starts with ':') */
  char peer[NT_NAME_MAX + 1];   /* peer name at the broker */
  char host[NT_HOST_MAX + 1];   /* target host as seen from the peer;
                                   "" means the peer's loopback */
  uint16_t port;                /* target port; 0 when is_command */
  int is_command;               /* spec ended in "PEER:" and the command
                                   follows as separate arguments */
  int kind;                     /* NT_SPEC_TCP, NT_SPEC_UDP or NT_SPEC_SOCKS:
                                   the spec's "udp:" or "socks:" prefix */
} nt_spec;

/* Parses one spec. Accepted forms:
 *   LOCALPORT:PEER:PORT          8022:bob:22
 *   LOCALPORT:PEER:HOST:PORT     8022:bob:10.0.1.1:22, 8022:bob:[::1]:22
 *   :PEER:PORT, :PEER:HOST:PORT  stdin/stdout instead of a local port
 *   LOCALPORT:PEER: , :PEER:     a command (given separately) runs on PEER
 *   udp:LOCALPORT:PEER[:HOST]:PORT  UDP datagrams (a local port, no
 *                                command)
 *   socks:LOCALPORT:PEER         a SOCKS5 server on 127.0.0.1:LOCALPORT
 *   socks:BIND:LOCALPORT:PEER    ... on BIND (IPv4, or [IPv6]), kept in
 *                                |host|; |port| stays 0
 * Returns 0, or -1 with a one-line reason in |err| (always NUL-terminated)
 * that names the offending part and shows the expected form. */
int nt_spec_parse(nt_spec *spec, const char *text, char *err, size_t errlen);

/* Returns 1 when |name| is a valid peer name, 0 otherwise. */
int nt_name_valid(const char *name);

/* Parses a decimal port 1..65535 from the whole of |s|; returns the port or
 * 0 when |s| is not one. */
uint16_t nt_port_parse(const char *s);

#endif
