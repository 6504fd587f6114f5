/* The requester's side of a connectivity check (natter_client_check):
 * one meeting with the peer through the peer table, both sides' data
 * gathered (ours from the punch, the peer's from its CheckReport), a
 * verdict (verdict.h), the connection closed, and one callback. It sits
 * beside forward.c: the client facade feeds it what the broker says and
 * it reports through the user's natter_check_fn. */
#ifndef NT_CHECKRUN_H
#define NT_CHECKRUN_H

#include <event2/event.h>

#include "base/log.h"
#include "natter.h"
#include "client/peer.h"

/* How long the requester waits for the peer's report after its own
 * outcome, and the bound of a whole check beyond connect_timeout_ms
 * (check-in, mapping check, report). */
#define NT_CHECK_REPORT_WAIT_MS 3000
#define NT_CHECK_EXTRA_MS 10000

typedef struct nt_check_run nt_check_run;

typedef struct nt_check_env {
  struct event_base *base;
  const nt_log *log;
  nt_peers *peers;
  const nt_self_view *self; /* kept current by the owner */
  const char *self_name;
  uint32_t connect_timeout_ms;
  natter_client *client; /* handed back to |fn| only */
} nt_check_env;

/* A check of |peer|, bounded from now on. |env| is copied. Returns 0 or
 * NATTER_ERR_NOMEM. */
int nt_check_run_new(nt_check_run **prun, const nt_check_env *env,
                     const char *peer, natter_check_fn fn, void *user_data);
void nt_check_run_free(nt_check_run *run);

/* Checked in and the NAT mapping measured (or given up on): ask the
 * broker for the peer. Only the first call counts. */
void nt_check_run_start(nt_check_run *run);
/* The broker introduced us to |peer| for this meeting. */
void nt_check_run_on_introduction(nt_check_run *run, const char *peer,
                                  const uint8_t *nonce);
/* The peer's report, already bounded by nt_control_decode. */
void nt_check_run_on_report(nt_check_run *run, const nt_check_side *side);
/* The client cannot go on (fatal): end the check with |error| and |why|. */
void nt_check_run_fail(nt_check_run *run, int error, const char *why);

#endif
