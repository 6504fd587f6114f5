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
 *
 * Structs that grow: the caller allocates the config and stats structs
 * (natter_*_config, natter_*_stats), so a field added in a later release
 * must not make the library read or write past a struct compiled with an
 * older header. As in ngtcp2, each such struct has a version,
 * NATTER_<STRUCT>_VERSION, raised whenever a field is appended (fields are
 * only ever appended). Every function that fills or reads one is a macro
 * passing the version of the header the caller was compiled with to a
 * *_versioned() function, e.g. natter_client_config_default(cfg) calls
 * natter_client_config_default_versioned(NATTER_CLIENT_CONFIG_VERSION,
 * cfg). The library then touches only the fields that version has: a
 * config from an older caller gets the defaults for the newer fields, and
 * stats are written up to the older caller's last field. Call the macros;
 * the *_versioned() functions are the ABI behind them. A version newer
 * than the library's (a program run against an older library than it was
 * built for) is refused with NATTER_ERR_INVALID. natter_event is different:
 * the library allocates it and callbacks only read it, so appending a
 * field to it needs no version. (NATTER_TEST_FUTURE_FIELDS is defined only
 * by tests/abi, to build a library as a later release with appended
 * fields would be; never define it.)
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
  NATTER_ERR_DENIED = -15,       /* the peer's rules forbid it (or us) */
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

/* Formats one log line as a JSON object on one line, for sinks that feed
 * log collectors: {"time":"2024-05-01T12:00:00.123Z","level":"info",
 * "msg":"..."}. The keys are stable; "time" (UTC, RFC 3339, milliseconds)
 * is left out when |unix_ms| is 0, e.g. when journald stamps lines itself.
 * Writes at most |outlen| bytes, always NUL-terminated (a line that does
 * not fit is cut, and then is no valid JSON: 4 times the line's length
 * plus 100 is always enough). Returns the length the whole object needs,
 * without the NUL, like snprintf. */
NATTER_EXPORT size_t natter_log_json(char *out, size_t outlen,
                                     natter_log_level level, uint64_t unix_ms,
                                     const char *line);

/* Writes |unix_ms| as "2024-05-01T12:00:00.123Z" (UTC, RFC 3339); returns
 * its length as snprintf does. 32 bytes are enough. */
NATTER_EXPORT size_t natter_log_timestamp(char *out, size_t outlen,
                                          uint64_t unix_ms);

/* ------------------------------------------------------------------ */
/* Broker                                                              */

typedef struct natter_broker natter_broker; /* opaque */

#define NATTER_BROKER_CONFIG_V1 1
#define NATTER_BROKER_CONFIG_V2 2 /* registry .. retry_above_per_s */
#define NATTER_BROKER_CONFIG_V3 3 /* relay .. relay_total */
#define NATTER_BROKER_CONFIG_V4 4 /* new_names_per_hour */
#define NATTER_BROKER_CONFIG_V5 5 /* tcp_listen */
#define NATTER_BROKER_CONFIG_VERSION NATTER_BROKER_CONFIG_V5

typedef struct natter_broker_config {
  const char *listen;        /* "[ADDR]:PORT", e.g. ":10000" (all IPv4
                                addresses) or "127.0.0.1:10000"; port 0
                                picks a free port. Required. */
  const char *identity_file; /* broker key; NULL: ~/.config/natter/broker.key
                                ("" : an ephemeral in-memory key) */
  natter_log_fn log;         /* NULL: lines on stderr */
  natter_log_level log_level; /* default NATTER_LOG_INFO */
  void *user_data;           /* passed to every callback */
  /* V2: who may use which name, and who may check in at all. */
  const char *registry;      /* SQLite file binding names to keys; NULL:
                                $STATE_DIRECTORY/registry.db (systemd's
                                StateDirectory), else
                                $XDG_STATE_HOME/natter/registry.db or
                                ~/.local/state/natter/registry.db; "" or
                                "memory:": in memory only (bindings die
                                with the broker: tests and demos). Also
                                "sqlite:///PATH", or "postgresql://..."
                                (a libpq URI: a database that several
                                brokers share, doc/operations.md);
                                another URI scheme is refused. An
                                unreadable or corrupt file makes
                                natter_broker_new fail (an unreachable
                                database does not: it is retried). */
  uint32_t name_expiry_s;    /* a name unused this long is released;
                                default 2592000 (30 days); 0: never */
  const char *token;         /* shared secret every client must present
                                (16-256 printable characters, no blank);
                                NULL: none */
  const char *token_file;    /* the same, read from the first line of this
                                file; NULL: none */
  const char *admitted_keys; /* file of "FINGERPRINT NAME" lines: only
                                these keys may check in, each under its
                                name; NULL: any key */
  /* V2: limits against one host holding the broker (doc/operations.md,
   * "Limits"); a new connection past one is refused with a message that
   * names it. */
  uint32_t max_clients;      /* connections, checked in or not; default
                                10000 */
  uint32_t max_pending;      /* connections not checked in yet; default
                                512 */
  uint32_t max_per_source;   /* connections from one IP address; default
                                32 */
  uint32_t retry_above_per_s; /* more new connections a second than this
                                 get a QUIC Retry first (address
                                 validation); default 200; 0: never */
  /* V3: the relay for peers that cannot punch a hole (doc/design.md,
   * "Relay"). */
  int relay;            /* nonzero: relay opaque QUIC packets between
                           introduced clients on UDP port+2; default
                           0 (off) */
  uint64_t relay_rate;  /* bytes a second each key, and each source
                           address, may send through the relay;
                           default 2000000 (2 MB/s); 0: no cap */
  uint64_t relay_total; /* bytes each key, and each source address,
                           may send through the relay in an hour;
                           default 1000000000 (1 GB); 0: no cap */
  /* V4: names a source may add to the registry (doc/operations.md,
   * "Limits"). */
  uint32_t new_names_per_hour; /* names not bound yet that one source
                                  address (IPv6: its /64) and one key may
                                  each bind an hour, with a burst of up
                                  to 10; names already bound never count;
                                  default 60; 0: no limit */
  /* V5: the TCP fallback (doc/design.md, "TCP fallback"). */
  const char *tcp_listen; /* "[ADDR]:PORT" where clients whose UDP is
                             blocked reach the broker over TCP (":443"
                             usually); NULL (default): no TCP */
} natter_broker_config;

