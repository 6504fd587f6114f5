/* Path finding for one peer, as decisions free of I/O: which of its
 * addresses to probe, hole punching (punch.h), port prediction
 * (predict.h), the fallback onto the broker's relay, the way back from the
 * relay to a direct path, and punching again when a live connection falls
 * silent.
 *
 * The caller (peer_path.c) owns the sockets, the connection, the relay channel
 * and one timer. It tells the planner what happened (an introduction, a
 * probe or reply, the connection's handshake, our own mapping learned)
 * and, when its timer fires, asks nt_path_due what to do now: the plan
 * lists probes to send, prediction work, the relay fallback, a move to a
 * direct path or giving up, and when to ask again (next_ns).
 *
 * The schedules, from the introduction on:
 * - probes to every candidate (punch.h) until the meeting's deadline;
 * - port prediction (predict.h) when exactly one NAT is symmetric and the
 *   other keeps its port, unless the caller says it cannot work;
 * - the relay fallback, when the broker offered a relay: punching gives
 *   way to it NT_PATH_RELAY_AFTER_KNOWN_MS after the introduction when
 *   both mappings are known and alike (both endpoint-independent: a punch
 *   is answered within a round trip or two, seven rounds go out in the
 *   first second; both symmetric: nothing direct can work), else
 *   NT_PATH_RELAY_AFTER_MS (port prediction needs up to 2.9 s, or a
 *   mapping is unknown); at most a third of the connect timeout, to leave
 *   time to connect. The initiator then connects through the relay,
 *   probing on; the other side, punching on until the peer's Initial
 *   comes through the relay, tells the relay where it is every
 *   NT_PATH_RELAY_BIND_MS;
 * - a relayed connection keeps trying direct paths, a round of probes of
 *   NT_PATH_UPGRADE_ROUND_MS every NT_PATH_UPGRADE_MS; the initiator moves
 *   the connection where one is answered (QUIC lets the client migrate);
 * - a live connection silent with data outstanding asks the broker for a
 *   fresh introduction at most every NT_PATH_REFRESH_INTERVAL_MS; the
 *   refresh introduction starts a re-punch of NT_PATH_REPUNCH_S;
 * - when one side's NAT is symmetric (a re-punch cannot find its new
 *   ports) the refresh also predicts again (nt_path_repredict_start),
 *   with the re-punch's nonce, and the side behind it moves the same
 *   connection to the new prediction socket the peer's probe found
 *   (nt_conn_migrate_on). */
#ifndef NT_PATH_H
#define NT_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "client/predict.h"
#include "client/punch.h"

#define NT_PATH_RELAY_AFTER_MS 3000
#define NT_PATH_RELAY_AFTER_KNOWN_MS 1000
#define NT_PATH_RELAY_BIND_MS 1000
#define NT_PATH_UPGRADE_MS 10000
#define NT_PATH_UPGRADE_ROUND_MS 5000
/* Re-punching a live connection (a refresh introduction) stops after
 * this long. */
#define NT_PATH_REPUNCH_S 5
/* A live connection asks the broker for a refresh at most this often. */
#define NT_PATH_REFRESH_INTERVAL_MS 1000
/* A connection on a path found by port prediction that hears nothing for
 * this long is closed: a symmetric NAT that changed gave it ports only a
 * new prediction finds, which a re-punch does not do; the next local
 * connection meets afresh instead of waiting for the idle timeout. */
#define NT_PATH_PREDICTED_GIVE_UP_MS 4000
/* ... unless a new prediction for it runs (nt_path_repredict_start):
 * then it is given up after this long. */
#define NT_PATH_REPREDICT_GIVE_UP_MS 8000
/* A refresh introduction predicts again only when the connection has
 * heard nothing for this long (else the path works). */
#define NT_PATH_REPREDICT_SILENT_MS 250
/* Loss recovery is told to resend at most this often when a re-punch
 * packet shows the path is open again. */
#define NT_PATH_KICK_INTERVAL_MS 100
/* Easy side of port prediction: ports probed in one tick at most. */
#define NT_PATH_PREDICT_BATCH (NT_PREDICT_RATE * NT_PREDICT_TICK_MS / 1000)

