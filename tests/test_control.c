/* The control protocol's codec (codec/control.h): every message survives a
 * round trip, the bytes are those natter.proto defines, and each field out
 * of bounds is refused or read as "none", as the header promises. */
#include <arpa/inet.h>
#include <stdlib.h>

#include "codec/control.h"
#include "natter.h"
#include "natter.pb-c.h"
#include "test.h"
#include "test_addrs.h"
#include "test_control_rt.h"

/* Decodes a Control packed straight from natter.proto's types. */
static int decode_pb(nt_control *out, const Natter__Control *msg) {
  static uint8_t buf[NT_WIRE_MAX_MSG];
  size_t len = natter__control__get_packed_size(msg);
  if (len > sizeof(buf)) {
    return -100;
  }
  natter__control__pack(msg, buf);
  return nt_control_decode(out, buf, len);
}

static uint8_t key[NT_FINGERPRINT_LEN] = {1, 2, 3, 4};
/* One byte more than a nonce, so a test can claim a nonce too long. */
static uint8_t nonce[NT_PUNCH_NONCE_LEN + 1] = {9, 8, 7};
static uint8_t ip4[4] = {198, 51, 100, 7};

static Natter__Address wire_addr(uint8_t *ip, size_t iplen, uint32_t port) {
  Natter__Address a = NATTER__ADDRESS__INIT;
  a.ip.data = ip;
  a.ip.len = iplen;
  a.port = port;
  return a;
}

static void test_round_trips(void) {
  static nt_control in, out;

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_CHECK_IN;
  in.u.check_in.protocol_version = NT_CONTROL_PROTOCOL_VERSION;
  snprintf(in.u.check_in.name, sizeof(in.u.check_in.name), "alice");
  in.u.check_in.listen = 1;
  in.u.check_in.no_relay = 1;
  in.u.check_in.diagnostic = 1;
  in.u.check_in.reads_relay_address = 1;
  in.u.check_in.local[0] = addr4("192.168.1.5", 4000);
  in.u.check_in.local[1] = addr6("2001:db8::5", 4000);
  in.u.check_in.nlocal = 2;
  in.u.check_in.nlocal_sent = 2;
  snprintf(in.u.check_in.token, sizeof(in.u.check_in.token), "%s",
           "0123456789abcdef-token");
  memset(in.u.check_in.session, 0x5a, NT_SESSION_LEN);
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_CHECK_IN_RESULT;
  in.u.check_in_result.code = NT_CODE_NAME_TAKEN;
  snprintf(in.u.check_in_result.message, sizeof(in.u.check_in_result.message),
           "name is bound to another key");
  in.u.check_in_result.observed = addr4("203.0.113.9", 61000);
  in.u.check_in_result.mapping_port = 4434;
  in.u.check_in_result.closed = 1;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_CONNECT_REQUEST;
  in.u.connect_request.request_id = 77;
  snprintf(in.u.connect_request.peer, sizeof(in.u.connect_request.peer), "bob");
  in.u.connect_request.refresh = 1;
  in.u.connect_request.check = 1;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_CONNECT_RESULT;
  in.u.connect_result.request_id = 78;
  in.u.connect_result.code = NT_CODE_PEER_NOT_LISTENING;
  snprintf(in.u.connect_result.message, sizeof(in.u.connect_result.message),
           "not listening");
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_INTRODUCTION;
  nt_introduction *intro = &in.u.introduction;
  snprintf(intro->name, sizeof(intro->name), "bob");
  intro->request_id = 5;
  memcpy(intro->key, key, sizeof(key));
  memcpy(intro->nonce, nonce, NT_PUNCH_NONCE_LEN);
  intro->observed = addr4("203.0.113.10", 5000);
  intro->mapped = addr4("203.0.113.10", 5001);
  intro->mapping = NT_MAPPING_PER_DESTINATION;
  for (size_t i = 0; i < NT_MAX_LOCAL_ADDRS; i++) {
    intro->local[i] = addr4("10.0.0.1", (uint16_t)(6000 + i));
  }
  intro->nlocal = NT_MAX_LOCAL_ADDRS;
  intro->refresh = 1;
  memset(intro->relay_token, 0xab, NT_RELAY_TOKEN_LEN);
  intro->relay_port = 4435;
  intro->check = 1;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);
  /* Another broker's relay: its address travels too. */
  intro->relay = addr4("198.51.100.20", 4435);
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_NAT_REPORT;
  in.u.nat_report.mapping = NT_MAPPING_ENDPOINT_INDEPENDENT;
  in.u.nat_report.mapped = addr6("2001:db8::9", 7000);
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_PEER_NOTICE;
  snprintf(in.u.peer_notice.peer, sizeof(in.u.peer_notice.peer), "carol");
  memcpy(in.u.peer_notice.key, key, sizeof(key));
  in.u.peer_notice.kind = NT_NOTICE_RESTARTED;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_CHECK_REPORT;
  nt_check_side *side = &in.u.check_report;
  memcpy(side->nonce, nonce, NT_PUNCH_NONCE_LEN);
  side->outcome = NT_CHECK_REFUSED;
  side->relayed = 1;
  side->mapping = NT_MAPPING_PER_DESTINATION;
  for (size_t i = 0; i < NT_PUNCH_MAX_CANDIDATES; i++) {
    side->probed[i] = addr4("192.0.2.1", (uint16_t)(1000 + i));
  }
  side->nprobed = NT_PUNCH_MAX_CANDIDATES;
  side->probe_rounds = 12;
  side->probes_received = 3;
  side->replies_received = 2;
  side->probes_from = addr4("192.0.2.2", 2000);
  side->elapsed_ms = 4321;
  snprintf(side->peer, sizeof(side->peer), "dave");
  side->observed = addr4("192.0.2.3", 3000);
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  /* Counts past the limits are cut on the way out. */
  side->nprobed = NT_PUNCH_MAX_CANDIDATES + 5;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.u.check_report.nprobed == NT_PUNCH_MAX_CANDIDATES);

  memset(&in, 0, sizeof(in));
  CHECK(nt_control_encode((uint8_t[NT_CONTROL_FRAME_MAX]){0}, &in) == 0);
}

