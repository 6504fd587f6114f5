/* The control protocol: plain structs <-> natter.proto's Control. */
#include "codec/control.h"

#include <stdio.h>
#include <string.h>

#include "codec/portmap.h"
#include "codec/wire_pb.h"
#include "natter.h"

_Static_assert((int)NT_CODE_OK == (int)NATTER__CODE__OK &&
                   (int)NT_CODE_BAD_REQUEST == (int)NATTER__CODE__BAD_REQUEST &&
                   (int)NT_CODE_NAME_TAKEN == (int)NATTER__CODE__NAME_TAKEN &&
                   (int)NT_CODE_PEER_UNKNOWN ==
                       (int)NATTER__CODE__PEER_UNKNOWN &&
                   (int)NT_CODE_PEER_NOT_LISTENING ==
                       (int)NATTER__CODE__PEER_NOT_LISTENING &&
                   (int)NT_CODE_INTERNAL == (int)NATTER__CODE__INTERNAL &&
                   (int)NT_CODE_UNAUTHORIZED == (int)NATTER__CODE__UNAUTHORIZED,
               "nt_control_code mirrors the protocol's Code");
_Static_assert((int)NT_MAPPING_ENDPOINT_INDEPENDENT ==
                       (int)NATTER__NAT_MAPPING__MAPPING_ENDPOINT_INDEPENDENT &&
                   (int)NT_MAPPING_PER_DESTINATION ==
                       (int)NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION,
               "nt_nat_mapping mirrors the protocol's NatMapping");
_Static_assert(
    (int)NT_CHECK_CONNECTED == (int)NATTER__CHECK_REPORT__OUTCOME__CONNECTED &&
        (int)NT_CHECK_FAILED == (int)NATTER__CHECK_REPORT__OUTCOME__FAILED &&
        (int)NT_CHECK_REFUSED == (int)NATTER__CHECK_REPORT__OUTCOME__REFUSED,
    "NT_CHECK_* mirror the protocol's CheckReport.Outcome");
_Static_assert((int)NT_NOTICE_RESTARTED ==
                   (int)NATTER__PEER_NOTICE__KIND__RESTARTED,
               "NT_NOTICE_* mirror the protocol's PeerNotice.Kind");

/* ---- small conversions ---- */

static int mapping_of(int wire) {
  return wire == NT_MAPPING_ENDPOINT_INDEPENDENT
             ? NT_MAPPING_ENDPOINT_INDEPENDENT
         : wire == NT_MAPPING_PER_DESTINATION ? NT_MAPPING_PER_DESTINATION
                                              : NT_MAPPING_UNKNOWN;
}

static int portmap_method_of(int wire) {
  return wire == NT_PORTMAP_PCP || wire == NT_PORTMAP_NATPMP ||
                 wire == NT_PORTMAP_UPNP
             ? wire
             : NT_PORTMAP_NONE;
}

static nt_control_code code_of(int wire) {
  return wire >= NT_CODE_OK && wire <= NT_CODE_UNAUTHORIZED
             ? (nt_control_code)wire
             : NT_CODE_INTERNAL;
}

/* An optional address: len 0 when missing or out of bounds. */
static void addr_or_none(nt_addr *out, const Natter__Address *in) {
  if (nt_wire_addr_to_nt(out, in) != 0) {
    memset(out, 0, sizeof(*out));
  }
}

/* Copies |in| into |out| (|max| + 1 bytes) when it is printable ASCII of
 * at most |max| bytes; else |out| reads "" and this returns 0. */
static int copy_text(char *out, size_t max, const char *in) {
  if (!nt_wire_string_ok(in, max)) {
    out[0] = '\0';
    return 0;
  }
  snprintf(out, max + 1, "%s", in);
  return 1;
}

/* Copies |in| when it is a valid peer name; else "". */
static int copy_name(char out[NT_NAME_MAX + 1], const char *in) {
  if (!in || !nt_name_valid(in)) {
    out[0] = '\0';
    return 0;
  }
  snprintf(out, NT_NAME_MAX + 1, "%s", in);
  return 1;
}

