/* A client's control session with a broker, for the hostile tools
 * (natter-flood, natter-hog, natter-spoof, natter-relay-flood): opens the
 * control stream once a connection is up, sends a CheckIn built from a
 * few fields or any other message, hands each message the broker sends
 * to the tool, notices the stream closing, and answers AdmissionQuery by
 * a fixed policy. Also the endpoint and arguments every tool sets up the
 * same way. Test builds only; never part of libnatter. */
#ifndef NT_BROKER_CLIENT_H
#define NT_BROKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "codec/control.h"
#include "codec/wire.h"
#include "natter.h"
#include "quic/endpoint.h"
#include "trust/tls.h"

/* Called for each message the broker sends; |msg| is NULL when a frame
 * does not decode. Returns nonzero to leave the rest of what arrived
 * unread (the tool is closing the connection). */
typedef int (*nt_hclient_msg_fn)(const nt_control *msg, void *user_data);

/* What the session does with an AdmissionQuery. */
typedef enum nt_hclient_admit {
  NT_HCLIENT_ADMIT_ASK = 0, /* hands it to the tool like any message */
  NT_HCLIENT_ADMIT_ALL,     /* answers at once: admitted */
  NT_HCLIENT_ADMIT_NONE     /* answers at once: refused */
} nt_hclient_admit;

/* Not opaque: each tool embeds one in its per-connection struct, and
 * those come in fixed arrays. Set up with nt_hclient_init. */
typedef struct nt_hclient {
  nt_stream *ctl; /* NULL until opened, and again once closed */
  nt_wire_reader reader;
  nt_hclient_msg_fn on_msg; /* NULL: what arrives is read and dropped */
  void *user_data;
  nt_hclient_admit admit;
} nt_hclient;

/* The few fields of a CheckIn the tools vary. */
typedef struct nt_hclient_check_in {
  const char *name;
  uint32_t protocol_version; /* 0: NT_CONTROL_PROTOCOL_VERSION */
  int listen, diagnostic;
  const nt_addr *local; /* its LAN addresses, as reported; the first */
  size_t nlocal;        /* NT_MAX_LOCAL_ADDRS are sent */
} nt_hclient_check_in;

void nt_hclient_init(nt_hclient *c, nt_hclient_msg_fn on_msg, void *user_data,
                     nt_hclient_admit admit);

/* Opens the control stream on |conn| (from its on_established). Returns 0,
 * or -1 when no stream can be opened. */
int nt_hclient_open(nt_hclient *c, nt_conn *conn);
/* nt_hclient_open, then the CheckIn |in|. */
int nt_hclient_start(nt_hclient *c, nt_conn *conn,
                     const nt_hclient_check_in *in);

/* Encodes |msg| into a frame and writes it on the control stream; does
 * nothing while there is none. */
void nt_hclient_send(nt_hclient *c, const nt_control *msg);
void nt_hclient_send_check_in(nt_hclient *c, const nt_hclient_check_in *in);

/* The connection closed (from its on_closed): the stream is gone. */
void nt_hclient_closed(nt_hclient *c);

/* Frees what the reader holds; |c| may be opened again after. */
void nt_hclient_reset(nt_hclient *c);

/* Creates an endpoint on |base| bound to |bind| (port 0: any) under |id|
 * for connections to a broker: keepalives hold the broker's state for as
 * long as the tool runs. Returns 0, or nonzero with a reason in |err|. */
int nt_hclient_endpoint(nt_endpoint **pep, struct event_base *base,
                        const nt_addr *bind, nt_identity *id, const nt_log *log,
                        uint64_t handshake_timeout_ms, char *err,
                        size_t errlen);

/* Breaks |base|'s loop once |seconds| have passed: every run of a tool
 * ends by itself. Returns the timer, for the caller to event_free, or
 * NULL when it cannot be set. */
struct event *nt_hclient_deadline(struct event_base *base, unsigned seconds);

/* Parses the arguments BROKER (HOST:PORT) into |broker| and, when |bind|
 * is not NULL, BIND (an IP address, any port) into it. On error prints
 * "TOOL: broker: REASON" (or bind) and returns -1. */
int nt_hclient_parse_args(const char *tool, const char *broker_arg,
                          const char *bind_arg, nt_addr *broker, nt_addr *bind);

#endif
