/* The control protocol between a client and its broker (natter.proto,
 * message Control), as plain C structs, without I/O.
 *
 * Everything on a client's control stream is one Control message in a
 * length-prefixed frame (wire.h). The client sends CheckIn, NatReport,
 * ConnectRequest, CheckReport, AdmissionAnswer and AdmissionReset; the
 * broker answers
 * CheckInResult, ConnectResult, Introduction, PeerNotice, asks a listener
 * AdmissionQuery before it introduces anyone to it, and passes
 * CheckReport on.
 *
 * Either side may be hostile. The decoder bounds everything it hands out:
 *  - counts: at most NT_MAX_LOCAL_ADDRS local addresses, at most
 *    NT_PUNCH_MAX_CANDIDATES probed addresses (more is an error);
 *  - addresses: a 4- or 16-byte IP and a port 1..65535; one that is not
 *    is dropped (an optional one reads as len 0);
 *  - fixed lengths: keys NT_FINGERPRINT_LEN, nonces NT_PUNCH_NONCE_LEN,
 *    relay tokens NT_RELAY_TOKEN_LEN, sessions NT_SESSION_LEN bytes;
 *  - names: valid peer names (spec.h); texts: printable ASCII of at most
 *    NT_CONTROL_TEXT_MAX bytes; a field the role answers politely (a
 *    check-in's name, a request's peer, a result's reason) reads as ""
 *    when it is not within these bounds, so the role can say why;
 *  - an admission query needs a query id, a valid name and a key;
 *  - enums: an unknown NAT mapping reads NT_MAPPING_UNKNOWN, an unknown
 *    notice kind NT_NOTICE_NONE, an unknown result code NT_CODE_INTERNAL;
 *    an unknown check outcome is an error.
 * What a role must refuse outright is NATTER_ERR_PROTOCOL. */
#ifndef NT_CONTROL_H
#define NT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "codec/mapping.h"
#include "codec/relay_wire.h"
#include "codec/spec.h"
#include "codec/wire.h"

/* 2: the broker asks a listener (AdmissionQuery) before it introduces
 * anyone to it; version 1 clients and brokers are told to upgrade. */
#define NT_CONTROL_PROTOCOL_VERSION 2
#define NT_CONTROL_FRAME_MAX (NT_WIRE_MAX_HDR + NT_WIRE_MAX_MSG)
#define NT_CONTROL_TEXT_MAX 150  /* a result's reason, shown to the user */
#define NT_CONTROL_TOKEN_MAX 256 /* a broker token (token.h: NT_TOKEN_MAX) */

#define NT_MAX_LOCAL_ADDRS 8 /* LAN candidates a client reports */
#define NT_SESSION_LEN 16    /* random bytes per client process */
/* The nonce that names a meeting: the broker picks it, both peers' probes
 * carry it (punch.h), and a check's report names it. */
#define NT_PUNCH_NONCE_LEN 16
/* The observed address, up to 8 the peer reported (IPv4 LAN, IPv6) and
 * room for a few seen only in its probes (peer-reflexive). */
#define NT_PUNCH_MAX_CANDIDATES 12

/* Why a request failed; the values are the protocol's Code. */
typedef enum nt_control_code {
  NT_CODE_OK = 0,
  NT_CODE_BAD_REQUEST = 1,
  NT_CODE_NAME_TAKEN = 2,
  NT_CODE_PEER_UNKNOWN = 3,
  NT_CODE_PEER_NOT_LISTENING = 4,
  NT_CODE_REFUSED = 5,
  NT_CODE_UNREACHABLE = 6,
  NT_CODE_DENIED = 7,
  NT_CODE_INTERNAL = 8,
  NT_CODE_TIMEOUT = 9,
  NT_CODE_UNAUTHORIZED = 10
} nt_control_code;

