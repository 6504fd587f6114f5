/* The TLS side of natter on GnuTLS: identity keys (parsed and generated
 * here; keyfile.c keeps them on disk), the self-signed certificate that
 * carries the key into the handshake, and sessions that ngtcp2's GnuTLS
 * crypto helper drives. Peers are authenticated by the SHA-256 of their
 * public key alone: no CA, no system trust, no names. */
#include "trust/tls.h"

#include "base/textfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "trust/keyfile.h"

/* The certificate is only an envelope for the key, so its validity just has
 * to cover any plausible clock skew and process lifetime. */
#define CERT_BACKDATE_S (60 * 60)
#define CERT_LIFETIME_S ((time_t)3653 * 24 * 60 * 60)

/* TLS 1.3 only (RFC 9001 §4.2); the AEADs every QUIC stack implements
 * (RFC 9001 §5.3 forbids CCM_8); two widely deployed groups. Middlebox
 * compatibility mode is off as RFC 9001 §8.4 requires. */
#define PRIORITY                                                               \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"       \
  "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"              \
  "%DISABLE_TLS13_COMPAT_MODE"

/* The certificate's subject and the client's SNI. Neither is checked: a
 * fixed value tells an observer nothing about who is talking. */
#define CERT_NAME "natter"

#define MOVE_AWAY_HINT NT_KEYFILE_MOVE_AWAY_HINT

struct nt_identity {
  gnutls_certificate_credentials_t cred;
  /* Parsed once here rather than per connection; immutable and shareable
   * between sessions. */
  gnutls_priority_t priority;
  uint8_t fp[NT_FINGERPRINT_LEN];
  uint8_t reset_secret[NT_RESET_SECRET_LEN];
};

struct nt_tls_session {
  gnutls_session_t session;
  int has_expected_fp;
  uint8_t expected_fp[NT_FINGERPRINT_LEN];
  int has_peer_fp;
  uint8_t peer_fp[NT_FINGERPRINT_LEN];
  int key_mismatch;
  /* Server sessions that also offer HTTP/3 (nt_tls_session_new_routed)
   * and client sessions that speak it (nt_tls_session_new_h3_client). */
  int offer_h3;
  int is_h3; /* "h3" was negotiated */
  nt_tls_alpn_fn on_alpn;
  void *on_alpn_ud;
};

#define H3_ALPN "h3"

#define set_err nt_textfile_set_err

/* SHA-256 over the DER SubjectPublicKeyInfo: it covers the algorithm and
 * curve as well as the point, and it is what `openssl pkey -pubout
 * -outform DER | sha256sum` prints, so users can check a key by hand. */
static int fingerprint_of_pubkey(gnutls_pubkey_t pub, uint8_t *fp) {
  gnutls_datum_t spki = {NULL, 0};
  int rv;

  rv = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki);
  if (rv < 0) {
    return rv;
  }
  rv = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, fp);
  gnutls_free(spki.data);
  return rv;
}

/* ---- identity files ---- */

/* Parses the key file at |path| (read by keyfile.c, which has checked the
 * file itself) into *pkey. Returns 0, 1 when there is no such file, or -1
 * with the reason in |err|. */
