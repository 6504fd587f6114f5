/*
 * natter: peer-to-peer TCP port forwarding through NATs.
 *
 * Two clients behind NATs meet through a public broker, punch a UDP hole
 * and carry forwarded TCP connections over one mutually authenticated QUIC
 * connection between them. The broker only introduces the peers.
 *
 * Everything runs on the caller's libevent event_base: the library starts
 * no thread, installs no signal handler and keeps no global mutable state,
 * so one process can run a broker and several clients.
 *
 * Ownership: every object created by a natter_*_new() function belongs to
 * the caller and is released with the matching natter_*_free(). Strings in
 * config structs are copied by _new(); the caller may free them afterwards.
 * Strings passed to callbacks are valid only during the callback.
 */
#ifndef NATTER_H
#define NATTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NATTER_BUILDING)
#define NATTER_EXPORT __attribute__((visibility("default")))
#else
#define NATTER_EXPORT
#endif

#define NATTER_VERSION_MAJOR 0
#define NATTER_VERSION_MINOR 1
#define NATTER_VERSION_PATCH 0

struct event_base;

/* Error codes: 0 is success, everything else is negative. */
enum {
  NATTER_OK = 0,
  NATTER_ERR_INVALID = -1,       /* bad argument or configuration */
  NATTER_ERR_NOMEM = -2,         /* out of memory */
  NATTER_ERR_SOCKET = -3,        /* a socket operation failed */
  NATTER_ERR_ADDR_IN_USE = -4,   /* a local port is already in use */
  NATTER_ERR_IDENTITY = -5,      /* identity key unreadable or invalid */
  NATTER_ERR_SPEC = -6,          /* malformed forward spec */
  NATTER_ERR_BROKER = -7,        /* broker unreachable or failed */
  NATTER_ERR_NAME_TAKEN = -8,    /* name bound to another key */
  NATTER_ERR_PEER_UNKNOWN = -9,  /* no such peer at the broker */
  NATTER_ERR_PEER_NOT_LISTENING = -10,
  NATTER_ERR_PUNCH = -11,        /* hole punching failed */
  NATTER_ERR_KEY_MISMATCH = -12, /* peer key differs from the vouched one */
  NATTER_ERR_REFUSED = -13,      /* target refused on the peer */
  NATTER_ERR_UNREACHABLE = -14,  /* target unreachable from the peer */
  NATTER_ERR_DENIED = -15,       /* the peer's rules forbid the target */
  NATTER_ERR_PROTOCOL = -16,     /* malformed message from the network */
  NATTER_ERR_TLS = -17,          /* TLS handshake failed */
  NATTER_ERR_UNAUTHORIZED = -18, /* broker token refused */
  NATTER_ERR_CLOSED = -19,       /* connection closed */
  NATTER_ERR_TIMEOUT = -20,      /* no answer in time */
  NATTER_ERR_RESOLVE = -21,      /* host name did not resolve */
  NATTER_ERR_REGISTRY = -22      /* broker registry unusable or full */
};

/* Returns a static English description of |err|; never NULL. */
NATTER_EXPORT const char *natter_strerror(int err);

/* Returns the library version as "MAJOR.MINOR.PATCH". */
NATTER_EXPORT const char *natter_version(void);

typedef enum natter_log_level {
  NATTER_LOG_ERROR = 0,
  NATTER_LOG_WARN = 1,
  NATTER_LOG_INFO = 2,
  NATTER_LOG_DEBUG = 3
} natter_log_level;

/* Receives one log line, without trailing newline. */
typedef void (*natter_log_fn)(natter_log_level level, const char *line,
                              void *user_data);

/* ------------------------------------------------------------------ */
/* Broker                                                              */

typedef struct natter_broker natter_broker; /* opaque */

typedef struct natter_broker_config {
  const char *listen;        /* "[ADDR]:PORT", e.g. ":10000" (all IPv4
                                addresses) or "127.0.0.1:10000"; port 0
                                picks a free port. Required. */
  const char *identity_file; /* broker key; NULL: ~/.config/natter/broker.key
                                ("" : an ephemeral in-memory key) */
  natter_log_fn log;         /* NULL: lines on stderr */
  natter_log_level log_level; /* default NATTER_LOG_INFO */
  void *user_data;           /* passed to every callback */
} natter_broker_config;

NATTER_EXPORT void natter_broker_config_default(natter_broker_config *cfg);

/* Creates a broker that serves on |base| once the loop runs. Returns 0 and
 * sets *pbroker, or a negative NATTER_ERR_* (the reason is also logged). */