/* The bytes are natter.proto's: what protobuf-c packs from the same
 * fields. */
static void test_wire_bytes(void) {
  static nt_control in;
  static uint8_t frame[NT_CONTROL_FRAME_MAX], want[NT_WIRE_MAX_MSG];
  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_CONNECT_RESULT;
  in.u.connect_result.request_id = 9;
  in.u.connect_result.code = NT_CODE_PEER_UNKNOWN;
  snprintf(in.u.connect_result.message, sizeof(in.u.connect_result.message),
           "no such peer");
  size_t len = nt_control_encode(frame, &in);

  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__ConnectResult res = NATTER__CONNECT_RESULT__INIT;
  res.request_id = 9;
  res.code = NATTER__CODE__PEER_UNKNOWN;
  res.message = "no such peer";
  msg.msg_case = NATTER__CONTROL__MSG_CONNECT_RESULT;
  msg.connect_result = &res;
  size_t wlen = natter__control__pack(&msg, want);
  CHECK(len == wlen + 1 && frame[0] == wlen);
  CHECK(memcmp(frame + 1, want, wlen) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_NAT_REPORT;
  in.u.nat_report.mapping = NT_MAPPING_PER_DESTINATION;
  in.u.nat_report.mapped = addr4("198.51.100.7", 443);
  len = nt_control_encode(frame, &in);
  Natter__NatReport rep = NATTER__NAT_REPORT__INIT;
  Natter__Address mapped = wire_addr(ip4, 4, 443);
  rep.mapping = NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION;
  rep.mapped = &mapped;
  msg.msg_case = NATTER__CONTROL__MSG_NAT_REPORT;
  msg.nat_report = &rep;
  wlen = natter__control__pack(&msg, want);
  CHECK(len == wlen + 1 && memcmp(frame + 1, want, wlen) == 0);
}

static void test_not_a_control(void) {
  static nt_control out;
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  out.type = NT_CONTROL_CHECK_IN;
  CHECK(nt_control_decode(&out, garbage, sizeof(garbage)) ==
        NATTER_ERR_PROTOCOL);
  CHECK(out.type == NT_CONTROL_NONE);
  /* An empty Control, or one with a message of a newer protocol: no
   * error, nothing this version knows. */
  CHECK(nt_control_decode(&out, garbage, 0) == 0);
  CHECK(out.type == NT_CONTROL_NONE);
  static const uint8_t newer[] = {0xfa, 0x01, 0x00}; /* field 31, empty */
  CHECK(nt_control_decode(&out, newer, sizeof(newer)) == 0);
  CHECK(out.type == NT_CONTROL_NONE);
  static uint8_t big[NT_WIRE_MAX_MSG + 1];
  CHECK(nt_control_decode(&out, big, sizeof(big)) == NATTER_ERR_PROTOCOL);
}

static void test_check_in_bounds(void) {
  static nt_control out;
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__CheckIn in = NATTER__CHECK_IN__INIT;
  Natter__Address addrs[NT_MAX_LOCAL_ADDRS + 1], *p[NT_MAX_LOCAL_ADDRS + 1];
  uint8_t bad_ip[5] = {1, 2, 3, 4, 5};
  char long_token[NT_CONTROL_TOKEN_MAX + 2];
  msg.msg_case = NATTER__CONTROL__MSG_CHECK_IN;
  msg.check_in = &in;
  for (size_t i = 0; i <= NT_MAX_LOCAL_ADDRS; i++) {
    addrs[i] = wire_addr(ip4, 4, 4000);
    p[i] = &addrs[i];
  }
  in.protocol_version = 1;
  in.name = "alice";
  in.local_addrs = p;

  /* More local addresses than a client has: refused outright. */
  in.n_local_addrs = NT_MAX_LOCAL_ADDRS + 1;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  CHECK(out.type == NT_CONTROL_CHECK_IN && out.u.check_in.nlocal == 0);

  /* Addresses out of bounds are dropped, but counted as sent. */
  addrs[0] = wire_addr(bad_ip, 5, 4000);
  addrs[1] = wire_addr(ip4, 4, 0);
  addrs[2] = wire_addr(ip4, 4, 65536);
  in.n_local_addrs = 4;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.check_in.nlocal == 1 && out.u.check_in.nlocal_sent == 4);
  CHECK(nt_addr_port((struct sockaddr *)&out.u.check_in.local[0].ss) == 4000);

  /* A name the broker answers politely about reads as "". */
  in.name = "no spaces";
  CHECK(decode_pb(&out, &msg) == 0 && out.u.check_in.name[0] == '\0');
  in.name = "a234567890123456789012345678901234567890123456789012345678901234";
  CHECK(decode_pb(&out, &msg) == 0 && out.u.check_in.name[0] == '\0');
  in.name = "alice";

  /* Tokens: too long or not printable match nothing. */
  memset(long_token, 'x', sizeof(long_token) - 1);
  long_token[sizeof(long_token) - 1] = '\0';
  in.token = long_token;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.check_in.token_invalid && out.u.check_in.token[0] == '\0');
  in.token = "tok\x01en-0123456789";
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.check_in.token_invalid && out.u.check_in.token[0] == '\0');
  long_token[NT_CONTROL_TOKEN_MAX] = '\0';
  in.token = long_token;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(!out.u.check_in.token_invalid &&
        strlen(out.u.check_in.token) == NT_CONTROL_TOKEN_MAX);
  in.token = "";

  /* A session of another length is none. */
  uint8_t session[NT_SESSION_LEN + 1];
  memset(session, 7, sizeof(session));
  in.session.data = session;
  in.session.len = NT_SESSION_LEN + 1;
  CHECK(decode_pb(&out, &msg) == 0);
  static const uint8_t none[NT_SESSION_LEN];
  CHECK(memcmp(out.u.check_in.session, none, NT_SESSION_LEN) == 0);
}