static int read_key_file(gnutls_x509_privkey_t *pkey, const char *path,
                         char *err, size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  gnutls_datum_t data;
  gnutls_x509_privkey_t key = NULL;
  int rv;

  rv = nt_keyfile_read(path, &buf, &len, err, errlen);
  if (rv != 0) {
    return rv;
  }
  rv = gnutls_x509_privkey_init(&key);
  if (rv < 0) {
    set_err(err, errlen, "cannot load identity key %s (%s)", path,
            gnutls_strerror(rv));
    key = NULL;
    goto fail;
  }
  data.data = buf;
  data.size = (unsigned)len;
  rv = gnutls_x509_privkey_import2(key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (rv < 0) {
    /* GnuTLS reports text without any PEM block as "requested data not
     * available", which would only puzzle a user. */
    const char *why = gnutls_strerror(rv);
    if (memmem(buf, len, "-----BEGIN", 10) == NULL) {
      why = "no PEM block found";
    } else if (rv == GNUTLS_E_DECRYPTION_FAILED) {
      why = "it is encrypted; natter needs an unencrypted key";
    }
    set_err(err, errlen,
            "identity key %s is not a usable PEM private key (%s): restore "
            "it from a backup, or " MOVE_AWAY_HINT
            " (peers and the broker will see a new identity)",
            path, why);
    goto fail;
  }
  rv = gnutls_x509_privkey_verify_params(key);
  if (rv < 0) {
    set_err(err, errlen,
            "identity key %s is damaged (%s): restore it from a backup, "
            "or " MOVE_AWAY_HINT,
            path, gnutls_strerror(rv));
    goto fail;
  }
  if (gnutls_x509_privkey_get_pk_algorithm(key) != GNUTLS_PK_ECDSA) {
    set_err(err, errlen,
            "identity key %s is not an ECDSA P-256 key: " MOVE_AWAY_HINT, path);
    goto fail;
  }

  nt_keyfile_wipe(buf, len);
  *pkey = key;
  return 0;

fail:
  nt_keyfile_wipe(buf, len);
  if (key != NULL) {
    gnutls_x509_privkey_deinit(key);
  }
  return -1;
}

static int generate_key(gnutls_x509_privkey_t *pkey, char *err, size_t errlen) {
  gnutls_x509_privkey_t key;
  int rv;

  rv = gnutls_x509_privkey_init(&key);
  if (rv < 0) {
    set_err(err, errlen, "cannot generate identity key (%s)",
            gnutls_strerror(rv));
    return -1;
  }
  rv = gnutls_x509_privkey_generate(
      key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
      0);
  if (rv < 0) {
    set_err(err, errlen, "cannot generate identity key (%s)",
            gnutls_strerror(rv));
    gnutls_x509_privkey_deinit(key);
    return -1;
  }
  *pkey = key;
  return 0;
}

static int save_key(gnutls_x509_privkey_t key, const char *path, char *err,
                    size_t errlen) {
  gnutls_datum_t pem = {NULL, 0};
  int rv;

  /* Unencrypted PKCS#8: the file mode protects it, as with ssh host keys,
   * and a daemon has nobody to ask for a passphrase. */
  rv = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                         GNUTLS_PKCS_PLAIN, &pem);
  if (rv < 0) {
    set_err(err, errlen, "cannot encode identity key %s (%s)", path,
            gnutls_strerror(rv));
    return -1;
  }
  rv = nt_keyfile_create(path, pem.data, pem.size, err, errlen);
  gnutls_memset(pem.data, 0, pem.size);
  gnutls_free(pem.data);
  return rv;
}

/* ---- certificate and credentials ---- */

static int make_self_signed_cert(gnutls_x509_crt_t *pcrt,
                                 gnutls_x509_privkey_t key) {
  gnutls_x509_crt_t crt;
  uint8_t serial[16];
  time_t now = time(NULL);
  int rv;

  rv = gnutls_x509_crt_init(&crt);
  if (rv < 0) {
    return rv;
  }
  /* RFC 5280 §4.1.2.2: a positive integer of at most 20 octets. */
  rv = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
  serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_version(crt, 3);
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_activation_time(crt, now - CERT_BACKDATE_S);
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_expiration_time(crt, now + CERT_LIFETIME_S);
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                       CERT_NAME, sizeof(CERT_NAME) - 1);
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_key(crt, key);
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
  }
  /* GnuTLS refuses to sign the handshake with a certificate whose key
   * usage lacks digitalSignature. */
  if (rv >= 0) {
    rv = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
  }
  if (rv >= 0) {
    rv = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
  }
  if (rv < 0) {
    gnutls_x509_crt_deinit(crt);
    return rv;
  }
  *pcrt = crt;
  return 0;
}

/* The secret stateless reset tokens are derived from (RFC 9000 §10.3):
 * HMAC-SHA256 of a fixed label keyed with the private scalar, so that a
 * process restarted with the same key answers a packet of a connection it
 * lost with the token its predecessor announced, and the peer learns at
 * once that the connection is gone. One-way: the tokens reveal nothing of
 * the key. */