/* Port prediction's budgets (doc/operations.md, "Limits"). Its probes
 * and sockets are spent on a peer the listener admitted, at the address
 * the broker validated, yet a peer (or many names on one host) that asks
 * again and again must not turn them into a flood or hold them all:
 * - per peer, one prediction at a time: a meeting that predicted and did
 *   not connect (it failed, or a new introduction replaced it) leaves the
 *   peer without prediction until NT_PATH_PREDICT_COOLDOWN_MS after that
 *   meeting's deadline; a connection clears it;
 * - per public IP address, at most NT_PATH_PREDICT_PER_IP peers predict
 *   at once;
 * - per endpoint, at most NT_PATH_PREDICT_MAX predictions at once: the
 *   hard side's take NT_PREDICT_SOCKETS each (NT_PREDICT_SOCKETS *
 *   NT_PATH_PREDICT_MAX == NT_ENDPOINT_MAX_AUX, the pool), the easy
 *   side's share NT_PATH_PREDICT_RATE probes a second evenly
 *   (nt_path_predict_share), each at most NT_PREDICT_RATE. */
#define NT_PATH_PREDICT_COOLDOWN_MS 30000
#define NT_PATH_PREDICT_PER_IP 2
#define NT_PATH_PREDICT_MAX 4
#define NT_PATH_PREDICT_RATE 2000

/* This client, for choosing which of the peer's addresses to probe. */
typedef struct nt_path_self {
  const nt_addr *observed; /* our public address; len 0: unknown */
  const nt_addr *local;    /* the addresses we offered the peer */
  size_t nlocal;
  int reaches_ipv4, reaches_ipv6; /* our socket sends to that family */
} nt_path_self;

/* How far an address reaches, for checking what a broker says. */
typedef enum nt_path_scope {
  NT_PATH_SCOPE_NONE = 0, /* nothing to probe: unspecified, multicast,
                             broadcast, link-local, reserved, port 0 */
  NT_PATH_SCOPE_LOOPBACK,
  NT_PATH_SCOPE_PRIVATE, /* 10/8, 172.16/12, 192.168/16, 100.64/10
                            (carrier-grade NAT), 198.18/15, fc00::/7 */
  NT_PATH_SCOPE_GLOBAL
} nt_path_scope;

nt_path_scope nt_path_scope_of(const struct sockaddr *a);

/* Whether a peer's |observed| address in an introduction is one the
 * broker at |broker| (as we reach it) can have seen: a usable unicast
 * address, loopback only from a broker on loopback, private only from a
 * broker on loopback or a private address. A broker on a global address
 * that names a private or loopback address is lying (or broken): probes
 * there would reach hosts of our own network. */
int nt_path_observed_usable(const nt_addr *broker, const nt_addr *observed);

/* The peer's addresses we probe, from an introduction: at most
 * NT_PUNCH_MAX_CANDIDATES into |cands|, duplicates dropped, only families
 * our socket reaches (a dual-stack socket reaches both). A peer cannot
 * make us send packets where it likes, so:
 * - its observed address always: the broker saw it, the peer cannot
 *   choose it;
 * - its global IPv6 addresses (2000::/3) too, as public as the observed
 *   one: with no NAT66 such an address names the peer's own host
 *   wherever it is, and is how two peers meet over IPv6 when they reached
 *   the broker over IPv4. A lying peer can name another host instead; it
 *   gets the same few 22-byte probes (one punch schedule) as any public
 *   candidate, never a byte more, and nothing inside our own network: an
 *   address in the /64 of one of our own falls under the next rule;
 * - its LAN addresses (private IPv4, unique local IPv6, IPv6 in our own
 *   /64) only when the peer sits behind the same public address as we do
 *   (the same NAT, or no NAT on one LAN); anywhere else they name hosts
 *   on our own network, and probing them would let a peer aim our
 *   packets there. A public IPv4 address named as a LAN address is
 *   never probed.
 * Observed first, then public IPv6, then LAN. Returns how many; |*skipped|
 * counts the LAN addresses left out for that last reason. */
size_t nt_path_candidates(const nt_path_self *self, const nt_addr *observed,
                          const nt_addr *local, size_t nlocal, nt_addr *cands,
                          size_t *skipped);