/* Sets every field of |cfg| to its default. NULL is a no-op. */
#define natter_broker_config_default(CFG)                                      \
  natter_broker_config_default_versioned(NATTER_BROKER_CONFIG_VERSION, (CFG))
NATTER_EXPORT void
natter_broker_config_default_versioned(int config_version,
                                       natter_broker_config *cfg);

/* Creates a broker that serves on |base| once the loop runs. Returns 0 and
 * sets *pbroker, or a negative NATTER_ERR_* (the reason is also logged). */
#define natter_broker_new(PBROKER, BASE, CFG)                                  \
  natter_broker_new_versioned((PBROKER), (BASE), NATTER_BROKER_CONFIG_VERSION, \
                              (CFG))
NATTER_EXPORT int natter_broker_new_versioned(natter_broker **pbroker,
                                              struct event_base *base,
                                              int config_version,
                                              const natter_broker_config *cfg);

/* Closes every client connection and frees the broker. NULL is a no-op. */
NATTER_EXPORT void natter_broker_free(natter_broker *broker);

/* The UDP port the broker listens on (useful after asking for port 0). */
NATTER_EXPORT uint16_t natter_broker_port(const natter_broker *broker);

/* The broker's key fingerprint as 64 lowercase hex digits, what clients
 * pin with natter_client_config.broker_key; "" for NULL. Valid as long as
 * the broker. */
NATTER_EXPORT const char *
natter_broker_fingerprint(const natter_broker *broker);

/* A broker's name registry, for operators (`natter -registry FILE -list`).
 * The entry lives only during the callback. */
typedef struct natter_registry_entry {
  const char *name;
  const char *fingerprint; /* 64 lowercase hex digits */
  int64_t first_seen;      /* seconds since the epoch: bound then */
  int64_t last_seen;       /* last check-in (updated every few seconds) */
} natter_registry_entry;

/* Returns non-zero to stop the listing. */
typedef int (*natter_registry_fn)(const natter_registry_entry *entry,
                                  void *user_data);

/* Calls |fn| for every name bound in the registry file |path| (NULL: the
 * broker's default; also a postgresql:// URI, see
 * natter_broker_config.registry), in name order.
 * Safe while a broker runs on the file. Returns 0, or NATTER_ERR_REGISTRY
 * / NATTER_ERR_INVALID with a one-line reason in |err| (may be NULL). */
NATTER_EXPORT int natter_registry_list(const char *path, natter_registry_fn fn,
                                       void *user_data, char *err,
                                       size_t errlen);

/* Releases |name| in the registry file |path| (NULL: the default), so that
 * the next key to check in with it gets it. A broker running on the file
 * sees the release at once. Returns 0, NATTER_ERR_PEER_UNKNOWN when the
 * name is not bound, or NATTER_ERR_REGISTRY / NATTER_ERR_INVALID with a
 * reason in |err|. */
NATTER_EXPORT int natter_registry_release(const char *path, const char *name,
                                          char *err, size_t errlen);

#define NATTER_BROKER_STATS_V1 1
#define NATTER_BROKER_STATS_V2 2 /* relayed_bytes .. relay_channels */
#ifdef NATTER_TEST_FUTURE_FIELDS
#define NATTER_BROKER_STATS_V3 3
#define NATTER_BROKER_STATS_VERSION NATTER_BROKER_STATS_V3
#else
#define NATTER_BROKER_STATS_VERSION NATTER_BROKER_STATS_V2
#endif

typedef struct natter_broker_stats {
  uint64_t bytes_received; /* UDP payload bytes, all clients */
  uint64_t bytes_sent;
  uint64_t clients;        /* clients checked in now */
  uint64_t introductions;  /* peer introductions made */
  /* V2: bytes_received/bytes_sent are the control traffic (main and
   * mapping-check ports); the relay's are apart. */
  uint64_t relayed_bytes;        /* payload bytes relayed between peers */
  uint64_t relay_bytes_received; /* UDP payload bytes on the relay port */
  uint64_t relay_bytes_sent;
  uint64_t relay_channels; /* relay channels open now */
#ifdef NATTER_TEST_FUTURE_FIELDS
  uint64_t test_future_stat; /* tests/abi only: a field appended later */
#endif
} natter_broker_stats;

/* Fills |stats|. Returns 0, or NATTER_ERR_INVALID (NULL |broker|: |stats|
 * zeroed). */
#define natter_broker_get_stats(BROKER, STATS)                                 \
  natter_broker_get_stats_versioned((BROKER), NATTER_BROKER_STATS_VERSION,     \
                                    (STATS))
NATTER_EXPORT int natter_broker_get_stats_versioned(const natter_broker *broker,
                                                    int stats_version,
                                                    natter_broker_stats *stats);