static int derive_reset_secret(gnutls_x509_privkey_t key, uint8_t *out) {
  static const char label[] = "natter stateless reset secret v1";
  gnutls_ecc_curve_t curve;
  gnutls_datum_t x = {NULL, 0}, y = {NULL, 0}, k = {NULL, 0};
  int rv = gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y, &k);
  if (rv < 0) {
    return rv;
  }
  rv = gnutls_hmac_fast(GNUTLS_MAC_SHA256, k.data, k.size, label,
                        sizeof(label) - 1, out);
  gnutls_memset(k.data, 0, k.size);
  gnutls_free(x.data);
  gnutls_free(y.data);
  gnutls_free(k.data);
  return rv;
}

/* Builds the identity around |key|; |path| only names it in errors. The
 * caller keeps ownership of |key|: GnuTLS copies it into the
 * credentials. */
static int identity_from_key(nt_identity **pidentity, gnutls_x509_privkey_t key,
                             const char *path, char *err, size_t errlen) {
  nt_identity *id;
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t pub = NULL;
  gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
  const char *what;
  int rv;

  id = calloc(1, sizeof(*id));
  if (id == NULL) {
    set_err(err, errlen, "cannot set up identity %s: out of memory", path);
    return -1;
  }

  what = "cannot create a certificate for";
  rv = make_self_signed_cert(&crt, key);
  if (rv >= 0) {
    what = "cannot read the public key of";
    rv = gnutls_pubkey_init(&pub);
  }
  if (rv >= 0) {
    rv = gnutls_pubkey_import_x509(pub, crt, 0);
  }
  if (rv >= 0) {
    rv = gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0);
  }
  if (rv >= 0 && curve != GNUTLS_ECC_CURVE_SECP256R1) {
    set_err(err, errlen,
            "identity key %s is on curve %s, not P-256: " MOVE_AWAY_HINT, path,
            gnutls_ecc_curve_get_name(curve));
    goto fail;
  }
  if (rv >= 0) {
    rv = fingerprint_of_pubkey(pub, id->fp);
  }
  if (rv >= 0) {
    what = "cannot derive the stateless reset secret of";
    rv = derive_reset_secret(key, id->reset_secret);
  }
  if (rv >= 0) {
    what = "cannot set up TLS credentials for";
    rv = gnutls_certificate_allocate_credentials(&id->cred);
  }
  if (rv >= 0) {
    rv = gnutls_certificate_set_x509_key(id->cred, &crt, 1, key);
  }
  if (rv >= 0) {
    what = "cannot set up TLS priorities for";
    rv = gnutls_priority_init(&id->priority, PRIORITY, NULL);
  }
  if (rv < 0) {
    set_err(err, errlen, "%s identity %s (%s)", what, path,
            gnutls_strerror(rv));
    goto fail;
  }

  gnutls_pubkey_deinit(pub);
  gnutls_x509_crt_deinit(crt);
  *pidentity = id;
  return 0;

fail:
  if (pub != NULL) {
    gnutls_pubkey_deinit(pub);
  }
  if (crt != NULL) {
    gnutls_x509_crt_deinit(crt);
  }
  nt_identity_free(id);
  return -1;
}

int nt_identity_load_or_create(nt_identity **pidentity, const char *path,
                               char *err, size_t errlen) {
  gnutls_x509_privkey_t key = NULL;
  int rv;

  *pidentity = NULL;
  set_err(err, errlen, "%s", "");
  if (path == NULL || path[0] == '\0') {
    set_err(err, errlen,
            "no identity key path given: set the path of the key file");
    return -1;
  }
  if (path[strlen(path) - 1] == '/') {
    set_err(err, errlen,
            "identity key path %s names a directory: give the path of the "
            "key file inside it",
            path);
    return -1;
  }

  rv = read_key_file(&key, path, err, errlen);
  if (rv == 1) {
    if (generate_key(&key, err, errlen) != 0) {
      return -1;
    }
    rv = save_key(key, path, err, errlen);
    if (rv == 1) {
      /* Lost a creation race: the winner's key is the identity. */
      gnutls_x509_privkey_deinit(key);
      key = NULL;
      rv = read_key_file(&key, path, err, errlen);
      if (rv == 1) {
        set_err(err, errlen,
                "identity key %s exists but cannot be opened (a dangling "
                "symbolic link?): fix or remove it",
                path);
        rv = -1;
      }
    }
  }
  if (rv != 0) {
    if (key != NULL) {
      gnutls_x509_privkey_deinit(key);
    }
    return -1;
  }

  rv = identity_from_key(pidentity, key, path, err, errlen);
  gnutls_x509_privkey_deinit(key);
  return rv;
}

