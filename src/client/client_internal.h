/* The client facade's own state (client.c and its broker session,
 * broker_session.c): the session with the broker and the environments
 * the facade hands down to the peer table, the tunnels and the forwards,
 * which never see this struct. */
#ifndef NT_CLIENT_INTERNAL_H
#define NT_CLIENT_INTERNAL_H

#include <event2/event.h>

#include "trust/access.h"
#include "client/broker_list.h"
#include "client/checkrun.h"
#include "quic/endpoint.h"
#include "client/forward.h"
#include "natter.h"
#include "client/peer.h"
#include "client/portmap.h"
#include "status/status.h"
#include "client/tunnel.h"
#include "client/udp.h"
#include "codec/wire.h"

struct natter_client {
  struct event_base *base;
  nt_log log;
  char *name, *broker_text, *identity_path;
  nt_access *access; /* -allow / -allow-command rules */
  nt_access *access_udp; /* -allow-udp: UDP targets, none by default */
  uint32_t udp_idle_timeout_s, max_udp_flows;
  struct nt_udp *udp;    /* UDP flows, both sides (udp.h) */
  int listen;
  int no_relay; /* refuse relayed peer connections (-no-relay) */
  int broker_pinned;
  uint8_t broker_key[NT_FINGERPRINT_LEN];
  char *known_brokers; /* trust-on-first-use file, or NULL: none */
  char *token;         /* the broker's shared token, or NULL */
  uint32_t connect_timeout_ms;
  uint32_t max_commands, max_commands_per_peer;
  natter_event_fn on_event;
  void *user_data;
  char fingerprint_hex[NT_FINGERPRINT_HEX_LEN + 1];

  nt_identity *identity;
  nt_endpoint *ep;
  nt_addr broker_addr;
  nt_conn *broker_conn;
  nt_stream *ctl;
  nt_wire_reader *ctl_reader;
  int checked_in, ever_checked_in, fatal;
  nt_self_view self;      /* public address and NAT mapping */
  nt_addr mapped;         /* us as the broker's mapping port saw us */
  uint16_t mapping_port;  /* broker's mapping-check port, 0: none */
  uint8_t mapping_nonce[8];
  unsigned mapping_tries;
  /* The mapping check is under way: introduction requests wait for it
   * (the broker hands our mapping to the peer with the introduction, and
   * port prediction needs both sides' mappings). At most 2 s. */
  int mapping_pending;
  struct event *mapping_ev;
  struct event *reconnect_ev;
  unsigned reconnect_delay_s;
  uint32_t next_request_id;
  uint8_t session[16]; /* random per process: CheckIn.session */
  struct evdns_base *dns;

  /* What the parts below the facade get to work with. */
  nt_peers_env peers_env;
  nt_tunnel_env tunnel_env;
  nt_forward_env forward_env;
  nt_peers *peers;
  struct nt_tunnel_list tunnels;   /* every live tunnel */
  struct nt_forward_list forwards;

  /* Status (client_status.c): counted from the events. */
  uint64_t started_ns;
  uint64_t check_ins, peer_connections, streams_opened, status_requests;
  uint64_t punch_by_mapping[3][3][2];
  uint64_t errors[32];
  nt_admins admins;
  struct nt_metrics *metrics;
  struct nt_h3_server *h3; /* HTTP/3 /status on the client's socket */

  /* natter_client_check(): a diagnostic session (CheckIn.diagnostic) that
   * runs one check. */
  int diagnostic;
  nt_check_run *check;

  /* The gateway's mapping of our port (portmap.h); NULL: none asked
   * (-no-portmap, a broker on loopback, no IPv4 default gateway). */
  int no_portmap;
  nt_portmap *portmap;
  int portmap_elsewhere_logged;
  struct event *portmap_wait_ev; /* a check waits for the gateway */

  /* Several brokers of one network (broker_list.h; doc/design.md,
   * "Several brokers"): broker_addr is brokers.addr[broker_index]; the
   * session moves on to the next when it loses the one it uses. */
  nt_broker_list brokers;
  size_t broker_index;
  size_t broker_tries;    /* brokers tried since the last check-in */
  int broker_answered;    /* one of them answered (busy) this round */
  int broker_silent;      /* we closed it: no answer for a few seconds */
  int broker_refused;     /* we closed it: not the network's key */
  int network_key_learnt; /* no known-brokers file: learnt this run */
  struct event *broker_lost_ev; /* silent: is it NT_BROKER_LOST_MS yet? */
  uint8_t network_key[NT_FINGERPRINT_LEN];
  /* The TCP fallback (tcp_fallback.c); NULL: off (-broker-tcp 0). */
  struct nt_tcp_fallback *tcpfb;
  /* The list's names asked again (broker_resolve.c); NULL: no names. */
  struct nt_broker_resolve *resolve;
};

/* Reports a client event of |type| (one log line and the user's
 * callback), its text formatted as printf does. */
void nt_client_emit(natter_client *c, natter_event_type type, int error,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Stops the client for good: a NATTER_EVENT_FATAL event with |error|,
 * and a running check fails with it. */
void nt_client_fatal(natter_client *c, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