NATTER_EXPORT int natter_broker_new(natter_broker **pbroker,
                                    struct event_base *base,
                                    const natter_broker_config *cfg);

/* Closes every client connection and frees the broker. NULL is a no-op. */
NATTER_EXPORT void natter_broker_free(natter_broker *broker);

/* The UDP port the broker listens on (useful after asking for port 0). */
NATTER_EXPORT uint16_t natter_broker_port(const natter_broker *broker);

typedef struct natter_broker_stats {
  uint64_t bytes_received; /* UDP payload bytes, all clients */
  uint64_t bytes_sent;
  uint64_t clients;        /* clients checked in now */
  uint64_t introductions;  /* peer introductions made */
} natter_broker_stats;

NATTER_EXPORT void natter_broker_get_stats(const natter_broker *broker,
                                           natter_broker_stats *stats);

/* ------------------------------------------------------------------ */
/* Client                                                              */

typedef struct natter_client natter_client;   /* opaque */
typedef struct natter_forward natter_forward; /* opaque, owned by its client */

typedef enum natter_event_type {
  NATTER_EVENT_CHECKED_IN = 1,    /* the broker accepted us */
  NATTER_EVENT_FATAL,             /* the client cannot go on (name taken,
                                     broker unreachable at start, ...): free
                                     it once back from the callback */
  NATTER_EVENT_PEER_CONNECTED,    /* peer connection up; peer is set */
  NATTER_EVENT_PEER_DISCONNECTED, /* an established peer connection ended */
  NATTER_EVENT_PEER_FAILED,       /* introduction or hole punching failed */
  NATTER_EVENT_FORWARD_OPENED,    /* the peer accepted one connection of
                                     |forward| and connected its target */
  NATTER_EVENT_FORWARD_CLOSED,    /* one connection of |forward| ended
                                     cleanly; exit_status for commands */
  NATTER_EVENT_FORWARD_FAILED     /* one connection of |forward| failed:
                                     error and message say why */
} natter_event_type;

typedef struct natter_event {
  natter_event_type type;
  int error;                /* NATTER_ERR_* or 0 */
  const char *peer;         /* peer name or NULL */
  const char *message;      /* one line for a user */
  natter_forward *forward;  /* FORWARD_* events, else NULL */
  int exit_status;          /* FORWARD_CLOSED of a remote command: its exit
                               status (128+N when killed by signal N);
                               otherwise -1 */
} natter_event;

/* Events arrive from inside the event loop. A callback may add forwards,
 * but must not free the client or remove the forward it is told about;
 * break the loop (or defer) and do that afterwards. */
typedef void (*natter_event_fn)(natter_client *client,
                                const natter_event *event, void *user_data);

typedef struct natter_client_config {
  const char *name;          /* this client's name at the broker; required */
  const char *broker;        /* "host:port"; required */
  const char *identity_file; /* NULL: ~/.config/natter/NAME.key, created
                                with mode 0600 on first use; "": an
                                ephemeral in-memory key */
  const char *broker_key;    /* hex SHA-256 fingerprint to pin the broker's
                                key; NULL: accept any broker key */
  int listen;                /* nonzero: accept forwards from peers, to
                                this machine's loopback by default */
  const char *const *allow;  /* NULL-terminated extra targets a listener
                                accepts: "HOST:PORT", "HOST:*", "HOST" or
                                "*"; NULL: loopback only */
  const char *const *allow_commands; /* NULL-terminated programs peers may
                                run here, matched exactly against argv[0],
                                or "*" for any; NULL: none */
  uint16_t local_port;         /* this client's UDP port; 0 (default):
                                  any free port. Fix it when a router
                                  forwards a UDP port to this host. */
  uint32_t connect_timeout_ms; /* hole punching budget; default 10000 */
  natter_log_fn log;           /* NULL: lines on stderr */
  natter_log_level log_level;  /* default NATTER_LOG_INFO */
  natter_event_fn on_event;    /* may be NULL */
  void *user_data;             /* passed to every callback */
} natter_client_config;

NATTER_EXPORT void natter_client_config_default(natter_client_config *cfg);

/* Creates a client on |base|; it checks in at the broker once the loop
 * runs. Returns 0 and sets *pclient, or a negative NATTER_ERR_*. */
NATTER_EXPORT int natter_client_new(natter_client **pclient,
                                    struct event_base *base,
                                    const natter_client_config *cfg);

/* Closes every forward and peer connection and frees the client. NULL is a
 * no-op. Must not be called from inside one of the client's callbacks. */