/* ---- broker status (what the metrics and status pages print) ---- */

#define NATTER_BROKER_STATUS_V1 1
#define NATTER_BROKER_STATUS_VERSION NATTER_BROKER_STATUS_V1

/* Counters since natter_broker_new() and gauges now. */
typedef struct natter_broker_status {
  uint64_t uptime_ms;
  uint64_t connections;           /* QUIC connections now, checked in or not */
  uint64_t clients;               /* clients checked in now */
  uint64_t clients_by_mapping[3]; /* checked in now, by natter_nat_mapping */
  uint64_t check_ins;             /* check-ins accepted */
  uint64_t introductions;         /* peer introductions made */
  uint64_t relayed_bytes;         /* bytes relayed between peers (0
                                     without natter_broker_config.relay) */
  uint64_t bytes_received;        /* UDP payload bytes, all sockets */
  uint64_t bytes_sent;
  uint64_t packets_dropped; /* datagrams no connection took */
  uint64_t status_requests; /* HTTP/3 and metrics requests served */
} natter_broker_status;

/* Fills |status|. Returns 0, or NATTER_ERR_INVALID (NULL |broker|:
 * |status| zeroed). */
#define natter_broker_get_status(BROKER, STATUS)                               \
  natter_broker_get_status_versioned((BROKER), NATTER_BROKER_STATUS_VERSION,   \
                                     (STATUS))
NATTER_EXPORT int
natter_broker_get_status_versioned(const natter_broker *broker,
                                   int status_version,
                                   natter_broker_status *status);

/* One checked-in client, as natter_broker_foreach_client() shows it. The
 * library allocates it and the callback only reads it (like natter_event,
 * fields are appended without a version); strings are valid during the
 * callback only. */
typedef struct natter_broker_client_info {
  const char *name;
  const char *fingerprint; /* 64 lowercase hex digits */
  const char *address;     /* public address the broker sees */
  int mapping;             /* a natter_nat_mapping value */
  int listening;
  uint64_t connected_unix_ms; /* when it checked in (wall clock) */
  uint64_t last_seen_unix_ms; /* last packet from it */
  uint64_t bytes_received;    /* UDP payload bytes on its connection */
  uint64_t bytes_sent;
  int over_tcp; /* it reaches the broker over TCP (-tcp-listen: the TCP
                   fallback; |address| is its TCP address) */
} natter_broker_client_info;

typedef void (*natter_broker_client_fn)(const natter_broker_client_info *info,
                                        void *user_data);

/* Calls |fn| once per checked-in client, in no particular order. |fn| must
 * not free the broker. Returns 0 or NATTER_ERR_INVALID. */
NATTER_EXPORT int natter_broker_foreach_client(const natter_broker *broker,
                                               natter_broker_client_fn fn,
                                               void *user_data);

/* Adds a key (fingerprint, as natter_fingerprint_check() takes it) whose
 * holder may read the detailed HTTP/3 status page. Returns 0 or
 * NATTER_ERR_INVALID. */
NATTER_EXPORT int natter_broker_add_admin(natter_broker *broker,
                                          const char *fingerprint);

/* Serves Prometheus metrics (text exposition format 0.0.4, HTTP/1.1 GET
 * /metrics) on the TCP address |addr|, "IP:PORT", which must be a loopback
 * address (127.0.0.0/8 or ::1): the counters are not meant for the
 * network. Port 0 picks a free port (see natter_broker_metrics_port).
 * Returns 0, NATTER_ERR_INVALID (bad or non-loopback address, or metrics
 * already on) or NATTER_ERR_ADDR_IN_USE. */
NATTER_EXPORT int natter_broker_metrics_listen(natter_broker *broker,
                                               const char *addr);
/* The metrics TCP port, 0 when off. */
NATTER_EXPORT uint16_t natter_broker_metrics_port(const natter_broker *broker);

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
  const char *path;         /* PEER_CONNECTED: "direct" or "relay"; else
                               NULL */
} natter_event;

/* Events arrive from inside the event loop. A callback may add forwards,
 * but must not free the client or remove the forward it is told about;
 * break the loop (or defer) and do that afterwards. */
typedef void (*natter_event_fn)(natter_client *client,
                                const natter_event *event, void *user_data);

#define NATTER_CLIENT_CONFIG_V1 1
#define NATTER_CLIENT_CONFIG_V2 2 /* allow_peers .. max_commands_per_peer */
#define NATTER_CLIENT_CONFIG_V3 3 /* no_relay */
#define NATTER_CLIENT_CONFIG_V4 4 /* max_streams */
#define NATTER_CLIENT_CONFIG_V5 5 /* no_portmap */
#define NATTER_CLIENT_CONFIG_V6 6 /* allow_udp .. max_udp_flows */
#define NATTER_CLIENT_CONFIG_V7 7 /* broker_tcp_port */
#ifdef NATTER_TEST_FUTURE_FIELDS
#define NATTER_CLIENT_CONFIG_V8 8
#define NATTER_CLIENT_CONFIG_VERSION NATTER_CLIENT_CONFIG_V8
#else
#define NATTER_CLIENT_CONFIG_VERSION NATTER_CLIENT_CONFIG_V7
#endif