int nt_identity_new_ephemeral(nt_identity **pidentity, char *err,
                              size_t errlen) {
  gnutls_x509_privkey_t key;
  int rv;

  *pidentity = NULL;
  set_err(err, errlen, "%s", "");
  if (generate_key(&key, err, errlen) != 0) {
    return -1;
  }
  rv = identity_from_key(pidentity, key, "(ephemeral)", err, errlen);
  gnutls_x509_privkey_deinit(key);
  return rv;
}

void nt_identity_free(nt_identity *identity) {
  if (identity == NULL) {
    return;
  }
  if (identity->priority != NULL) {
    gnutls_priority_deinit(identity->priority);
  }
  if (identity->cred != NULL) {
    gnutls_certificate_free_credentials(identity->cred);
  }
  free(identity);
}

const uint8_t *nt_identity_reset_secret(const nt_identity *identity) {
  return identity->reset_secret;
}

const uint8_t *nt_identity_fingerprint(const nt_identity *identity) {
  return identity->fp;
}

/* ---- fingerprints as text ---- */

void nt_fingerprint_hex(const uint8_t *fp, char *out) {
  static const char hex[] = "0123456789abcdef";

  for (size_t i = 0; i < NT_FINGERPRINT_LEN; i++) {
    out[2 * i] = hex[fp[i] >> 4];
    out[2 * i + 1] = hex[fp[i] & 0xf];
  }
  out[NT_FINGERPRINT_HEX_LEN] = '\0';
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

int nt_fingerprint_parse(uint8_t *fp, const char *hex) {
  uint8_t out[NT_FINGERPRINT_LEN];
  const char *p = hex;

  if (hex == NULL) {
    return -1;
  }
  for (size_t i = 0; i < NT_FINGERPRINT_LEN; i++) {
    int hi, lo;

    /* A ':' may only separate two byte pairs, as in "ab:cd" (the form
     * ssh-keygen -E and browsers print). */
    if (i > 0 && *p == ':') {
      p++;
    }
    hi = hex_digit(p[0]);
    lo = hi < 0 ? -1 : hex_digit(p[1]);
    if (lo < 0) {
      return -1;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
    p += 2;
  }
  if (*p != '\0') {
    return -1;
  }
  memcpy(fp, out, sizeof(out));
  return 0;
}

/* ---- sessions ---- */

/* RFC 9001 §8.1: a QUIC handshake without ALPN must fail with
 * no_application_protocol. GNUTLS_ALPN_MANDATORY only rejects a peer that
 * offers other protocols; a peer that sends no ALPN extension at all gets
 * through, so the result is checked explicitly. */
static int check_alpn(gnutls_session_t session) {
  nt_tls_session *s = gnutls_db_get_ptr(session);
  gnutls_datum_t selected;

  if (gnutls_alpn_get_selected_protocol(session, &selected) != 0) {
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  }
  if (s && s->offer_h3 && selected.size == sizeof(H3_ALPN) - 1 &&
      memcmp(selected.data, H3_ALPN, sizeof(H3_ALPN) - 1) == 0) {
    s->is_h3 = 1;
    return 0;
  }
  if (s && s->offer_h3 && !s->on_alpn) {
    return GNUTLS_E_NO_APPLICATION_PROTOCOL; /* an h3-only client */
  }
  if (selected.size != sizeof(NT_ALPN) - 1 ||
      memcmp(selected.data, NT_ALPN, sizeof(NT_ALPN) - 1) != 0) {
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  }
  return 0;
}

/* Server: the ClientHello's extensions, ALPN included, have been parsed
 * when the post hook runs. */
static int client_hello_hook(gnutls_session_t session, unsigned int htype,
                             unsigned int when, unsigned int incoming,
                             const gnutls_datum_t *msg) {
  (void)htype;
  (void)when;
  (void)incoming;
  (void)msg;
  int rv = check_alpn(session);
  nt_tls_session *s = gnutls_db_get_ptr(session);
  if (rv != 0 || !s || !s->on_alpn) {
    return rv;
  }
  /* The owner decides who gets this connection now that it knows the
   * protocol. A status reader may come without a certificate: ask for
   * one, do not require it (its key only widens what it may read). */
  if (s->is_h3) {
    gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
  }
  return s->on_alpn(s->on_alpn_ud, s->is_h3) == 0 ? 0
                                                  : GNUTLS_E_CERTIFICATE_ERROR;
}

/* Runs in both roles once the peer's CertificateVerify has checked out, so
 * the peer has proved it holds the private key of the certificate examined
 * here. The certificate itself means nothing (anyone can make one): only
 * its key's fingerprint is compared. Returning a negative value fails the
 * handshake. */
static int verify_peer(gnutls_session_t session) {
  nt_tls_session *s = gnutls_db_get_ptr(session);
  const gnutls_datum_t *certs;
  unsigned int ncerts = 0;
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t pub = NULL;
  uint8_t fp[NT_FINGERPRINT_LEN];
  int rv;

  if (s == NULL) {
    return -1;
  }
  /* The client has parsed EncryptedExtensions by now; on the server this
   * repeats the ClientHello check. */
  rv = check_alpn(session);
  if (rv != 0) {
    return rv;
  }
  certs = gnutls_certificate_get_peers(session, &ncerts);
  if (certs == NULL || ncerts == 0) {
    /* Only an HTTP/3 status reader may stay anonymous. */
    return s->is_h3 && s->on_alpn ? 0 : -1;
  }
  rv = gnutls_x509_crt_init(&crt);
  if (rv >= 0) {
    rv = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
  }
  if (rv >= 0) {
    rv = gnutls_pubkey_init(&pub);
  }
  if (rv >= 0) {
    rv = gnutls_pubkey_import_x509(pub, crt, 0);
  }
  if (rv >= 0) {
    rv = fingerprint_of_pubkey(pub, fp);
  }
  if (pub != NULL) {
    gnutls_pubkey_deinit(pub);
  }
  if (crt != NULL) {
    gnutls_x509_crt_deinit(crt);
  }
  if (rv < 0) {
    return -1;
  }

  /* Kept even on a mismatch, so the caller can log which key came. */
  memcpy(s->peer_fp, fp, sizeof(fp));
  s->has_peer_fp = 1;
  if (s->has_expected_fp &&
      memcmp(fp, s->expected_fp, NT_FINGERPRINT_LEN) != 0) {
    s->key_mismatch = 1;
    return -1;
  }
  return 0;
}

static const gnutls_datum_t natter_alpn[] = {
    {(unsigned char *)NT_ALPN, sizeof(NT_ALPN) - 1}};

static int session_new(nt_tls_session **psession, nt_identity *identity,
                       int is_server, const uint8_t *expected_fp,
                       void *conn_ref, const gnutls_datum_t *alpn,
                       unsigned nalpn);

int nt_tls_session_new(nt_tls_session **psession, nt_identity *identity,
                       int is_server, const uint8_t *expected_fp,
                       void *conn_ref) {
  return session_new(psession, identity, is_server, expected_fp, conn_ref,
                     natter_alpn, 1);
}

static int session_new(nt_tls_session **psession, nt_identity *identity,
                       int is_server, const uint8_t *expected_fp,
                       void *conn_ref, const gnutls_datum_t *alpn,
                       unsigned nalpn) {
  nt_tls_session *s;
  int rv;

  *psession = NULL;
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return -1;
  }
  if (expected_fp != NULL) {
    memcpy(s->expected_fp, expected_fp, NT_FINGERPRINT_LEN);
    s->has_expected_fp = 1;
  }

  if (is_server) {
    /* Tickets would only serve resumption, which we do not offer: every
     * connection proves its key afresh. */
    rv = gnutls_init(&s->session, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET |
                                      GNUTLS_NO_END_OF_EARLY_DATA);
  } else {
    /* GNUTLS_FORCE_CLIENT_CERT: send our certificate even if a server
     * lists certificate authorities that it was not issued by. */
    rv = gnutls_init(&s->session, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA |
                                      GNUTLS_FORCE_CLIENT_CERT);
  }
  if (rv < 0) {
    s->session = NULL;
    goto fail;
  }
  rv = is_server ? ngtcp2_crypto_gnutls_configure_server_session(s->session)
                 : ngtcp2_crypto_gnutls_configure_client_session(s->session);
  if (rv != 0) {
    goto fail;
  }
  rv = gnutls_priority_set(s->session, identity->priority);
  if (rv < 0) {
    goto fail;
  }
  rv = gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE,
                              identity->cred);
  if (rv < 0) {
    goto fail;
  }
  rv = gnutls_alpn_set_protocols(s->session, alpn, nalpn,
                                 is_server ? GNUTLS_ALPN_MANDATORY |
                                                 GNUTLS_ALPN_SERVER_PRECEDENCE
                                           : GNUTLS_ALPN_MANDATORY);
  if (rv < 0) {
    goto fail;
  }
  if (is_server) {
    gnutls_certificate_server_set_request(s->session, GNUTLS_CERT_REQUIRE);
    gnutls_handshake_set_hook_function(s->session,
                                       GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                       GNUTLS_HOOK_POST, client_hello_hook);
  } else {
    rv = gnutls_server_name_set(s->session, GNUTLS_NAME_DNS, CERT_NAME,
                                sizeof(CERT_NAME) - 1);
    if (rv < 0) {
      goto fail;
    }
  }

  /* ngtcp2's crypto helper owns the session pointer (it must hold the
   * ngtcp2_crypto_conn_ref), so the verify callback finds this object
   * through the db pointer instead, which GnuTLS only hands to session
   * cache callbacks, and we install none. */
  gnutls_session_set_ptr(s->session, conn_ref);
  gnutls_db_set_ptr(s->session, s);
  gnutls_session_set_verify_function(s->session, verify_peer);

  *psession = s;
  return 0;

fail:
  nt_tls_session_free(s);
  return -1;
}