static void test_result_bounds(void) {
  static nt_control out;
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__CheckInResult res = NATTER__CHECK_IN_RESULT__INIT;
  Natter__ConnectResult cres = NATTER__CONNECT_RESULT__INIT;
  Natter__Address observed = wire_addr(ip4, 4, 0);
  char long_text[NT_CONTROL_TEXT_MAX + 2];
  memset(long_text, 'y', sizeof(long_text) - 1);
  long_text[sizeof(long_text) - 1] = '\0';

  msg.msg_case = NATTER__CONTROL__MSG_CHECK_IN_RESULT;
  msg.check_in_result = &res;
  res.code = 99;
  res.message = "evil\nline";
  res.observed = &observed;
  res.mapping_port = 70000;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.check_in_result.code == NT_CODE_INTERNAL);
  CHECK(out.u.check_in_result.message[0] == '\0');
  CHECK(out.u.check_in_result.observed.len == 0);
  CHECK(out.u.check_in_result.mapping_port == 0);
  res.message = long_text;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.check_in_result.message[0] == '\0');
  long_text[NT_CONTROL_TEXT_MAX] = '\0';
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(strlen(out.u.check_in_result.message) == NT_CONTROL_TEXT_MAX);

  msg.msg_case = NATTER__CONTROL__MSG_CONNECT_RESULT;
  msg.connect_result = &cres;
  cres.code = 11;
  cres.message = "\x1b[2J";
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.connect_result.code == NT_CODE_INTERNAL);
  CHECK(out.u.connect_result.message[0] == '\0');

  Natter__ConnectRequest req = NATTER__CONNECT_REQUEST__INIT;
  msg.msg_case = NATTER__CONTROL__MSG_CONNECT_REQUEST;
  msg.connect_request = &req;
  req.request_id = 3;
  req.peer = "bad/name";
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.connect_request.peer[0] == '\0' &&
        out.u.connect_request.request_id == 3);

  Natter__NatReport rep = NATTER__NAT_REPORT__INIT;
  msg.msg_case = NATTER__CONTROL__MSG_NAT_REPORT;
  msg.nat_report = &rep;
  rep.mapping = 7;
  rep.mapped = &observed; /* port 0 */
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.nat_report.mapping == NT_MAPPING_UNKNOWN &&
        out.u.nat_report.mapped.len == 0);
}