/* client -> broker: the first message on the control stream. */
typedef struct nt_check_in {
  uint32_t protocol_version;
  char name[NT_NAME_MAX + 1]; /* "" when not a valid name */
  int listen;
  int no_relay;                      /* refuses relayed peers */
  int diagnostic;                    /* a check session (natter -check) */
  nt_addr local[NT_MAX_LOCAL_ADDRS]; /* LAN candidates with our port */
  size_t nlocal;
  size_t nlocal_sent; /* decoded: how many the client listed, valid or not */
  /* The broker's token, "" for none; decoded: "" with |token_invalid|
   * when it was too long or not printable (it matches no token). */
  char token[NT_CONTROL_TOKEN_MAX + 1];
  int token_invalid;
  uint8_t session[NT_SESSION_LEN]; /* all 0: none */
  /* Reads nt_introduction.relay from the wire (a relay at another
   * broker); never given one otherwise. */
  int reads_relay_address;
} nt_check_in;

/* broker -> client: the answer to a check-in. */
typedef struct nt_check_in_result {
  nt_control_code code;
  char message[NT_CONTROL_TEXT_MAX + 1]; /* why not OK; may be "" */
  nt_addr observed;      /* the client as the broker saw it; len 0: none */
  uint16_t mapping_port; /* for mapping checks (mapping.h); 0: none */
  int closed;            /* admits only its token and/or listed keys */
} nt_check_in_result;

/* client -> broker: what the mapping check found. */
typedef struct nt_nat_report {
  int mapping;    /* nt_nat_mapping */
  nt_addr mapped; /* as the mapping-check port saw it; len 0: none */
  nt_addr portmap;    /* our gateway's mapping of our port; len 0: none */
  int portmap_method; /* nt_portmap_method; NONE with no portmap */
} nt_nat_report;

/* client -> broker: introduce me to |peer|. */
typedef struct nt_connect_request {
  uint32_t request_id;        /* never 0 from a well-behaved client */
  char peer[NT_NAME_MAX + 1]; /* "" when not a valid name */
  int refresh; /* punch again for the connection the two already have */
  int check;   /* a connectivity check (from a check session) */
} nt_connect_request;

/* broker -> client: a connect request that cannot be served. */
typedef struct nt_connect_result {
  uint32_t request_id;
  nt_control_code code;
  char message[NT_CONTROL_TEXT_MAX + 1];
} nt_connect_result;

/* broker -> both clients of a pair: everything needed to reach the
 * other. */
typedef struct nt_introduction {
  char name[NT_NAME_MAX + 1];
  uint32_t request_id; /* the requester's own; 0 for the asked peer */
  uint8_t key[NT_FINGERPRINT_LEN];
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  nt_addr observed; /* its public address; len 0 when unknown */
  nt_addr mapped;   /* as the broker's mapping port saw it; len 0: none */
  int mapping;      /* nt_nat_mapping it reported */
  nt_addr local[NT_MAX_LOCAL_ADDRS];
  size_t nlocal;
  int refresh; /* punch again for the connection we have; keep it */
  /* The broker's relay for this pair when punching fails: our channel
   * token and the relay's port (0: no relay; both or neither). |relay|:
   * the relay's address when the wire names one (relay_address: another
   * broker's relay, its port |relay_port|; one with another port makes
   * the whole relay void), else len 0 and the client fills in its
   * broker's address with this port. */
  uint8_t relay_token[NT_RELAY_TOKEN_LEN];
  uint16_t relay_port;
  nt_addr relay;
  int check; /* a connectivity check by the peer (natter -check): no
                streams; report what this side saw when done */
  nt_addr portmap;    /* the peer's gateway mapping; len 0: none */
  int portmap_method; /* nt_portmap_method; NONE with no portmap */
} nt_introduction;

/* broker -> client: what happened to a peer it was introduced to. */
enum { NT_NOTICE_NONE = 0, NT_NOTICE_RESTARTED = 1 };

typedef struct nt_peer_notice {
  char peer[NT_NAME_MAX + 1];
  uint8_t key[NT_FINGERPRINT_LEN];
  int kind; /* NT_NOTICE_* */
} nt_peer_notice;