typedef struct natter_client_config {
  const char *name;          /* this client's name at the broker; required */
  const char *broker;        /* "host:port"; required. Several brokers
                                of one network: "a:10000,b:10000" (at
                                most 16 addresses; doc/design.md) */
  const char *identity_file; /* NULL: ~/.config/natter/NAME.key, created
                                with mode 0600 on first use; "": an
                                ephemeral in-memory key */
  const char *broker_key;    /* hex SHA-256 fingerprint to pin the broker's
                                key (of several brokers: their one key);
                                NULL: trust on first use (see
                                known_brokers) */
  int listen;                /* nonzero: accept forwards from the peers
                                allow_peers admits, to this machine's
                                loopback by default */
  const char *const *allow;  /* NULL-terminated extra targets a listener
                                accepts: "HOST:PORT", "HOST:*", "HOST" or
                                "*", each maybe scoped "PEER=RULE";
                                NULL: loopback only */
  const char *const *allow_commands; /* NULL-terminated commands peers may
                                run here: a whole command line ("cmd a
                                b"), a fixed prefix ("cmd a *") or "*",
                                each maybe scoped "PEER=RULE"; NULL:
                                none. natter_allow_command_check. */
  uint16_t local_port;         /* this client's UDP port; 0 (default):
                                  any free port. Fix it when a router
                                  forwards a UDP port to this host. */
  uint32_t connect_timeout_ms; /* hole punching budget; default 10000 */
  natter_log_fn log;           /* NULL: lines on stderr */
  natter_log_level log_level;  /* default NATTER_LOG_INFO */
  natter_event_fn on_event;    /* may be NULL */
  void *user_data;             /* passed to every callback */
  /* V2: who may do what. */
  const char *const *allow_peers; /* NULL-terminated peer rules, first
                                  match wins: "NAME", "NAME@FINGERPRINT",
                                  "@FINGERPRINT", "*" (anyone), "!RULE"
                                  (refuse). NULL: a listener accepts any
                                  peer only from a closed broker (token or
                                  admitted keys); on an open broker it
                                  stops with NATTER_EVENT_FATAL. */
  const char *token;              /* the broker's shared token; NULL: none */
  const char *token_file;         /* the same from a file's first line */
  const char *known_brokers;      /* trust-on-first-use file: the first key
                                     a broker address shows is remembered, a
                                     later other key is NATTER_EVENT_FATAL;
                                     NULL: ~/.config/natter/known_brokers;
                                     "": remember nothing (any key is
                                     accepted unless broker_key pins it) */
  uint32_t max_commands;          /* remote commands running here at once;
                                     default 32 */
  uint32_t max_commands_per_peer; /* ... for one peer; default 8 */
  /* V3 */
  int no_relay; /* nonzero: no peer connection of this
                   client goes through the broker's
                   relay (the broker opens no channel to
                   it); default 0 */
  /* V4 */
  uint32_t max_streams; /* forwarded connections (QUIC bidirectional
                           streams) one peer may have open to this
                           listener at once, 1..4096 (more:
                           NATTER_ERR_INVALID); the peer's further
                           connections wait for a free one. Default
                           1024; 0: the default */
  /* V5 */
  int no_portmap; /* nonzero: never ask the default gateway to map our
                     UDP port (PCP, NAT-PMP, UPnP); default 0: ask, and offer
                     a mapping to peers as a public address */
  /* V6: UDP forwarding (NATTER_FORWARD_UDP). */
  const char *const *allow_udp; /* NULL-terminated UDP targets a listener
                                   accepts, the grammar of |allow| (maybe
                                   scoped "PEER=RULE"); NULL: none at
                                   all, not even the loopback */
  uint32_t udp_idle_timeout_s;  /* a UDP flow with no datagram either way
                                   for this long ends; default 60 */
  uint32_t max_udp_flows;       /* UDP flows (local sources) one peer may
                                   have open at once, each side; more are
                                   dropped and logged; default 64 */
  /* V7 */
  int broker_tcp_port; /* the TCP fallback: when the broker's UDP port
                          has not answered within 3 s, also try TCP to
                          the broker's host at this port (a broker's
                          -tcp-listen); default 443; 0: never */
#ifdef NATTER_TEST_FUTURE_FIELDS
  uint64_t test_future_ms; /* tests/abi only: a field appended later;
                              default 4242 */
#endif
} natter_client_config;

/* Sets every field of |cfg| to its default. NULL is a no-op. */
#define natter_client_config_default(CFG)                                      \
  natter_client_config_default_versioned(NATTER_CLIENT_CONFIG_VERSION, (CFG))
NATTER_EXPORT void
natter_client_config_default_versioned(int config_version,
                                       natter_client_config *cfg);

/* Creates a client on |base|; it checks in at the broker once the loop
 * runs. Returns 0 and sets *pclient, or a negative NATTER_ERR_*:
 * NATTER_ERR_RESOLVE when the broker's host name does not resolve. */
#define natter_client_new(PCLIENT, BASE, CFG)                                  \
  natter_client_new_versioned((PCLIENT), (BASE), NATTER_CLIENT_CONFIG_VERSION, \
                              (CFG))
NATTER_EXPORT int natter_client_new_versioned(natter_client **pclient,
                                              struct event_base *base,
                                              int config_version,
                                              const natter_client_config *cfg);

/* Closes every forward and peer connection and frees the client. NULL is a
 * no-op. Must not be called from inside one of the client's callbacks. */
NATTER_EXPORT void natter_client_free(natter_client *client);

/* This client's key fingerprint as 64 lowercase hex digits. */
NATTER_EXPORT const char *natter_client_fingerprint(const natter_client *c);

/* 1 while the client is checked in at the broker (between
 * NATTER_EVENT_CHECKED_IN and losing the broker), else 0. */
NATTER_EXPORT int natter_client_checked_in(const natter_client *c);