/* Whether the peer's port mapping at its gateway (an introduction's
 * portmap, doc/design.md "Port mapping") may be probed: a port of the
 * very IP address of its |observed| one (which the caller has checked
 * with nt_path_observed_usable), public. A peer can thus make us probe
 * only ports of its own public address, as port prediction does. */
int nt_path_portmap_usable(const nt_addr *observed, const nt_addr *portmap);

/* Adds |portmap| (usable) to the |n| candidates in |cands| right after
 * the first (the observed address), unless it is there already; the last
 * one drops out when NT_PUNCH_MAX_CANDIDATES are there. Returns the new
 * count. */
size_t nt_path_add_portmap(nt_addr *cands, size_t n, const nt_addr *portmap);

/* Where the caller's meeting with the peer stands (its own state). */
typedef enum nt_path_phase {
  NT_PATH_PUNCHING = 1, /* probing candidates */
  NT_PATH_CONNECTING,   /* a QUIC handshake is under way */
  NT_PATH_CONNECTED     /* the connection is up */
} nt_path_phase;

/* The planner's state for one peer. The caller embeds it (nothing to
 * allocate or free) and may read it (status, reports); only the functions
 * below change it. */
typedef struct nt_path {
  int initiator;    /* we open the QUIC connection */
  int self_mapping; /* nt_nat_mapping, ours */
  int peer_mapping; /* nt_nat_mapping the peer reported */
  uint32_t connect_timeout_ms;
  uint64_t meet_ns;     /* when the introduction came */
  uint64_t deadline_ns; /* the meeting ends then */
  nt_punch punch;
  size_t ngiven;      /* punch.candidates[0..ngiven) came from the broker */
  nt_addr probe_from; /* where the peer's first probe came from */
  int have_probe_from;
  nt_predict predict;
  int predicted; /* the path was found by port prediction */
  /* No prediction for this peer before then (NT_PATH_PREDICT_COOLDOWN_MS
   * after a meeting that predicted; 0 after a connection). Kept across
   * meetings. */
  uint64_t predict_quiet_until_ns;
  size_t predict_batch; /* easy side: ports per tick now; 0: a full batch */
  /* Easy side: no other peer's ports are probed now (the caller sets it
   * with predict_batch): a live connection's prediction may then take
   * the endpoint's whole NT_PATH_PREDICT_RATE. */
  int predict_alone;
  /* The relay fallback. */
  int relay_offered;
  uint64_t relay_at_ns; /* punching gives way to the relay then */
  int relay_started;    /* bound there (initiator: connecting through it) */
  uint64_t bind_next_ns;
  /* Relayed and connected: direct paths are tried again and again. */
  int upgrade_round;        /* a punch round is on */
  uint64_t upgrade_next_ns; /* next probe or round; 0: not relayed */
  nt_addr direct;           /* a punch answered from here while relayed */
  int have_direct;
  /* Re-punch of a live connection after a refresh introduction. */
  nt_punch repunch;
  int repunch_active;
  uint64_t refresh_ns; /* last refresh asked of the broker */
  uint64_t kick_ns;    /* last loss-recovery kick */
  /* A new port prediction for the live connection (one NAT is symmetric
   * and the path went silent), with the re-punch's nonce. */
  int repredict;
  int repredict_over; /* it ended: the caller closes its sockets */
  /* The re-punch's nonce before the last refresh: both sides may ask for
   * refreshes, each with a new nonce, and the peer's probes sent before
   * its own switch must still count (a prediction's hit is rare). */
  uint8_t repunch_prev[NT_PUNCH_NONCE_LEN];
  int have_repunch_prev;
} nt_path;

/* What the introduction says, for nt_path_meet. */
typedef struct nt_path_meeting {
  const uint8_t *nonce; /* NT_PUNCH_NONCE_LEN bytes */
  const nt_addr *candidates;
  size_t ncandidates;
  int initiator;
  int self_mapping, peer_mapping;
  int relay_offered;
  uint32_t connect_timeout_ms;
  uint64_t deadline_ns;
} nt_path_meeting;