void nt_tls_session_free(nt_tls_session *session) {
  if (session == NULL) {
    return;
  }
  if (session->session != NULL) {
    gnutls_deinit(session->session);
  }
  free(session);
}

void *nt_tls_session_native_handle(nt_tls_session *session) {
  return session->session;
}

int nt_tls_session_peer_fingerprint(nt_tls_session *session, uint8_t *fp) {
  if (!session->has_peer_fp) {
    return -1;
  }
  memcpy(fp, session->peer_fp, NT_FINGERPRINT_LEN);
  return 0;
}

int nt_tls_session_key_mismatch(const nt_tls_session *session) {
  return session->key_mismatch;
}

int nt_random_bytes(void *buf, size_t len) {
  if (len == 0) {
    return 0;
  }
  return gnutls_rnd(GNUTLS_RND_RANDOM, buf, len) == 0 ? 0 : -1;
}

/* ---- HTTP/3 beside natter's own protocol ---- */

int nt_tls_session_new_routed(nt_tls_session **psession, nt_identity *identity,
                              void *conn_ref, nt_tls_alpn_fn on_alpn,
                              void *ud) {
  static const gnutls_datum_t alpns[] = {
      {(unsigned char *)NT_ALPN, sizeof(NT_ALPN) - 1},
      {(unsigned char *)H3_ALPN, sizeof(H3_ALPN) - 1}};
  if (session_new(psession, identity, 1, NULL, conn_ref, alpns, 2) != 0) {
    return -1;
  }
  nt_tls_session *s = *psession;
  s->offer_h3 = 1;
  s->on_alpn = on_alpn;
  s->on_alpn_ud = ud;
  return 0;
}

int nt_tls_session_new_h3_client(nt_tls_session **psession,
                                 nt_identity *identity,
                                 const uint8_t *expected_fp, void *conn_ref) {
  static const gnutls_datum_t alpn[] = {
      {(unsigned char *)H3_ALPN, sizeof(H3_ALPN) - 1}};
  if (session_new(psession, identity, 0, expected_fp, conn_ref, alpn, 1) != 0) {
    return -1;
  }
  (*psession)->offer_h3 = 1;
  return 0;
}

void nt_tls_session_expect(nt_tls_session *session, const uint8_t *fp) {
  if (fp) {
    memcpy(session->expected_fp, fp, NT_FINGERPRINT_LEN);
    session->has_expected_fp = 1;
  }
}

int nt_tls_session_is_h3(const nt_tls_session *session) {
  return session->is_h3;
}