#define NATTER_ADDRSTRLEN 64 /* "[ffff:...:ffff]:65535" and its NUL fit */

/* Writes this client's public UDP address as the broker last saw it,
 * "IP:PORT" or "[IPV6]:PORT", to |buf| (NATTER_ADDRSTRLEN bytes are always
 * enough); "" until the first check-in. Returns 0, or NATTER_ERR_INVALID
 * for a NULL argument or a |buf| too small (then |buf| holds ""). */
NATTER_EXPORT int natter_client_public_address(const natter_client *c,
                                               char *buf, size_t len);

/* How this client's NAT maps its UDP port, as measured after each check-in
 * by sending from the same port to the broker's two ports (RFC 4787 §4.1).
 * Stays UNKNOWN while that check has no answer. */
typedef enum natter_nat_mapping {
  NATTER_NAT_MAPPING_UNKNOWN = 0,
  /* one public address and port for every destination (also no NAT):
   * hole punching works with most peers */
  NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT = 1,
  /* symmetric NAT, a new public port per destination: punching only
   * works with peers that have a public or forwarded port */
  NATTER_NAT_MAPPING_SYMMETRIC = 2
} natter_nat_mapping;

NATTER_EXPORT natter_nat_mapping
natter_client_nat_mapping(const natter_client *c);

/* ---- connectivity check (natter -check) ---- */

/* What a check concluded; natter -check exits with a distinct status for
 * each (natter(1), EXIT STATUS). */
typedef enum natter_check_verdict {
  NATTER_CHECK_DIRECT = 0,           /* direct works */
  NATTER_CHECK_DIRECT_PREDICTED = 1, /* direct works only through a port
                                        learned from the other side's
                                        probes, not the one the broker saw */
  NATTER_CHECK_NEEDS_RELAY = 2,      /* no direct path: the NATs' behaviour
                                        defeats hole punching */
  NATTER_CHECK_UDP_BLOCKED = 3,      /* no direct path: UDP between the two
                                        is dropped (one way or both) */
  NATTER_CHECK_NOT_LISTENING = 4,    /* the peer runs without -listen */
  NATTER_CHECK_PEER_UNKNOWN = 5,     /* no client of that name at the broker */
  NATTER_CHECK_REFUSED = 6,          /* the peer's rules do not admit us */
  NATTER_CHECK_FAILED = 7            /* anything else: message says what */
} natter_check_verdict;

/* One side of a check. Library-allocated and read-only, like
 * natter_event; strings valid during the callback only. */
typedef struct natter_check_side {
  const char *name;
  int reported;               /* the peer side: its report arrived (else
                                 only name, mapping, public_address are
                                 known, from the broker) */
  const char *outcome;        /* "connected", "failed", "refused" or "" */
  natter_nat_mapping mapping; /* as the side measured it */
  const char *public_address; /* as the broker saw it; "" unknown */
  size_t ncandidates;         /* the other side's addresses, as the broker
                                 gave them, that this side probed */
  const char *const *candidates;
  unsigned probe_rounds;     /* rounds of probes this side sent */
  unsigned probes_received;  /* the other side's probes that arrived */
  unsigned replies_received; /* answers to this side's probes */
  const char *probes_from;   /* where the other side's probes came from;
                                "" none */
} natter_check_side;

typedef struct natter_check_result {
  natter_check_verdict verdict;
  const char *verdict_text; /* one line: "direct works", "needs relay
                               because ...", ... */
  int error;                /* 0 when connected, else the NATTER_ERR_* of
                               the attempt */
  const char *message;      /* the attempt's own failure message; "" */
  int connected;            /* a QUIC connection came up (then closed) */
  int relayed;              /* ... through the broker's relay */
  int relay_offered;        /* the broker offered a relay for the pair */
  uint64_t connect_ms;      /* introduction -> connection */
  uint64_t rtt_us;          /* the connection's smoothed RTT */
  const char *address;      /* where the connection went; "" */
  natter_check_side self, peer;
  int predicted; /* the direct path was found by port prediction (one
                    side's NAT is symmetric) */
  /* Appended (the library allocates this struct): each side's port
   * mapping at its gateway, "port-mapped (PCP) at ADDR", "(NAT-PMP)" or
   * "(UPnP)"; "" none. */
  const char *self_portmap, *peer_portmap;
  int over_tcp;  /* relayed, and this side reached the relay over TCP
                    (the TCP fallback: UDP to the broker got no answer) */
} natter_check_result;

/* Called once per check, from the loop; the client may be freed once the
 * callback has returned (not inside it). */
typedef void (*natter_check_fn)(natter_client *client,
                                const natter_check_result *result,
                                void *user_data);

/* Makes |client| a diagnostic session that checks how it reaches |peer|:
 * it checks in without registering under its name (a client running
 * with the same name and key is not disturbed), measures its NAT
 * mapping, asks the broker for a check, punches (and uses the broker's
 * relay when offered), closes the connection, waits a few seconds for
 * the peer's own report, and calls |fn| with both sides' view and a
 * verdict. The whole check ends within connect_timeout_ms + 10 s.
 * Call it right after natter_client_new(), before the loop runs, on a
 * client without listen or forwards. Returns 0, or NATTER_ERR_INVALID
 * (bad name, already checked in, listening, forwards, or a check
 * already set). */
NATTER_EXPORT int natter_client_check(natter_client *client, const char *peer,
                                      natter_check_fn fn, void *user_data);

/* ------------------------------------------------------------------ */
/* Forwards                                                            */