/* What to do now; filled by nt_path_due. */
typedef struct nt_path_plan {
  /* Punch probes (nonce of punch) to these, from the main socket. */
  nt_addr probes[NT_PUNCH_MAX_CANDIDATES];
  size_t nprobes;
  /* Re-punch probes (nonce of repunch) from the connection's socket. */
  nt_addr repunch_probes[NT_PUNCH_MAX_CANDIDATES];
  size_t nrepunch_probes;
  /* Port prediction, hard side: open the extra sockets (first round),
   * then probe the peer's public address from every one. */
  int predict_open, predict_burst;
  /* Port prediction, easy side: probe these ports of the peer's public
   * address; predict_first on the first batch. */
  uint16_t predict_ports[NT_PATH_PREDICT_BATCH];
  size_t npredict_ports;
  int predict_first;
  int start_relay_fallback; /* bind at the relay; initiator: connect there */
  int relay_bind;           /* tell the relay where we are again */
  int move_direct;          /* initiator: migrate the relayed connection to
                               |direct|, then call nt_path_due again */
  nt_addr direct;
  int now_direct;        /* the peer moved the connection off the relay */
  int handshake_timeout; /* close the connection under way */
  int give_up;           /* punching is over without a path */
  uint64_t next_ns;      /* call nt_path_due then; UINT64_MAX: no need */
} nt_path_plan;

/* Starts path finding for a meeting at |now_ns|: punching, and the relay
 * fallback's time when one is offered. Prediction is off until
 * nt_path_start_prediction. The re-punch of an earlier connection ends. */
void nt_path_meet(nt_path *pa, const nt_path_meeting *m, uint64_t now_ns);

/* How long punching goes on before the relay fallback, in ms. */
uint64_t nt_path_relay_after_ms(int self_mapping, int peer_mapping,
                                uint32_t connect_timeout_ms);

/* Why port prediction may not run for a meeting (nt_path_predict_gate). */
typedef enum nt_path_predict_gate_result {
  NT_PATH_PREDICT_OK = 0,
  NT_PATH_PREDICT_NOT_NEEDED, /* the mappings need no prediction */
  NT_PATH_PREDICT_COOLING,    /* this peer's last prediction found nothing */
  NT_PATH_PREDICT_IP_BUSY,    /* NT_PATH_PREDICT_PER_IP peers at its IP */
  NT_PATH_PREDICT_BUSY        /* NT_PATH_PREDICT_MAX predictions at once */
} nt_path_predict_gate_result;

/* Whether this meeting may predict at |now_ns| (the budgets above):
 * |same_ip| counts the other peers predicting toward the peer's public
 * IP address now, |all| every other peer predicting now. */
nt_path_predict_gate_result nt_path_predict_gate(const nt_path *pa,
                                                 uint64_t now_ns,
                                                 unsigned same_ip,
                                                 unsigned all);

/* Easy side: the ports one meeting probes per tick when |easy| meetings
 * (this one included) probe at once: an even share of
 * NT_PATH_PREDICT_RATE, at most NT_PATH_PREDICT_BATCH, at least 1. The
 * caller sets pa->predict_batch to it before nt_path_due. */
size_t nt_path_predict_share(unsigned easy);

/* Port prediction for this meeting, timed from the introduction: the
 * role follows both mappings (predict.h); |possible| 0 (same public
 * address, no usable public address for the peer, no randomness, or the
 * gate said no) turns it off. |seed| is 8 random bytes. A prediction
 * that starts begins the peer's cool-down (cleared if it connects). */
void nt_path_start_prediction(nt_path *pa, int possible, const uint8_t seed[8]);

/* Our own mapping is known now (while punching): the relay fallback's
 * time follows it. The caller restarts prediction when it is off. */
void nt_path_on_self_mapping(nt_path *pa, int self_mapping);

/* What is due at |now_ns| in |phase|. |relayed|: the connection runs
 * through the relay (phase connected). */
void nt_path_due(nt_path *pa, nt_path_phase phase, int relayed, uint64_t now_ns,
                 nt_path_plan *plan);

/* Connected: when the live connection's schedules (direct attempts,
 * re-punch) are due next; UINT64_MAX when none is. */
uint64_t nt_path_live_next(const nt_path *pa);

