/* libFuzzer target: a control message as a hostile broker sends it to a
 * client, or a hostile client to a broker: the one decoder both roles use
 * (src/codec/control.c) with every bound it promises checked on what it
 * hands out, the broker's filter of reported candidates (admission.c),
 * and a round trip: what decodes encodes again and decodes the same. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/admission.h"
#include "codec/control.h"

static void check_addr(const nt_addr *a, int optional) {
  if (a->len == 0 && optional) {
    return;
  }
  const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
  if ((a->len != sizeof(struct sockaddr_in) &&
       a->len != sizeof(struct sockaddr_in6)) ||
      (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
      nt_addr_port(sa) == 0) {
    abort();
  }
}

static void check_text(const char *s, size_t max) {
  size_t n = strnlen(s, max + 1);
  if (n > max) {
    abort();
  }
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
      abort();
    }
  }
}

static void check_name(const char *s, int may_be_empty) {
  if (!(may_be_empty && s[0] == '\0') && !nt_name_valid(s)) {
    abort();
  }
}

static void check_mapping(int mapping) {
  if (mapping != NT_MAPPING_UNKNOWN &&
      mapping != NT_MAPPING_ENDPOINT_INDEPENDENT &&
      mapping != NT_MAPPING_PER_DESTINATION) {
    abort();
  }
}

static void check_code(nt_control_code code) {
  if ((int)code < NT_CODE_OK || code > NT_CODE_UNAUTHORIZED) {
    abort();
  }
}

/* The broker keeps only the reported candidates peers may probe. */
static void check_candidate_filter(const nt_addr *a) {
  const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
  int off_lo = nt_candidate_acceptable(sa, 0);
  int on_lo = nt_candidate_acceptable(sa, 1);
  if ((off_lo && nt_addr_is_loopback(sa)) || (off_lo && !on_lo) ||
      (on_lo && sa->sa_family == AF_INET6 &&
       IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr))) {
    abort(); /* loopback when not allowed, v4-mapped */
  }
}

static void check_bounds(const nt_control *m) {
  switch (m->type) {
  case NT_CONTROL_CHECK_IN: {
    const nt_check_in *v = &m->u.check_in;
    check_name(v->name, 1);
    if (v->nlocal > NT_MAX_LOCAL_ADDRS || v->nlocal > v->nlocal_sent ||
        v->nlocal_sent > NT_MAX_LOCAL_ADDRS ||
        (v->token_invalid && v->token[0])) {
      abort();
    }
    check_text(v->token, NT_CONTROL_TOKEN_MAX);
    for (size_t i = 0; i < v->nlocal; i++) {
      check_addr(&v->local[i], 0);
      check_candidate_filter(&v->local[i]);
    }
    break;
  }
  case NT_CONTROL_CHECK_IN_RESULT:
    check_code(m->u.check_in_result.code);
    check_text(m->u.check_in_result.message, NT_CONTROL_TEXT_MAX);
    check_addr(&m->u.check_in_result.observed, 1);
    break;
  case NT_CONTROL_CONNECT_REQUEST:
    check_name(m->u.connect_request.peer, 1);
    break;
  case NT_CONTROL_CONNECT_RESULT:
    check_code(m->u.connect_result.code);
    check_text(m->u.connect_result.message, NT_CONTROL_TEXT_MAX);
    break;
  case NT_CONTROL_INTRODUCTION: {
    const nt_introduction *v = &m->u.introduction;
    check_name(v->name, 0);
    check_mapping(v->mapping);
    check_addr(&v->observed, 1);
    check_addr(&v->mapped, 1);
    if (v->nlocal > NT_MAX_LOCAL_ADDRS) {
      abort();
    }
    /* Another broker's relay: only with a relay, on the relay's port. */
    check_addr(&v->relay, 1);
    if (v->relay.len &&
        (!v->relay_port ||
         nt_addr_port((const struct sockaddr *)&v->relay.ss) !=
             v->relay_port)) {
      abort();
    }
    for (size_t i = 0; i < v->nlocal; i++) {
      check_addr(&v->local[i], 0);
    }
    break;
  }
  case NT_CONTROL_NAT_REPORT:
    check_mapping(m->u.nat_report.mapping);
    check_addr(&m->u.nat_report.mapped, 1);
    break;
  case NT_CONTROL_PEER_NOTICE:
    check_name(m->u.peer_notice.peer, 0);
    if (m->u.peer_notice.kind != NT_NOTICE_NONE &&
        m->u.peer_notice.kind != NT_NOTICE_RESTARTED) {
      abort();
    }
    break;
  case NT_CONTROL_CHECK_REPORT: {
    const nt_check_side *v = &m->u.check_report;
    if (v->nprobed > NT_PUNCH_MAX_CANDIDATES ||
        v->outcome < NT_CHECK_CONNECTED || v->outcome > NT_CHECK_REFUSED) {
      abort();
    }
    check_mapping(v->mapping);
    check_name(v->peer, 1);
    check_addr(&v->probes_from, 1);
    check_addr(&v->observed, 1);
    for (size_t i = 0; i < v->nprobed; i++) {
      check_addr(&v->probed[i], 0);
    }
    break;
  }
  case NT_CONTROL_ADMISSION_QUERY:
    check_name(m->u.admission_query.peer, 0);
    if (m->u.admission_query.query_id == 0) {
      abort();
    }
    break;
  default:
    break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static nt_control msg, again; /* large: off the stack */
  static uint8_t frame[NT_CONTROL_FRAME_MAX];
  if (nt_control_decode(&msg, data, size) != 0) {
    if (msg.type == NT_CONTROL_NONE) {
      return 0;
    }
    /* A failed message says only which it was. */
    nt_control_type type = msg.type;
    memset(&again, 0, sizeof(again));
    again.type = type;
    if (memcmp(&msg, &again, sizeof(msg)) != 0) {
      abort();
    }
    return 0;
  }
  check_bounds(&msg);
  if (msg.type == NT_CONTROL_NONE) {
    return 0;
  }
  /* Everything decoded encodes within the frame limit, and reads back as
   * it was (less what only the decoder notes). */
  size_t len = nt_control_encode(frame, &msg);
  size_t hdr, body;
  if (len == 0 || nt_wire_frame_peek(frame, len, &hdr, &body) != 1 ||
      hdr + body != len || nt_control_decode(&again, frame + hdr, body) != 0) {
    abort();
  }
  if (msg.type == NT_CONTROL_CHECK_IN) {
    msg.u.check_in.nlocal_sent = msg.u.check_in.nlocal;
    msg.u.check_in.token_invalid = 0;
  }
  if (memcmp(&msg, &again, sizeof(msg)) != 0) {
    abort();
  }
  return 0;
}