NATTER_EXPORT void natter_client_free(natter_client *client);

/* This client's key fingerprint as 64 lowercase hex digits. */
NATTER_EXPORT const char *natter_client_fingerprint(const natter_client *c);

/* ------------------------------------------------------------------ */
/* Forwards                                                            */

typedef struct natter_forward_config {
  const char *peer;        /* peer name; required */
  uint16_t local_port;     /* listen on this TCP port; 0: use the fds */
  const char *bind;        /* listen address; NULL: "127.0.0.1" */
  int in_fd, out_fd;       /* local_port 0: one session that reads in_fd
                              and writes out_fd (may be equal, e.g. a
                              socket). The forward owns them from here on
                              and closes them when the session ends.
                              Default -1. */
  int err_fd;              /* where a remote command's stderr goes;
                              default 2; -1 discards it */
  const char *host;        /* target host as the peer reaches it; NULL or
                              "": the peer's loopback */
  uint16_t port;           /* target port (1..65535) unless argv is set */
  const char *const *argv; /* NULL-terminated remote command to run on the
                              peer instead of connecting host:port */
} natter_forward_config;

NATTER_EXPORT void
natter_forward_config_default(natter_forward_config *cfg);

/* Adds a forward. A TCP port is bound at once, so NATTER_ERR_ADDR_IN_USE
 * is reported here; an fd session starts connecting to the peer at once.
 * On success *pforward (may be NULL) names the forward; it belongs to the
 * client, and so do in_fd/out_fd. On failure the fds stay the caller's.
 * |err| (may be NULL) receives a one-line reason on failure. */
NATTER_EXPORT int natter_client_add_forward(natter_client *client,
                                            const natter_forward_config *cfg,
                                            natter_forward **pforward,
                                            char *err, size_t errlen);

/* The same from a spec as the CLI takes it: "LOCALPORT:PEER[:HOST]:PORT",
 * ":PEER[:HOST]:PORT" (stdin/stdout), or "LOCALPORT:PEER:" / ":PEER:"
 * with |argv| the remote command. Specs without a local port use fds 0
 * and 1. */
NATTER_EXPORT int natter_client_add_forward_spec(natter_client *client,
                                                 const char *spec,
                                                 const char *const *argv,
                                                 natter_forward **pforward,
                                                 char *err, size_t errlen);

/* Checks a spec's syntax without a client (for early, clear errors).
 * |is_command| (may be NULL) is set when the spec ends in "PEER:" and needs
 * a command; |uses_stdio| (may be NULL) when it has no local port. Returns
 * 0 or NATTER_ERR_SPEC with a one-line reason in |err|. */
NATTER_EXPORT int natter_spec_check(const char *spec, int *is_command,
                                    int *uses_stdio, char *err,
                                    size_t errlen);

/* Checks a key fingerprint as -broker-key takes it (64 hex digits, ':'
 * between pairs allowed). Returns 0 or NATTER_ERR_INVALID. */
NATTER_EXPORT int natter_fingerprint_check(const char *fingerprint);

/* Stops listening and closes the forward's connections (resetting their
 * streams). NULL is a no-op. Not from inside an event about |forward|. */
NATTER_EXPORT void natter_forward_remove(natter_forward *forward);

/* The local TCP port a forward listens on; 0 for an fd session. */
NATTER_EXPORT uint16_t natter_forward_local_port(const natter_forward *f);

typedef struct natter_forward_stats {
  uint64_t connections; /* connections started */
  uint64_t active;      /* connections open now */
  uint64_t failures;    /* connections that failed */
  uint64_t bytes_sent;  /* local -> peer */
  uint64_t bytes_received; /* peer -> local */
} natter_forward_stats;

NATTER_EXPORT void natter_forward_get_stats(const natter_forward *forward,
                                            natter_forward_stats *stats);

typedef struct natter_peer_stats {
  int connected;           /* 1 while the QUIC connection is up */
  uint64_t rtt_us;         /* smoothed round-trip time */
  uint64_t bytes_sent;     /* UDP payload bytes on the connection */
  uint64_t bytes_received;
  uint64_t streams;        /* forwarded connections open now */
} natter_peer_stats;

/* Fills |stats| for |peer|. Returns 0, or NATTER_ERR_PEER_UNKNOWN when
 * this client never dealt with that peer. */
NATTER_EXPORT int natter_client_get_peer_stats(const natter_client *client,
                                               const char *peer,
                                               natter_peer_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* NATTER_H */