/* What a forward carries (natter_forward_config.kind). */
typedef enum natter_forward_kind {
  NATTER_FORWARD_TCP = 0,  /* TCP connections to host:port, or a command */
  NATTER_FORWARD_UDP = 1,  /* UDP datagrams to host:port */
  NATTER_FORWARD_SOCKS = 2 /* a SOCKS5 server; each connection names its
                              target */
} natter_forward_kind;

#define NATTER_FORWARD_CONFIG_V1 1
#define NATTER_FORWARD_CONFIG_V2 2 /* kind */
#define NATTER_FORWARD_CONFIG_V3 3 /* socks_auth_file */
#define NATTER_FORWARD_CONFIG_VERSION NATTER_FORWARD_CONFIG_V3

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
  int kind;                /* a natter_forward_kind; default
                              NATTER_FORWARD_TCP (V2) */
  const char *socks_auth_file; /* NATTER_FORWARD_SOCKS: a file holding one
                              line USER:PASSWORD, not readable by group or
                              others; SOCKS clients must then authenticate
                              (RFC 1929). Required when |bind| is not a
                              loopback address. NULL: no authentication
                              (V3) */
} natter_forward_config;

/* Sets every field of |cfg| to its default. NULL is a no-op. */
#define natter_forward_config_default(CFG)                                     \
  natter_forward_config_default_versioned(NATTER_FORWARD_CONFIG_VERSION, (CFG))
NATTER_EXPORT void
natter_forward_config_default_versioned(int config_version,
                                        natter_forward_config *cfg);

/* Adds a forward. A TCP port is bound at once, so NATTER_ERR_ADDR_IN_USE
 * is reported here; an fd session starts connecting to the peer at once.
 * On success *pforward (may be NULL) names the forward; it belongs to the
 * client, and so do in_fd/out_fd. On failure the fds stay the caller's.
 * |err| (may be NULL) receives a one-line reason on failure. */
#define natter_client_add_forward(CLIENT, CFG, PFORWARD, ERR, ERRLEN)          \
  natter_client_add_forward_versioned((CLIENT), NATTER_FORWARD_CONFIG_VERSION, \
                                      (CFG), (PFORWARD), (ERR), (ERRLEN))
NATTER_EXPORT int natter_client_add_forward_versioned(
    natter_client *client, int config_version, const natter_forward_config *cfg,
    natter_forward **pforward, char *err, size_t errlen);

/* The same from a spec as the CLI takes it: "LOCALPORT:PEER[:HOST]:PORT",
 * ":PEER[:HOST]:PORT" (stdin/stdout), "socks:[BIND:]LOCALPORT:PEER" (a
 * SOCKS5 server, without authentication: a BIND other than loopback
 * needs natter_forward_config.socks_auth_file, so this refuses it), or
 * "LOCALPORT:PEER:" / ":PEER:"
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

/* Checks one access rule as natter_client_config.allow takes it: "*",
 * "HOST", "HOST:PORT", "HOST:*", "[IPv6]", "[IPv6]:PORT", "[IPv6]:*", a
 * bare IPv6 address ("::1", all of it the address), or a range of
 * addresses "IPv4/BITS[:PORT]" / "[IPv6/BITS][:PORT]" (e.g.
 * "198.18.1.0/24:80"), which also matches targets given by a name that
 * resolves into it on the listener. natter_client_new()
 * refuses a config holding a rule that fails this. Returns 0 or
 * NATTER_ERR_INVALID with a one-line reason in |err| (may be NULL) that
 * does not repeat |rule|. */
NATTER_EXPORT int natter_allow_rule_check(const char *rule, char *err,
                                          size_t errlen);

/* The same for natter_client_config.allow_commands: "*" (anything), a
 * whole command line "PROG ARG..." that argv must equal word for word, or
 * a fixed prefix "PROG ARG... *" (the final unquoted '*' stands for any
 * further arguments). Words are separated by blanks; '...' or "..." keep
 * blanks inside a word. No control character, no blank at either end, no
 * other '*'. Optionally scoped to peers, "PEER=RULE" (PEER as in
 * natter_allow_peer_check, without '!'), for allow rules too. */
NATTER_EXPORT int natter_allow_command_check(const char *rule, char *err,
                                             size_t errlen);

/* The same for natter_client_config.allow_peers: "NAME",
 * "NAME@FINGERPRINT", "@FINGERPRINT", "*", each maybe preceded by '!'
 * (refuse). */
NATTER_EXPORT int natter_allow_peer_check(const char *rule, char *err,
                                          size_t errlen);

/* Checks a client name (1-63 of A-Z a-z 0-9 . _ -). Returns 0 or
 * NATTER_ERR_INVALID with a reason in |err| (may be NULL). */
NATTER_EXPORT int natter_name_check(const char *name, char *err, size_t errlen);

/* Returns the port 1..65535 that the whole of |s| writes (digits only, no
 * sign, no leading zero), or 0 when |s| is not one. */
NATTER_EXPORT uint16_t natter_port_parse(const char *s);

/* Checks a key fingerprint as -broker-key takes it (64 hex digits, ':'
 * between pairs allowed). Returns 0 or NATTER_ERR_INVALID. */
NATTER_EXPORT int natter_fingerprint_check(const char *fingerprint);

/* Replaces a running client's access rules with |cfg|'s allow,
 * allow_commands and allow_peers (its other fields are ignored), e.g. on
 * SIGHUP. All or nothing: a bad rule leaves the old rules in force and
 * returns NATTER_ERR_INVALID with a reason naming it in |err| (may be
 * NULL). Rules need a listening client. Open connections keep running;
 * introductions and streams from now on are decided by the new rules. */
