/* Everything GnuTLS: identity keys, self-signed certificates, the TLS 1.3
 * session that ngtcp2 drives, and peer-key verification. No GnuTLS type
 * leaves this module, so another backend can replace it. The key files
 * themselves (creation, permission checks, reading) are keyfile.c's. */
#ifndef NT_TLS_H
#define NT_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "codec/spec.h" /* NT_FINGERPRINT_LEN */

#define NT_ALPN "natter/1"

/* A long-term key (ECDSA P-256), a self-signed certificate made from it at
 * load time, and the GnuTLS credentials that present them. */
typedef struct nt_identity nt_identity;

/* Loads the PEM private key at |path|, or creates it (parent directory
 * 0700, file 0600, written atomically) when |path| does not exist.
 * Refuses a key file accessible by group or others or owned by another
 * user (see nt_keyfile_read). Returns 0 and sets
 * *pidentity (freed with nt_identity_free), or -1 with a one-line reason
 * in |err| naming the path and what to do. */
int nt_identity_load_or_create(nt_identity **pidentity, const char *path,
                               char *err, size_t errlen);

/* Creates a throw-away identity that lives only in memory. */
int nt_identity_new_ephemeral(nt_identity **pidentity, char *err,
                              size_t errlen);

void nt_identity_free(nt_identity *identity);

/* The identity's fingerprint: NT_FINGERPRINT_LEN bytes. */
const uint8_t *nt_identity_fingerprint(const nt_identity *identity);

/* A secret derived from the identity's private key (one-way), the same
 * in every process that loads the key: NT_RESET_SECRET_LEN bytes. QUIC
 * derives its stateless reset tokens from it (quic/endpoint.c). */
#define NT_RESET_SECRET_LEN 32
const uint8_t *nt_identity_reset_secret(const nt_identity *identity);

/* Writes the lowercase hex form of a fingerprint, NUL-terminated, into
 * |out| (NT_FINGERPRINT_HEX_LEN + 1 bytes). */
void nt_fingerprint_hex(const uint8_t *fp, char *out);

/* Parses the hex form (64 hex digits, ':' separators allowed); returns 0
 * or -1. */
int nt_fingerprint_parse(uint8_t *fp, const char *hex);

/* One TLS 1.3 session for one QUIC connection, configured for ngtcp2's
 * GnuTLS crypto helper, ALPN NT_ALPN, and mutual certificate
 * authentication: the server requires a client certificate. */
typedef struct nt_tls_session nt_tls_session;

/* Creates a session. |conn_ref| is the connection's ngtcp2_crypto_conn_ref
 * (passed as void * to keep ngtcp2 types out of this header); it must
 * outlive the session. When |expected_fp| is non-NULL the handshake fails
 * unless the peer's certificate key has exactly that fingerprint; when it is
 * NULL any key is accepted (the caller reads it afterwards with
 * nt_tls_session_peer_fingerprint). Returns 0 or -1. */
int nt_tls_session_new(nt_tls_session **psession, nt_identity *identity,
                       int is_server, const uint8_t *expected_fp,
                       void *conn_ref);

void nt_tls_session_free(nt_tls_session *session);

/* The gnutls_session_t, as the opaque handle ngtcp2_conn_set_tls_native_handle
 * wants. */
void *nt_tls_session_native_handle(nt_tls_session *session);

/* After the handshake: the peer's key fingerprint. Returns 0 or -1. */
int nt_tls_session_peer_fingerprint(nt_tls_session *session, uint8_t *fp);

/* 1 when the last handshake failure was a key mismatch against
 * |expected_fp|; lets the caller say "peer key mismatch" instead of a
 * generic TLS error. */
int nt_tls_session_key_mismatch(const nt_tls_session *session);

/* ---- HTTP/3 status pages beside natter's own protocol ---- */

/* Called once the ClientHello is parsed, with |is_h3| set when the client
 * chose ALPN "h3" over NT_ALPN. Returns 0 to go on with the handshake, -1
 * to refuse the connection. */
typedef int (*nt_tls_alpn_fn)(void *user_data, int is_h3);

/* A server session offering NT_ALPN and "h3" that lets |on_alpn| decide
 * who takes the connection (the endpoint routes it by protocol). For h3,
 * a client certificate is asked for but optional: without one the peer
 * fingerprint stays unknown (nt_tls_session_peer_fingerprint fails). */
int nt_tls_session_new_routed(nt_tls_session **psession, nt_identity *identity,
                              void *conn_ref, nt_tls_alpn_fn on_alpn,
                              void *user_data);
/* A client session speaking only "h3" (natter -status), presenting
 * |identity|'s certificate; |expected_fp| as for nt_tls_session_new. */
int nt_tls_session_new_h3_client(nt_tls_session **psession,
                                 nt_identity *identity,
                                 const uint8_t *expected_fp, void *conn_ref);
/* Sets the key the peer must have (from inside on_alpn). */
void nt_tls_session_expect(nt_tls_session *session, const uint8_t *fp);
/* 1 once "h3" was negotiated. */
int nt_tls_session_is_h3(const nt_tls_session *session);

/* Fills |buf| with cryptographically secure random bytes; returns 0/-1. */
int nt_random_bytes(void *buf, size_t len);

#endif