static void test_introduction_bounds(void) {
  static nt_control out;
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__Introduction in = NATTER__INTRODUCTION__INIT;
  Natter__Address addrs[NT_MAX_LOCAL_ADDRS + 1], *p[NT_MAX_LOCAL_ADDRS + 1];
  uint8_t relay_token[NT_RELAY_TOKEN_LEN] = {1};
  for (size_t i = 0; i <= NT_MAX_LOCAL_ADDRS; i++) {
    addrs[i] = wire_addr(ip4, 4, 5000);
    p[i] = &addrs[i];
  }
  msg.msg_case = NATTER__CONTROL__MSG_INTRODUCTION;
  msg.introduction = &in;
  in.peer = "bob";
  in.peer_key.data = key;
  in.peer_key.len = NT_FINGERPRINT_LEN;
  in.nonce.data = nonce;
  in.nonce.len = NT_PUNCH_NONCE_LEN;
  in.local_addrs = p;
  in.n_local_addrs = NT_MAX_LOCAL_ADDRS;
  in.peer_mapping = 42;
  in.relay_token.data = relay_token;
  in.relay_token.len = NT_RELAY_TOKEN_LEN;
  in.relay_port = 4435;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.introduction.nlocal == NT_MAX_LOCAL_ADDRS);
  CHECK(out.u.introduction.mapping == NT_MAPPING_UNKNOWN);
  CHECK(out.u.introduction.relay_port == 4435);

  /* Half a relay is no relay. */
  in.relay_port = 65536;
  CHECK(decode_pb(&out, &msg) == 0 && out.u.introduction.relay_port == 0);
  in.relay_port = 4435;
  in.relay_token.len = NT_RELAY_TOKEN_LEN - 1;
  CHECK(decode_pb(&out, &msg) == 0 && out.u.introduction.relay_port == 0);
  in.relay_token.len = NT_RELAY_TOKEN_LEN;
  /* A relay's address names its port; another port, or no address that
   * is one, voids the whole relay. */
  Natter__Address relay_at = wire_addr(ip4, 4, 4435);
  in.relay_address = &relay_at;
  CHECK(decode_pb(&out, &msg) == 0 && out.u.introduction.relay_port == 4435 &&
        out.u.introduction.relay.len == sizeof(struct sockaddr_in));
  relay_at.port = 4436;
  CHECK(decode_pb(&out, &msg) == 0 && out.u.introduction.relay_port == 0 &&
        out.u.introduction.relay.len == 0 &&
        out.u.introduction.relay_token[0] == 0);
  relay_at.port = 4435;
  relay_at.ip.len = 3;
  CHECK(decode_pb(&out, &msg) == 0 && out.u.introduction.relay_port == 0 &&
        out.u.introduction.relay.len == 0);
  in.relay_address = NULL;

  /* Each of these is refused, and says it was an introduction. */
  in.n_local_addrs = NT_MAX_LOCAL_ADDRS + 1;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  CHECK(out.type == NT_CONTROL_INTRODUCTION && out.u.introduction.nlocal == 0);
  in.n_local_addrs = 1;
  in.peer = "";
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  in.peer = "bob\x1b";
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  in.peer = "bob";
  in.peer_key.len = NT_FINGERPRINT_LEN - 1;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  in.peer_key.len = NT_FINGERPRINT_LEN;
  in.nonce.len = NT_PUNCH_NONCE_LEN + 1;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  in.nonce.len = NT_PUNCH_NONCE_LEN;
  CHECK(decode_pb(&out, &msg) == 0);
}