/* The addresses in |in| that are within bounds, in order. */
static size_t addr_list(nt_addr *out, Natter__Address *const *in, size_t n) {
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (nt_wire_addr_to_nt(&out[kept], in[i]) == 0) {
      kept++;
    }
  }
  return kept;
}

/* ---- decoding ---- */

static int decode_check_in(nt_check_in *out, const Natter__CheckIn *in) {
  if (in->n_local_addrs > NT_MAX_LOCAL_ADDRS) {
    return NATTER_ERR_PROTOCOL;
  }
  out->protocol_version = in->protocol_version;
  copy_name(out->name, in->name);
  out->listen = in->listen ? 1 : 0;
  out->no_relay = in->no_relay ? 1 : 0;
  out->diagnostic = in->diagnostic ? 1 : 0;
  out->reads_relay_address = in->reads_relay_address ? 1 : 0;
  out->nlocal_sent = in->n_local_addrs;
  out->nlocal = addr_list(out->local, in->local_addrs, in->n_local_addrs);
  if (in->token && in->token[0] &&
      !copy_text(out->token, NT_CONTROL_TOKEN_MAX, in->token)) {
    out->token_invalid = 1;
  }
  if (in->session.len == NT_SESSION_LEN) {
    memcpy(out->session, in->session.data, NT_SESSION_LEN);
  }
  return 0;
}

static int decode_check_in_result(nt_check_in_result *out,
                                  const Natter__CheckInResult *in) {
  out->code = code_of(in->code);
  copy_text(out->message, NT_CONTROL_TEXT_MAX, in->message);
  addr_or_none(&out->observed, in->observed);
  out->mapping_port =
      in->mapping_port <= 65535 ? (uint16_t)in->mapping_port : 0;
  out->closed = in->closed ? 1 : 0;
  return 0;
}

static int decode_nat_report(nt_nat_report *out, const Natter__NatReport *in) {
  out->mapping = mapping_of(in->mapping);
  addr_or_none(&out->mapped, in->mapped);
  addr_or_none(&out->portmap, in->portmap);
  out->portmap_method = out->portmap.len ? portmap_method_of(in->portmap_method)
                                         : NT_PORTMAP_NONE;
  if (out->portmap_method == NT_PORTMAP_NONE) {
    memset(&out->portmap, 0, sizeof(out->portmap));
  }
  return 0;
}

static int decode_connect_request(nt_connect_request *out,
                                  const Natter__ConnectRequest *in) {
  out->request_id = in->request_id;
  copy_name(out->peer, in->peer);
  out->refresh = in->refresh ? 1 : 0;
  out->check = in->check ? 1 : 0;
  return 0;
}

static int decode_connect_result(nt_connect_result *out,
                                 const Natter__ConnectResult *in) {
  out->request_id = in->request_id;
  out->code = code_of(in->code);
  copy_text(out->message, NT_CONTROL_TEXT_MAX, in->message);
  return 0;
}

static int decode_introduction(nt_introduction *out,
                               const Natter__Introduction *in) {
  if (!copy_name(out->name, in->peer) ||
      in->peer_key.len != NT_FINGERPRINT_LEN ||
      in->nonce.len != NT_PUNCH_NONCE_LEN ||
      in->n_local_addrs > NT_MAX_LOCAL_ADDRS) {
    return NATTER_ERR_PROTOCOL;
  }
  out->request_id = in->request_id;
  out->refresh = in->refresh ? 1 : 0;
  out->check = in->check ? 1 : 0;
  memcpy(out->key, in->peer_key.data, NT_FINGERPRINT_LEN);
  memcpy(out->nonce, in->nonce.data, NT_PUNCH_NONCE_LEN);
  addr_or_none(&out->observed, in->observed);
  addr_or_none(&out->mapped, in->peer_mapped);
  addr_or_none(&out->portmap, in->peer_portmap);
  out->portmap_method = out->portmap.len
                            ? portmap_method_of(in->peer_portmap_method)
                            : NT_PORTMAP_NONE;
  if (out->portmap_method == NT_PORTMAP_NONE) {
    memset(&out->portmap, 0, sizeof(out->portmap));
  }
  out->mapping = mapping_of(in->peer_mapping);
  /* A relay needs both; a half-given one is no relay. */
  if (in->relay_token.len == NT_RELAY_TOKEN_LEN && in->relay_port &&
      in->relay_port <= 65535) {
    memcpy(out->relay_token, in->relay_token.data, NT_RELAY_TOKEN_LEN);
    out->relay_port = (uint16_t)in->relay_port;
    /* Another broker's relay: its address must name the same port. */
    if (in->relay_address &&
        (nt_wire_addr_to_nt(&out->relay, in->relay_address) != 0 ||
         nt_addr_port((const struct sockaddr *)&out->relay.ss) !=
             out->relay_port)) {
      memset(out->relay_token, 0, NT_RELAY_TOKEN_LEN);
      out->relay_port = 0;
      memset(&out->relay, 0, sizeof(out->relay));
    }
  }
  out->nlocal = addr_list(out->local, in->local_addrs, in->n_local_addrs);
  return 0;
}