/* What to send back to a probe of this meeting, besides the reply. */
typedef enum nt_path_probe_back {
  NT_PATH_PROBE_ANSWER_ONLY = 0,
  /* It found one of our prediction sockets: probe back from there. */
  NT_PATH_PROBE_BACK_ON_SOCKET,
  /* From an address the broker never saw (a peer-reflexive candidate,
   * RFC 8445 §7.3.1.3), added to the candidates: probe it now. */
  NT_PATH_PROBE_BACK_NEW,
  /* Initiator, no answer yet: its probe opened its NAT, so ours goes
   * through now; probe back at once instead of at the next round. */
  NT_PATH_PROBE_BACK
} nt_path_probe_back;

/* A probe of this meeting from |from| (|on_prediction_socket|: it came to
 * an extra socket). Counts it and remembers where the first one came
 * from. */
nt_path_probe_back nt_path_on_probe(nt_path *pa, nt_path_phase phase,
                                    const nt_addr *from,
                                    int on_prediction_socket);

typedef enum nt_path_reply_action {
  NT_PATH_REPLY_IGNORE = 0,
  NT_PATH_REPLY_CONNECT,     /* initiator: connect to where it came from */
  NT_PATH_REPLY_MOVE_DIRECT, /* initiator, relayed: migrate there */
} nt_path_reply_action;

/* A reply of this meeting from |from|: the path works both ways. Counts
 * it; sets pa->predicted on CONNECT; remembers a direct path found while
 * the relayed handshake runs, for when it is up. */
nt_path_reply_action nt_path_on_reply(nt_path *pa, nt_path_phase phase,
                                      const nt_addr *from,
                                      int on_prediction_socket);

/* The connection is up at |now_ns|: |relayed| through the relay,
 * |on_prediction_socket| on an extra socket (then found by prediction). */
void nt_path_on_established(nt_path *pa, uint64_t now_ns, int relayed,
                            int on_prediction_socket);

/* The direct connection is up to |remote|: on the easy side of a
 * prediction that has probed, a port the broker never named means the
 * path was found by prediction (the symmetric side's new port), so it is
 * marked so. (Before any prediction probe, such a port is the symmetric
 * side's own probe's: plain punching found it.) */
void nt_path_on_remote(nt_path *pa, const nt_addr *remote);

/* The relayed connection moved to a direct path: attempts stop. */
void nt_path_on_moved_direct(nt_path *pa);

/* The meeting or its connection ended. */
void nt_path_reset(nt_path *pa);

/* The caller's entry now serves another peer: nothing of this one's path
 * (candidates, counts) remains. */
void nt_path_forget(nt_path *pa);

/* The live connection hears nothing with data outstanding: 1 when the
 * broker is to be asked for a refresh now (not within
 * NT_PATH_REFRESH_INTERVAL_MS of the last). */
int nt_path_refresh_due(nt_path *pa, uint64_t now_ns);

/* A refresh introduction: probe |cands| with |nonce| for
 * NT_PATH_REPUNCH_S, keeping the connection. */
void nt_path_repunch_start(nt_path *pa, const uint8_t *nonce,
                           const nt_addr *cands, size_t ncands,
                           uint64_t now_ns);

/* A refresh introduction came for the live connection (its re-punch
 * runs) and one NAT is symmetric: predict again for the re-punch's
 * NT_PATH_REPUNCH_S, at once (the roles follow pa's mappings; set them
 * first), probes carrying the re-punch's nonce. Not while one runs.
 * Returns the role, or NT_PREDICT_NONE when none starts. */
nt_predict_role nt_path_repredict_start(nt_path *pa, const uint8_t seed[8],
                                        uint64_t now_ns);

/* The live re-prediction found a path (or is dropped): it stops. */
void nt_path_repredict_end(nt_path *pa);

/* 1 when |nonce| is the re-punch's under way (or the one it replaced). */
int nt_path_is_repunch(const nt_path *pa, const uint8_t *nonce);

/* A probe or reply (NT_PUNCH_*) of the re-punch from |from| (NULL: an
 * address too long to keep). Returns 1 for a probe from an address not
 * probed yet, now added: probe it back. */
int nt_path_on_repunch_packet(nt_path *pa, int type, const nt_addr *from);

/* A re-punch packet shows the path is open: 1 when loss recovery is to
 * resend now (at most every NT_PATH_KICK_INTERVAL_MS). */
int nt_path_kick_due(nt_path *pa, uint64_t now_ns);

#endif