#define natter_client_set_access(CLIENT, CFG, ERR, ERRLEN)                     \
  natter_client_set_access_versioned((CLIENT), NATTER_CLIENT_CONFIG_VERSION,   \
                                     (CFG), (ERR), (ERRLEN))
NATTER_EXPORT int
natter_client_set_access_versioned(natter_client *client, int config_version,
                                   const natter_client_config *cfg, char *err,
                                   size_t errlen);

/* Stops listening and closes the forward's connections (resetting their
 * streams). NULL is a no-op. Not from inside an event about |forward|. */
NATTER_EXPORT void natter_forward_remove(natter_forward *forward);

/* The local TCP port a forward listens on; 0 for an fd session. */
NATTER_EXPORT uint16_t natter_forward_local_port(const natter_forward *f);

#define NATTER_FORWARD_STATS_V1 1
#define NATTER_FORWARD_STATS_V2 2 /* datagrams_* */
#define NATTER_FORWARD_STATS_VERSION NATTER_FORWARD_STATS_V2

typedef struct natter_forward_stats {
  uint64_t connections; /* connections started */
  uint64_t active;      /* connections open now */
  uint64_t failures;    /* connections that failed */
  uint64_t bytes_sent;  /* local -> peer */
  uint64_t bytes_received; /* peer -> local */
  /* V2: a UDP forward's datagrams (connections count its flows); 0 for
     TCP */
  uint64_t datagrams_sent;     /* local -> peer */
  uint64_t datagrams_received; /* peer -> local */
  uint64_t datagrams_dropped;  /* larger than the path allows, queue full,
                                  flow refused or over the flow limit */
} natter_forward_stats;

/* Fills |stats|. Returns 0, or NATTER_ERR_INVALID (NULL |forward|:
 * |stats| zeroed). */
#define natter_forward_get_stats(FORWARD, STATS)                               \
  natter_forward_get_stats_versioned((FORWARD), NATTER_FORWARD_STATS_VERSION,  \
                                     (STATS))
NATTER_EXPORT int
natter_forward_get_stats_versioned(const natter_forward *forward,
                                   int stats_version,
                                   natter_forward_stats *stats);

#define NATTER_PEER_STATS_V1 1
#define NATTER_PEER_STATS_V2 2 /* relayed */
#define NATTER_PEER_STATS_VERSION NATTER_PEER_STATS_V2

typedef struct natter_peer_stats {
  int connected;           /* 1 while the QUIC connection is up */
  uint64_t rtt_us;         /* smoothed round-trip time */
  uint64_t bytes_sent;     /* UDP payload bytes on the connection */
  uint64_t bytes_received;
  uint64_t streams;        /* forwarded connections open now */
  /* V2 */
  int relayed; /* 1: the path goes through the broker's relay
                  (rtt_us is then the relayed path's); 0:
                  direct */
} natter_peer_stats;

/* Fills |stats| for |peer|. Returns 0, NATTER_ERR_PEER_UNKNOWN when this
 * client never dealt with that peer (|stats| zeroed), or
 * NATTER_ERR_INVALID. */
#define natter_client_get_peer_stats(CLIENT, PEER, STATS)                      \
  natter_client_get_peer_stats_versioned((CLIENT), (PEER),                     \
                                         NATTER_PEER_STATS_VERSION, (STATS))
NATTER_EXPORT int
natter_client_get_peer_stats_versioned(const natter_client *client,
                                       const char *peer, int stats_version,
                                       natter_peer_stats *stats);

/* ---- client status (what the metrics and status pages print) ---- */

#define NATTER_CLIENT_STATUS_V1 1
#define NATTER_CLIENT_STATUS_V2 2 /* peers_refused */
#define NATTER_CLIENT_STATUS_V3 3 /* portmap */
#define NATTER_CLIENT_STATUS_VERSION NATTER_CLIENT_STATUS_V3

typedef struct natter_client_status {
  uint64_t uptime_ms;
  int checked_in;                         /* as natter_client_checked_in() */
  int mapping;                            /* a natter_nat_mapping value */
  char public_address[NATTER_ADDRSTRLEN]; /* "" until checked in */
  uint16_t local_port;                    /* this client's UDP port */
  uint64_t check_ins;        /* accepted check-ins (1 + reconnections) */
  uint64_t peers_connected;  /* peer connections up now */
  uint64_t peer_connections; /* peer connections made since start (all
                                direct: there is no relay yet) */
  uint64_t punch_successes;  /* hole punching that led to a connection */
  uint64_t punch_failures;   /* hole punching that ran out of time */
  /* The same two, by [our mapping][the peer's mapping], each a
   * natter_nat_mapping value. */
  uint64_t punch_by_mapping[3][3][2]; /* [..][..][0]: successes, [1]:
                                         failures */
  uint64_t streams;        /* forwarded connections open now, both ways */
  uint64_t streams_opened; /* outgoing forwarded connections opened */
  uint64_t bytes_received; /* UDP payload bytes on the socket */
  uint64_t bytes_sent;
  uint64_t errors[32];      /* failures reported as events, by -NATTER_ERR_*
                               (index 0 unused) */
  uint64_t status_requests; /* HTTP/3 and metrics requests served */
  /* V2: requesters this listener's peer rules refused (each refusal) */
  uint64_t peers_refused;
  /* V3: our gateway's mapping of our UDP port, offered to peers:
   * "port-mapped (PCP) at ADDR", "(NAT-PMP)" or "(UPnP)" likewise; ""
   * none (-no-portmap, no gateway answered, or not on our public
   * address) */
  char portmap[NATTER_ADDRSTRLEN + 32];
} natter_client_status;