static int decode_peer_notice(nt_peer_notice *out,
                              const Natter__PeerNotice *in) {
  if (!copy_name(out->peer, in->peer) ||
      in->peer_key.len != NT_FINGERPRINT_LEN) {
    return NATTER_ERR_PROTOCOL;
  }
  memcpy(out->key, in->peer_key.data, NT_FINGERPRINT_LEN);
  out->kind = in->kind == NATTER__PEER_NOTICE__KIND__RESTARTED
                  ? NT_NOTICE_RESTARTED
                  : NT_NOTICE_NONE;
  return 0;
}

static int decode_check_report(nt_check_side *out,
                               const Natter__CheckReport *in) {
  if (in->nonce.len != NT_PUNCH_NONCE_LEN ||
      in->n_probed > NT_PUNCH_MAX_CANDIDATES ||
      (in->outcome != NATTER__CHECK_REPORT__OUTCOME__CONNECTED &&
       in->outcome != NATTER__CHECK_REPORT__OUTCOME__FAILED &&
       in->outcome != NATTER__CHECK_REPORT__OUTCOME__REFUSED)) {
    return NATTER_ERR_PROTOCOL;
  }
  memcpy(out->nonce, in->nonce.data, NT_PUNCH_NONCE_LEN);
  out->outcome = (int)in->outcome;
  out->relayed = in->relayed ? 1 : 0;
  out->mapping = mapping_of(in->mapping);
  out->nprobed = addr_list(out->probed, in->probed, in->n_probed);
  out->probe_rounds = in->probe_rounds;
  out->probes_received = in->probes_received;
  out->replies_received = in->replies_received;
  addr_or_none(&out->probes_from, in->probes_from);
  addr_or_none(&out->observed, in->observed);
  out->elapsed_ms = in->elapsed_ms;
  copy_name(out->peer, in->peer);
  return 0;
}

static int decode_admission_query(nt_admission_query *out,
                                  const Natter__AdmissionQuery *in) {
  if (in->query_id == 0 || !copy_name(out->peer, in->peer) ||
      in->peer_key.len != NT_FINGERPRINT_LEN) {
    return NATTER_ERR_PROTOCOL;
  }
  out->query_id = in->query_id;
  memcpy(out->key, in->peer_key.data, NT_FINGERPRINT_LEN);
  out->check = in->check ? 1 : 0;
  return 0;
}

static int decode_admission_answer(nt_admission_answer *out,
                                   const Natter__AdmissionAnswer *in) {
  out->query_id = in->query_id;
  out->admitted = in->admitted ? 1 : 0;
  return 0;
}