/* Outcomes of a connectivity check on one side (CheckReport.Outcome). */
enum {
  NT_CHECK_NONE = 0,
  NT_CHECK_CONNECTED = 1,
  NT_CHECK_FAILED = 2,
  NT_CHECK_REFUSED = 3 /* our peer rules do not admit the requester */
};

/* One side's view of a connectivity check: what the checked peer reports
 * (through the broker) and what the requester got back. */
typedef struct nt_check_side {
  uint8_t nonce[NT_PUNCH_NONCE_LEN]; /* the meeting's */
  int outcome;                       /* NT_CHECK_*, not NONE on the wire */
  int relayed;
  int mapping; /* the reporter's own nt_nat_mapping */
  /* The addresses it was given to probe (not those learned from probes). */
  nt_addr probed[NT_PUNCH_MAX_CANDIDATES];
  size_t nprobed;
  uint32_t probe_rounds, probes_received, replies_received;
  nt_addr probes_from; /* where the other's probes came from; len 0: none */
  uint32_t elapsed_ms; /* from the introduction to the outcome */
  /* Filled by the broker for the requester ("" / len 0: not given): */
  char peer[NT_NAME_MAX + 1];
  nt_addr observed; /* the reporter's public address */
} nt_check_side;

/* broker -> listener: may |peer| (with |key|) meet you? Nothing about
 * the requester's addresses; answered exactly once. */
typedef struct nt_admission_query {
  uint32_t query_id; /* the broker's; never 0 */
  char peer[NT_NAME_MAX + 1];
  uint8_t key[NT_FINGERPRINT_LEN];
  int check; /* a connectivity check (natter -check) */
} nt_admission_query;

/* listener -> broker: the answer to query |query_id|. */
typedef struct nt_admission_answer {
  uint32_t query_id;
  int admitted;
} nt_admission_answer;

/* Which message a Control carries. */
typedef enum nt_control_type {
  NT_CONTROL_NONE = 0, /* none this version knows (a newer peer's) */
  NT_CONTROL_CHECK_IN = 1,
  NT_CONTROL_CHECK_IN_RESULT = 2,
  NT_CONTROL_CONNECT_REQUEST = 3,
  NT_CONTROL_CONNECT_RESULT = 4,
  NT_CONTROL_INTRODUCTION = 5,
  NT_CONTROL_NAT_REPORT = 6,
  NT_CONTROL_PEER_NOTICE = 7,
  NT_CONTROL_CHECK_REPORT = 8,
  NT_CONTROL_ADMISSION_QUERY = 9,
  NT_CONTROL_ADMISSION_ANSWER = 10,
  /* listener -> broker: its peer rules changed; no fields */
  NT_CONTROL_ADMISSION_RESET = 11
} nt_control_type;

typedef struct nt_control {
  nt_control_type type;
  union {
    nt_check_in check_in;
    nt_check_in_result check_in_result;
    nt_connect_request connect_request;
    nt_connect_result connect_result;
    nt_introduction introduction;
    nt_nat_report nat_report;
    nt_peer_notice peer_notice;
    nt_check_side check_report;
    nt_admission_query admission_query;
    nt_admission_answer admission_answer;
  } u;
} nt_control;

/* Encodes |msg| into |out| (NT_CONTROL_FRAME_MAX bytes), length prefix
 * included. Counts past the limits above are cut to them; a "" string
 * and a len-0 address are left out. Returns the frame's size, or 0 for
 * NT_CONTROL_NONE or a type it does not know. */
size_t nt_control_encode(uint8_t *out, const nt_control *msg);

/* Decodes the body of one frame (as nt_wire_reader hands it out, at most
 * NT_WIRE_MAX_MSG bytes) into |out|, with the bounds above. Returns 0
 * (type NT_CONTROL_NONE for a Control with no message this version
 * knows), or NATTER_ERR_PROTOCOL. On NATTER_ERR_PROTOCOL |out->type|
 * still says which message failed (NT_CONTROL_NONE when the bytes are no
 * Control at all), so a role can answer each in its own way. */
int nt_control_decode(nt_control *out, const uint8_t *body, size_t len);

#endif