#define natter_client_get_status(CLIENT, STATUS)                               \
  natter_client_get_status_versioned((CLIENT), NATTER_CLIENT_STATUS_VERSION,   \
                                     (STATUS))
/* Fills |status|. Returns 0, or NATTER_ERR_INVALID (NULL |client|:
 * |status| zeroed). */
NATTER_EXPORT int
natter_client_get_status_versioned(const natter_client *client,
                                   int status_version,
                                   natter_client_status *status);

/* One peer this client dealt with, as natter_client_foreach_peer() shows
 * it. Library-allocated and read-only, like natter_event; strings valid
 * during the callback only. */
typedef struct natter_peer_info {
  const char *name;
  const char *fingerprint; /* the key the broker vouched for; "" before
                              an introduction */
  const char *state;       /* "idle", "introducing", "punching",
                              "connecting" or "connected" */
  const char *path;        /* while connected "direct" or "relay" (through
                              the broker's relay), else "" */
  const char *address;     /* where the connection goes; "" if none */
  int mapping;             /* the peer's, as it reported */
  int initiator;           /* we asked for the meeting */
  uint64_t rtt_us;         /* smoothed RTT; 0 while not connected */
  uint64_t pto_count;      /* probe timeouts in a row: loss shows here */
  uint64_t cwnd;           /* congestion window, bytes */
  uint64_t bytes_sent;     /* UDP payload bytes on the connection */
  uint64_t bytes_received;
  uint64_t streams; /* forwarded connections open now */
  /* The last hole punching with this peer. */
  size_t ncandidates;
  const char *const *candidates; /* "IP:PORT" each */
  unsigned probe_rounds;         /* rounds of probes we sent */
  unsigned probes_received;      /* probes from the peer that arrived */
  unsigned replies_received;     /* answers to our probes */
  const char *probes_from;       /* where the peer's probes came from; "" */
  int predicted; /* the direct path was found by port prediction */
  int over_tcp;  /* path "relay", and the relay is reached over TCP (the
                    TCP fallback: UDP to the broker got no answer) */
  /* The largest UDP payload the connection sends on its path now: 1200
   * until path MTU discovery finds more (at most 1452; 65507 to an
   * address of this host). 0 while not connected. */
  uint64_t max_udp_payload;
} natter_peer_info;

typedef void (*natter_peer_fn)(const natter_peer_info *info, void *user_data);

/* Calls |fn| once per peer. Returns 0 or NATTER_ERR_INVALID. */
NATTER_EXPORT int natter_client_foreach_peer(const natter_client *client,
                                             natter_peer_fn fn,
                                             void *user_data);

/* One forward, as natter_client_foreach_forward() shows it (library-
 * allocated, read-only, valid during the callback). */
typedef struct natter_forward_info {
  natter_forward *forward;
  const char *peer;
  const char *target;  /* "HOST:PORT" on the peer, or the command */
  uint16_t local_port; /* 0: stdin/stdout */
  natter_forward_stats stats;
} natter_forward_info;

typedef void (*natter_forward_fn)(const natter_forward_info *info,
                                  void *user_data);

/* Calls |fn| once per forward. Returns 0 or NATTER_ERR_INVALID. */
NATTER_EXPORT int natter_client_foreach_forward(const natter_client *client,
                                                natter_forward_fn fn,
                                                void *user_data);

/* As natter_broker_add_admin: a key that may read this client's detailed
 * HTTP/3 status page besides the client's own key. */
NATTER_EXPORT int natter_client_add_admin(natter_client *client,
                                          const char *fingerprint);

/* As natter_broker_metrics_listen, for a client. */
NATTER_EXPORT int natter_client_metrics_listen(natter_client *client,
                                               const char *addr);
NATTER_EXPORT uint16_t natter_client_metrics_port(const natter_client *client);

/* A short stable name for an error code ("punch" for NATTER_ERR_PUNCH,
 * "ok" for 0, "unknown" otherwise), as metrics and JSON use it. */
NATTER_EXPORT const char *natter_error_name(int err);

/* "unknown", "endpoint-independent" or "symmetric". */
NATTER_EXPORT const char *natter_nat_mapping_name(int mapping);

/* ---- reading a status page (natter -status) ---- */

typedef struct natter_status_fetch natter_status_fetch; /* opaque */

/* The answer: |error| 0 with the HTTP |status| (200, or 403 when the key
 * may not read the page) and its |body|; or a NATTER_ERR_* (TIMEOUT,
 * CLOSED, ...) with a one-line reason in |body|. Called once, from the
 * loop; free the fetch after the callback has returned. */
typedef void (*natter_status_fn)(int error, int status, const char *body,
                                 size_t len, void *user_data);

/* GETs /status over HTTP/3 from a broker or a client at |addr|
 * ("HOST:PORT", its UDP port), presenting the key in |identity_file| as
 * the TLS client key (NULL or "": a throw-away key, which reads what
 * anyone may). |text|: ask for the readable table instead of JSON.
 * Returns 0 (|fn| follows once the loop runs) or a NATTER_ERR_*. */
NATTER_EXPORT int
natter_status_fetch_start(natter_status_fetch **pfetch, struct event_base *base,
                          const char *addr, const char *identity_file, int text,
                          natter_status_fn fn, void *user_data);
NATTER_EXPORT void natter_status_fetch_free(natter_status_fetch *fetch);

#ifdef __cplusplus
}
#endif

#endif /* NATTER_H */