int nt_control_decode(nt_control *out, const uint8_t *body, size_t len) {
  memset(out, 0, sizeof(*out));
  if (len > NT_WIRE_MAX_MSG) {
    return NATTER_ERR_PROTOCOL;
  }
  Natter__Control *msg = natter__control__unpack(NULL, len, body);
  if (!msg) {
    return NATTER_ERR_PROTOCOL;
  }
  int rv = 0;
  switch (msg->msg_case) {
  case NATTER__CONTROL__MSG_CHECK_IN:
    out->type = NT_CONTROL_CHECK_IN;
    rv = decode_check_in(&out->u.check_in, msg->check_in);
    break;
  case NATTER__CONTROL__MSG_CHECK_IN_RESULT:
    out->type = NT_CONTROL_CHECK_IN_RESULT;
    rv = decode_check_in_result(&out->u.check_in_result, msg->check_in_result);
    break;
  case NATTER__CONTROL__MSG_CONNECT_REQUEST:
    out->type = NT_CONTROL_CONNECT_REQUEST;
    rv = decode_connect_request(&out->u.connect_request, msg->connect_request);
    break;
  case NATTER__CONTROL__MSG_CONNECT_RESULT:
    out->type = NT_CONTROL_CONNECT_RESULT;
    rv = decode_connect_result(&out->u.connect_result, msg->connect_result);
    break;
  case NATTER__CONTROL__MSG_INTRODUCTION:
    out->type = NT_CONTROL_INTRODUCTION;
    rv = decode_introduction(&out->u.introduction, msg->introduction);
    break;
  case NATTER__CONTROL__MSG_NAT_REPORT:
    out->type = NT_CONTROL_NAT_REPORT;
    rv = decode_nat_report(&out->u.nat_report, msg->nat_report);
    break;
  case NATTER__CONTROL__MSG_PEER_NOTICE:
    out->type = NT_CONTROL_PEER_NOTICE;
    rv = decode_peer_notice(&out->u.peer_notice, msg->peer_notice);
    break;
  case NATTER__CONTROL__MSG_CHECK_REPORT:
    out->type = NT_CONTROL_CHECK_REPORT;
    rv = decode_check_report(&out->u.check_report, msg->check_report);
    break;
  case NATTER__CONTROL__MSG_ADMISSION_QUERY:
    out->type = NT_CONTROL_ADMISSION_QUERY;
    rv = decode_admission_query(&out->u.admission_query, msg->admission_query);
    break;
  case NATTER__CONTROL__MSG_ADMISSION_ANSWER:
    out->type = NT_CONTROL_ADMISSION_ANSWER;
    rv = decode_admission_answer(&out->u.admission_answer,
                                 msg->admission_answer);
    break;
  case NATTER__CONTROL__MSG_ADMISSION_RESET:
    out->type = NT_CONTROL_ADMISSION_RESET;
    break;
  default:
    break; /* a message of a newer protocol: the role decides */
  }
  natter__control__free_unpacked(msg, NULL);
  if (rv != 0) {
    nt_control_type type = out->type;
    memset(out, 0, sizeof(*out));
    out->type = type;
  }
  return rv;
}

/* ---- encoding ----
 *
 * Each encoder fills a Control whose pointers lead into |scratch| and
 * into the plain struct; both outlive the packing. */

typedef struct scratch {
  Natter__Address addrs[NT_PUNCH_MAX_CANDIDATES + 2];
  Natter__Address *paddrs[NT_PUNCH_MAX_CANDIDATES];
  uint8_t ips[NT_PUNCH_MAX_CANDIDATES + 2][16];
  size_t used;
} scratch;

_Static_assert(NT_MAX_LOCAL_ADDRS <= NT_PUNCH_MAX_CANDIDATES,
               "one scratch list holds either kind of address list");

/* An optional address: NULL when |a| has len 0. */
static Natter__Address *put_addr(scratch *s, const nt_addr *a) {
  if (!a->len) {
    return NULL;
  }
  Natter__Address *w = &s->addrs[s->used];
  nt_wire_addr_from_nt(w, s->ips[s->used], a);
  s->used++;
  return w;
}

/* A list of at most |max| addresses; the count goes to *n. */
static Natter__Address **put_list(scratch *s, const nt_addr *list, size_t count,
                                  size_t max, size_t *n) {
  *n = 0;
  for (size_t i = 0; i < count && i < max; i++) {
    nt_wire_addr_from_nt(&s->addrs[s->used], s->ips[s->used], &list[i]);
    s->paddrs[(*n)++] = &s->addrs[s->used++];
  }
  return s->paddrs;
}