static void test_notice_and_report_bounds(void) {
  static nt_control out;
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__PeerNotice n = NATTER__PEER_NOTICE__INIT;
  msg.msg_case = NATTER__CONTROL__MSG_PEER_NOTICE;
  msg.peer_notice = &n;
  n.peer = "carol";
  n.peer_key.data = key;
  n.peer_key.len = NT_FINGERPRINT_LEN;
  n.kind = 5;
  CHECK(decode_pb(&out, &msg) == 0 && out.u.peer_notice.kind == NT_NOTICE_NONE);
  n.kind = NATTER__PEER_NOTICE__KIND__RESTARTED;
  CHECK(decode_pb(&out, &msg) == 0 &&
        out.u.peer_notice.kind == NT_NOTICE_RESTARTED);
  n.peer_key.len = 16;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  CHECK(out.type == NT_CONTROL_PEER_NOTICE);
  n.peer_key.len = NT_FINGERPRINT_LEN;
  n.peer = "../etc";
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);

  Natter__CheckReport r = NATTER__CHECK_REPORT__INIT;
  Natter__Address addrs[NT_PUNCH_MAX_CANDIDATES + 1];
  Natter__Address *p[NT_PUNCH_MAX_CANDIDATES + 1];
  for (size_t i = 0; i <= NT_PUNCH_MAX_CANDIDATES; i++) {
    addrs[i] = wire_addr(ip4, 4, 6000);
    p[i] = &addrs[i];
  }
  msg.msg_case = NATTER__CONTROL__MSG_CHECK_REPORT;
  msg.check_report = &r;
  r.nonce.data = nonce;
  r.nonce.len = NT_PUNCH_NONCE_LEN;
  r.outcome = NATTER__CHECK_REPORT__OUTCOME__CONNECTED;
  r.probed = p;
  r.n_probed = NT_PUNCH_MAX_CANDIDATES;
  r.mapping = 9;
  r.peer = "no good";
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.check_report.nprobed == NT_PUNCH_MAX_CANDIDATES);
  CHECK(out.u.check_report.mapping == NT_MAPPING_UNKNOWN);
  CHECK(out.u.check_report.peer[0] == '\0'); /* the requester refuses it */
  r.n_probed = NT_PUNCH_MAX_CANDIDATES + 1;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  CHECK(out.type == NT_CONTROL_CHECK_REPORT);
  r.n_probed = 1;
  r.outcome = NATTER__CHECK_REPORT__OUTCOME__NONE;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  r.outcome = 4;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  r.outcome = NATTER__CHECK_REPORT__OUTCOME__FAILED;
  r.nonce.len = 0;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  r.nonce.len = NT_PUNCH_NONCE_LEN;
  CHECK(decode_pb(&out, &msg) == 0);
}

/* An admission query carries a name and a key and nothing else; an
 * answer only its id and the decision. */
static void test_admission(void) {
  static nt_control in, out;
  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_ADMISSION_QUERY;
  in.u.admission_query.query_id = 41;
  snprintf(in.u.admission_query.peer, sizeof(in.u.admission_query.peer),
           "mallory");
  memcpy(in.u.admission_query.key, key, sizeof(key));
  in.u.admission_query.check = 1;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_ADMISSION_ANSWER;
  in.u.admission_answer.query_id = 41;
  in.u.admission_answer.admitted = 1;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof(in)) == 0);
  in.u.admission_answer.admitted = 0;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.type == NT_CONTROL_ADMISSION_ANSWER &&
        out.u.admission_answer.query_id == 41 &&
        !out.u.admission_answer.admitted);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_ADMISSION_RESET;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.type == NT_CONTROL_ADMISSION_RESET);

  /* A query without an id, a name or a whole key is refused. */
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__AdmissionQuery q = NATTER__ADMISSION_QUERY__INIT;
  msg.msg_case = NATTER__CONTROL__MSG_ADMISSION_QUERY;
  msg.admission_query = &q;
  q.query_id = 7;
  q.peer = "eve";
  q.peer_key.data = key;
  q.peer_key.len = NT_FINGERPRINT_LEN;
  CHECK(decode_pb(&out, &msg) == 0);
  CHECK(out.u.admission_query.query_id == 7 && !out.u.admission_query.check);
  q.query_id = 0;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  CHECK(out.type == NT_CONTROL_ADMISSION_QUERY);
  q.query_id = 7;
  q.peer = "eve\n";
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
  q.peer = "eve";
  q.peer_key.len = NT_FINGERPRINT_LEN - 1;
  CHECK(decode_pb(&out, &msg) == NATTER_ERR_PROTOCOL);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"admission", test_admission},
      {"round_trips", test_round_trips},
      {"wire_bytes", test_wire_bytes},
      {"not_a_control", test_not_a_control},
      {"check_in_bounds", test_check_in_bounds},
      {"result_bounds", test_result_bounds},
      {"introduction_bounds", test_introduction_bounds},
      {"notice_and_report_bounds", test_notice_and_report_bounds},
      {NULL, NULL}};
  return nt_test_run(cases);
}