/* A string field: "" is left out of the encoding, as proto3 does. */
static char *text(const char *s) {
  return (char *)s;
}

size_t nt_control_encode(uint8_t *out, const nt_control *m) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__CheckIn in = NATTER__CHECK_IN__INIT;
  Natter__CheckInResult inres = NATTER__CHECK_IN_RESULT__INIT;
  Natter__ConnectRequest req = NATTER__CONNECT_REQUEST__INIT;
  Natter__ConnectResult res = NATTER__CONNECT_RESULT__INIT;
  Natter__Introduction intro = NATTER__INTRODUCTION__INIT;
  Natter__NatReport rep = NATTER__NAT_REPORT__INIT;
  Natter__PeerNotice notice = NATTER__PEER_NOTICE__INIT;
  Natter__CheckReport chk = NATTER__CHECK_REPORT__INIT;
  Natter__AdmissionQuery query = NATTER__ADMISSION_QUERY__INIT;
  Natter__AdmissionAnswer answer = NATTER__ADMISSION_ANSWER__INIT;
  Natter__AdmissionReset reset = NATTER__ADMISSION_RESET__INIT;
  static const uint8_t no_session[NT_SESSION_LEN];
  scratch s;
  s.used = 0;

  switch (m->type) {
  case NT_CONTROL_CHECK_IN: {
    const nt_check_in *v = &m->u.check_in;
    in.protocol_version = v->protocol_version;
    in.name = text(v->name);
    in.listen = v->listen;
    in.local_addrs = put_list(&s, v->local, v->nlocal, NT_MAX_LOCAL_ADDRS,
                              &in.n_local_addrs);
    in.token = text(v->token);
    if (memcmp(v->session, no_session, NT_SESSION_LEN) != 0) {
      in.session.data = (uint8_t *)v->session;
      in.session.len = NT_SESSION_LEN;
    }
    in.no_relay = v->no_relay;
    in.diagnostic = v->diagnostic;
    in.reads_relay_address = v->reads_relay_address;
    msg.msg_case = NATTER__CONTROL__MSG_CHECK_IN;
    msg.check_in = &in;
    break;
  }
  case NT_CONTROL_CHECK_IN_RESULT: {
    const nt_check_in_result *v = &m->u.check_in_result;
    inres.code = (Natter__Code)v->code;
    inres.message = text(v->message);
    inres.observed = put_addr(&s, &v->observed);
    inres.mapping_port = v->mapping_port;
    inres.closed = v->closed;
    msg.msg_case = NATTER__CONTROL__MSG_CHECK_IN_RESULT;
    msg.check_in_result = &inres;
    break;
  }
  case NT_CONTROL_CONNECT_REQUEST: {
    const nt_connect_request *v = &m->u.connect_request;
    req.request_id = v->request_id;
    req.peer = text(v->peer);
    req.refresh = v->refresh;
    req.check = v->check;
    msg.msg_case = NATTER__CONTROL__MSG_CONNECT_REQUEST;
    msg.connect_request = &req;
    break;
  }
  case NT_CONTROL_CONNECT_RESULT: {
    const nt_connect_result *v = &m->u.connect_result;
    res.request_id = v->request_id;
    res.code = (Natter__Code)v->code;
    res.message = text(v->message);
    msg.msg_case = NATTER__CONTROL__MSG_CONNECT_RESULT;
    msg.connect_result = &res;
    break;
  }
  case NT_CONTROL_INTRODUCTION: {
    const nt_introduction *v = &m->u.introduction;
    intro.request_id = v->request_id;
    intro.peer = text(v->name);
    intro.peer_key.data = (uint8_t *)v->key;
    intro.peer_key.len = NT_FINGERPRINT_LEN;
    intro.observed = put_addr(&s, &v->observed);
    intro.local_addrs = put_list(&s, v->local, v->nlocal, NT_MAX_LOCAL_ADDRS,
                                 &intro.n_local_addrs);
    intro.nonce.data = (uint8_t *)v->nonce;
    intro.nonce.len = NT_PUNCH_NONCE_LEN;
    intro.peer_mapping = (Natter__NatMapping)v->mapping;
    intro.peer_mapped = put_addr(&s, &v->mapped);
    if (v->portmap_method != NT_PORTMAP_NONE) {
      intro.peer_portmap = put_addr(&s, &v->portmap);
      intro.peer_portmap_method = (Natter__PortmapMethod)v->portmap_method;
    }
    intro.refresh = v->refresh;
    if (v->relay_port) {
      intro.relay_token.data = (uint8_t *)v->relay_token;
      intro.relay_token.len = NT_RELAY_TOKEN_LEN;
      intro.relay_port = v->relay_port;
      if (v->relay.len) {
        intro.relay_address = put_addr(&s, &v->relay);
      }
    }
    intro.check = v->check;
    msg.msg_case = NATTER__CONTROL__MSG_INTRODUCTION;
    msg.introduction = &intro;
    break;
  }
  case NT_CONTROL_NAT_REPORT: {
    const nt_nat_report *v = &m->u.nat_report;
    rep.mapping = (Natter__NatMapping)v->mapping;
    rep.mapped = put_addr(&s, &v->mapped);
    if (v->portmap_method != NT_PORTMAP_NONE) {
      rep.portmap = put_addr(&s, &v->portmap);
      rep.portmap_method = (Natter__PortmapMethod)v->portmap_method;
    }
    msg.msg_case = NATTER__CONTROL__MSG_NAT_REPORT;
    msg.nat_report = &rep;
    break;
  }
  case NT_CONTROL_PEER_NOTICE: {
    const nt_peer_notice *v = &m->u.peer_notice;
    notice.peer = text(v->peer);
    notice.peer_key.data = (uint8_t *)v->key;
    notice.peer_key.len = NT_FINGERPRINT_LEN;
    notice.kind = (Natter__PeerNotice__Kind)v->kind;
    msg.msg_case = NATTER__CONTROL__MSG_PEER_NOTICE;
    msg.peer_notice = &notice;
    break;
  }
  case NT_CONTROL_CHECK_REPORT: {
    const nt_check_side *v = &m->u.check_report;
    chk.nonce.data = (uint8_t *)v->nonce;
    chk.nonce.len = NT_PUNCH_NONCE_LEN;
    chk.outcome = (Natter__CheckReport__Outcome)v->outcome;
    chk.relayed = v->relayed;
    chk.mapping = (Natter__NatMapping)v->mapping;
    chk.probed = put_list(&s, v->probed, v->nprobed, NT_PUNCH_MAX_CANDIDATES,
                          &chk.n_probed);
    chk.probe_rounds = v->probe_rounds;
    chk.probes_received = v->probes_received;
    chk.replies_received = v->replies_received;
    chk.probes_from = put_addr(&s, &v->probes_from);
    chk.elapsed_ms = v->elapsed_ms;
    chk.peer = text(v->peer);
    chk.observed = put_addr(&s, &v->observed);
    msg.msg_case = NATTER__CONTROL__MSG_CHECK_REPORT;
    msg.check_report = &chk;
    break;
  }
  case NT_CONTROL_ADMISSION_QUERY: {
    const nt_admission_query *v = &m->u.admission_query;
    query.query_id = v->query_id;
    query.peer = text(v->peer);
    query.peer_key.data = (uint8_t *)v->key;
    query.peer_key.len = NT_FINGERPRINT_LEN;
    query.check = v->check;
    msg.msg_case = NATTER__CONTROL__MSG_ADMISSION_QUERY;
    msg.admission_query = &query;
    break;
  }
  case NT_CONTROL_ADMISSION_ANSWER: {
    const nt_admission_answer *v = &m->u.admission_answer;
    answer.query_id = v->query_id;
    answer.admitted = v->admitted;
    msg.msg_case = NATTER__CONTROL__MSG_ADMISSION_ANSWER;
    msg.admission_answer = &answer;
    break;
  }
  case NT_CONTROL_ADMISSION_RESET:
    msg.msg_case = NATTER__CONTROL__MSG_ADMISSION_RESET;
    msg.admission_reset = &reset;
    break;
  default:
    return 0;
  }
  return nt_wire_pack_frame(out, &msg.base);
}
