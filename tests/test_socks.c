/* Unit tests for the SOCKS5 handshake codec (src/codec/socks.c): each
 * message whole and byte by byte, the replies, every refusal, and the
 * credentials file. */
#include "codec/socks.h"
#include "codec/stream_header.h"
#include "natter.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Feeds |len| bytes in chunks of |chunk|, reading no more than the codec
 * wants each time, as the client does; collects the replies. Returns the
 * last step and how many bytes were taken in all. */
static nt_socks_step run(nt_socks *s, const uint8_t *data, size_t len,
                         size_t chunk, uint8_t *replies, size_t *nreplies,
                         size_t *taken) {
  nt_socks_step step = NT_SOCKS_MORE;
  size_t pos = 0;
  *nreplies = 0;
  while (pos < len) {
    uint8_t reply[NT_SOCKS_REPLY_MAX];
    size_t want = nt_socks_want(s), used, replylen;
    size_t n = len - pos;
    if (n > want) {
      n = want;
    }
    if (n > chunk) {
      n = chunk;
    }
    CHECK(want >= 1);
    step = nt_socks_feed(s, data + pos, n, &used, reply, &replylen);
    CHECK(used == n);
    pos += used;
    memcpy(replies + *nreplies, reply, replylen);
    *nreplies += replylen;
    if (step != NT_SOCKS_MORE) {
      break;
    }
  }
  *taken = pos;
  return step;
}

static void test_connect_forms(void) {
  static const struct {
    const char *what;
    uint8_t req[40];
    size_t len;
    const char *host;
    uint16_t port;
    int is_name;
  } cases[] = {
      {"IPv4",
       {5, 1, 0, 5, 1, 0, 1, 198, 18, 1, 10, 0, 80},
       13,
       "198.18.1.10",
       80,
       0},
      {"IPv6",
       {5, 1, 0, 5, 1, 0, 4, 0x20, 1, 0x0d, 0xb8, 0,   0,
        0, 0, 0, 0, 0, 0, 0, 0,    0, 0x10, 0x01, 0xbb},
       25,
       "2001:db8::10",
       443,
       0},
      {"name",
       {5, 1, 0, 5, 1, 0, 3, 7, 'w', 'e', 'b', '.', 'l', 'a', 'n', 0xff, 0xff},
       17,
       "web.lan",
       65535,
       1},
      {"IPv6 as a name",
       {5, 1, 0, 5, 1, 0, 3, 3, ':', ':', '1', 0, 22},
       13,
       "::1",
       22,
       0},
      {"IPv4 as a name",
       {5, 1, 0, 5, 1, 0, 3, 7, '1', '.', '2', '.', '3', '.', '4', 0, 22},
       17,
       "1.2.3.4",
       22,
       0},
      /* Several methods offered; no-auth among them. */
      {"methods",
       {5, 3, 2, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 7},
       15,
       "127.0.0.1",
       7,
       0},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    for (size_t chunk = 1; chunk <= 64; chunk += 63) {
      nt_socks s;
      uint8_t replies[64];
      size_t nreplies, taken;
      nt_socks_init(&s, NULL, NULL);
      nt_socks_step step = run(&s, cases[i].req, cases[i].len, chunk, replies,
                               &nreplies, &taken);
      if (step != NT_SOCKS_CONNECT) {
        fprintf(stderr, "%s (chunk %zu): step %d, %s\n", cases[i].what, chunk,
                step, s.error ? s.error : "");
      }
      CHECK(step == NT_SOCKS_CONNECT);
      CHECK(taken == cases[i].len);
      CHECK(nreplies == 2 && replies[0] == 5 && replies[1] == 0);
      CHECK(strcmp(s.host, cases[i].host) == 0);
      CHECK(s.port == cases[i].port);
      CHECK(s.host_is_name == cases[i].is_name);
      CHECK(nt_socks_want(&s) == 0);
      CHECK(s.total == cases[i].len);
    }
  }
}

/* Bytes after the request are never taken: they are the connection's. */
static void test_no_overread(void) {
  static const uint8_t req[] = {5,  1, 0,  5, 1,  0,   1,   198,
                                18, 1, 10, 0, 80, 'G', 'E', 'T'};
  nt_socks s;
  uint8_t reply[NT_SOCKS_REPLY_MAX];
  size_t used, replylen;
  nt_socks_init(&s, NULL, NULL);
  CHECK(nt_socks_feed(&s, req, sizeof(req), &used, reply, &replylen) ==
        NT_SOCKS_MORE);
  CHECK(used == 3 && replylen == 2);
  CHECK(nt_socks_feed(&s, req + 3, sizeof(req) - 3, &used, reply, &replylen) ==
        NT_SOCKS_CONNECT);
  CHECK(used == 10 && replylen == 0);
  /* Once done, more input is refused. */
  CHECK(nt_socks_feed(&s, req, 1, &used, reply, &replylen) == NT_SOCKS_FAIL);
}

static void test_auth(void) {
  static const uint8_t good[] = {5,   1, 2, 1, 3, 's', 'a', 'm', 2, 'p',
                                 'w', 5, 1, 0, 3, 1,   'x', 0,   1};
  nt_socks s;
  uint8_t replies[64];
  size_t nreplies, taken;

  for (size_t chunk = 1; chunk <= 64; chunk += 63) {
    nt_socks_init(&s, "sam", "pw");
    CHECK(run(&s, good, sizeof(good), chunk, replies, &nreplies, &taken) ==
          NT_SOCKS_CONNECT);
    CHECK(nreplies == 4);
    CHECK(replies[0] == 5 && replies[1] == 2); /* username/password */
    CHECK(replies[2] == 1 && replies[3] == 0); /* accepted */
    CHECK(strcmp(s.host, "x") == 0 && s.port == 1);
  }
  /* Wrong password, wrong user, a prefix of either: status 1, fail. */
  static const struct {
    uint8_t msg[16];
    size_t len;
  } wrong[] = {
      {{5, 1, 2, 1, 3, 's', 'a', 'm', 2, 'p', 'x'}, 11},
      {{5, 1, 2, 1, 3, 's', 'a', 'n', 2, 'p', 'w'}, 11},
      {{5, 1, 2, 1, 2, 's', 'a', 2, 'p', 'w'}, 10},
      {{5, 1, 2, 1, 3, 's', 'a', 'm', 1, 'p'}, 10},
      {{5, 1, 2, 1, 3, 's', 'a', 'm', 3, 'p', 'w', 'w'}, 12},
      {{5, 1, 2, 1, 0, 0}, 6},
  };
  for (size_t i = 0; i < NELEM(wrong); i++) {
    nt_socks_init(&s, "sam", "pw");
    CHECK(run(&s, wrong[i].msg, wrong[i].len, 64, replies, &nreplies, &taken) ==
          NT_SOCKS_FAIL);
    CHECK(nreplies == 4 && replies[2] == 1 && replies[3] == 1);
    CHECK_STR_CONTAINS(s.error, "wrong user name or password");
  }
  /* A client that offers no username/password: 0xff. */
  {
    static const uint8_t noauth[] = {5, 1, 0};
    nt_socks_init(&s, "sam", "pw");
    CHECK(run(&s, noauth, sizeof(noauth), 64, replies, &nreplies, &taken) ==
          NT_SOCKS_FAIL);
    CHECK(nreplies == 2 && replies[1] == 0xff);
    CHECK_STR_CONTAINS(s.error, "requires");
  }
  /* Without credentials configured, only "no authentication" will do. */
  {
    static const uint8_t onlyauth[] = {5, 1, 2};
    nt_socks_init(&s, NULL, NULL);
    CHECK(run(&s, onlyauth, sizeof(onlyauth), 64, replies, &nreplies, &taken) ==
          NT_SOCKS_FAIL);
    CHECK(nreplies == 2 && replies[1] == 0xff);
  }
  /* A wrong subnegotiation version. */
  {
    static const uint8_t badver[] = {5, 1, 2, 5, 3, 's', 'a', 'm'};
    nt_socks_init(&s, "sam", "pw");
    CHECK(run(&s, badver, sizeof(badver), 64, replies, &nreplies, &taken) ==
          NT_SOCKS_FAIL);
    CHECK(taken == 5); /* the greeting, and what the codec wanted next */
    CHECK_STR_CONTAINS(s.error, "version 1");
  }
}

static void test_refusals(void) {
  static const struct {
    uint8_t msg[24];
    size_t len;
    int rep; /* the request's reply code, or -1: none */
    const char *needle;
  } cases[] = {
      {{4, 1, 0}, 3, -1, "not SOCKS version 5"},
      {{5, 0}, 2, -1, "no method"},
      {{5, 1, 0, 4, 1, 0, 1}, 7, -1, "not SOCKS version 5"},
      {{5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80}, 13, 0x07, "BIND"},
      {{5, 1, 0, 5, 3, 0, 1, 1, 2, 3, 4, 0, 80}, 13, 0x07, "UDP ASSOCIATE"},
      {{5, 1, 0, 5, 9, 0, 1, 1, 2, 3, 4, 0, 80}, 13, 0x07, "unknown command"},
      {{5, 1, 0, 5, 1, 0, 2}, 7, 0x08, "unknown address type"},
      {{5, 1, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 0}, 13, 0x01, "port is 0"},
      {{5, 1, 0, 5, 1, 0, 3, 0, 0, 80}, 10, 0x04, "domain name"},
      {{5, 1, 0, 5, 1, 0, 3, 3, 'a', ' ', 'b', 0, 80}, 13, 0x04, "domain name"},
      {{5, 1, 0, 5, 1, 0, 3, 2, 'a', '\n', 0, 80}, 12, 0x04, "domain name"},
      {{5, 1, 0, 5, 1, 0, 3, 4, ':', ':', 'g', '1', 0, 80},
       14,
       0x04,
       "domain name"},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    nt_socks s;
    uint8_t replies[64];
    size_t nreplies, taken;
    nt_socks_init(&s, NULL, NULL);
    nt_socks_step step =
        run(&s, cases[i].msg, cases[i].len, 1, replies, &nreplies, &taken);
    if (step != NT_SOCKS_FAIL) {
      fprintf(stderr, "case %zu: step %d\n", i, step);
    }
    CHECK(step == NT_SOCKS_FAIL);
    CHECK(s.error != NULL);
    if (s.error) {
      CHECK_STR_CONTAINS(s.error, cases[i].needle);
    }
    CHECK(nt_socks_want(&s) == 0);
    if (cases[i].rep >= 0) {
      CHECK(nreplies == 2 + NT_SOCKS_REPLY_MAX);
      CHECK(replies[2] == 5 && replies[3] == cases[i].rep);
    }
  }
  /* A name of 254 bytes is one too long; 253 is fine. */
  for (size_t n = 253; n <= 255; n++) {
    uint8_t msg[300] = {5, 1, 0, 5, 1, 0, 3};
    nt_socks s;
    uint8_t replies[64];
    size_t nreplies, taken;
    msg[7] = (uint8_t)n;
    memset(msg + 8, 'a', n);
    msg[8 + n] = 0;
    msg[9 + n] = 80;
    nt_socks_init(&s, NULL, NULL);
    CHECK(run(&s, msg, 10 + n, 64, replies, &nreplies, &taken) ==
          (n <= NT_HOST_MAX ? NT_SOCKS_CONNECT : NT_SOCKS_FAIL));
  }
}

static void test_replies(void) {
  uint8_t out[NT_SOCKS_REPLY_MAX];
  static const uint8_t ok[] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  CHECK(nt_socks_reply(out, 0) == NT_SOCKS_REPLY_MAX);
  CHECK(memcmp(out, ok, sizeof(ok)) == 0);
  nt_socks_reply(out, NT_SOCKS_REP_REFUSED);
  CHECK(out[1] == 5);
  CHECK(nt_socks_reply_code(0) == 0x00);
  CHECK(nt_socks_reply_code(NATTER_ERR_DENIED) == 0x02);
  CHECK(nt_socks_reply_code(NATTER_ERR_REFUSED) == 0x05);
  CHECK(nt_socks_reply_code(NATTER_ERR_UNREACHABLE) == 0x04);
  CHECK(nt_socks_reply_code(NATTER_ERR_RESOLVE) == 0x04);
  CHECK(nt_socks_reply_code(NATTER_ERR_TIMEOUT) == 0x06);
  CHECK(nt_socks_reply_code(NATTER_ERR_CLOSED) == 0x01);
  CHECK(nt_socks_reply_code(NATTER_ERR_PEER_UNKNOWN) == 0x01);
  CHECK(strcmp(nt_socks_reply_text(5), "connection refused") == 0);
  CHECK(strcmp(nt_socks_reply_text(200), "unknown") == 0);
}

static void test_credentials(void) {
  char user[NT_SOCKS_MAX_CREDENTIAL + 1], pw[NT_SOCKS_MAX_CREDENTIAL + 1];
  char err[200];
  static const char *const good[] = {
      "sam:pw",
      "sam:pw\n",
      "# comment\n\nsam:pw\r\n\n# more\n",
      "sam:p:w with blanks",
  };
  for (size_t i = 0; i < NELEM(good); i++) {
    CHECK(nt_socks_credentials_parse(good[i], strlen(good[i]), user, pw, err,
                                     sizeof(err)) == 0);
    CHECK(strcmp(user, "sam") == 0);
    CHECK(strncmp(pw, "p", 1) == 0);
  }
  CHECK(strcmp(pw, ":w with blanks") != 0);
  static const struct {
    const char *text;
    const char *needle;
  } bad[] = {
      {"", "no USER:PASSWORD line"},
      {"# only a comment\n", "no USER:PASSWORD line"},
      {"sam\n", "expected one line USER:PASSWORD"},
      {":pw\n", "1..255 bytes"},
      {"sam:\n", "1..255 bytes"},
      {"sam:pw\nann:pw\n", "more than one"},
      {"sam:p\tw\n", "control character"},
  };
  for (size_t i = 0; i < NELEM(bad); i++) {
    err[0] = '\0';
    CHECK(nt_socks_credentials_parse(bad[i].text, strlen(bad[i].text), user, pw,
                                     err, sizeof(err)) == -1);
    CHECK_STR_CONTAINS(err, bad[i].needle);
  }
  {
    char longer[600];
    memset(longer, 'u', 256);
    memcpy(longer + 256, ":pw", 4);
    CHECK(nt_socks_credentials_parse(longer, strlen(longer), user, pw, err,
                                     sizeof(err)) == -1);
    memcpy(longer + 255, ":pw", 4);
    CHECK(nt_socks_credentials_parse(longer, strlen(longer), user, pw, err,
                                     sizeof(err)) == 0);
    CHECK(strlen(user) == 255);
  }
}

/* What the listener says reaches the SOCKS client as the right code:
 * each StreamOpenResult code through its NATTER_ERR_*. */
static void test_open_results(void) {
  static const struct {
    nt_open_code code;
    int error;
    uint8_t rep;      /* from the NATTER_ERR_* alone */
    uint8_t rep_open; /* from the code */
  } cases[] = {
      {NT_OPEN_OK, 0, 0x00, 0x00},
      {NT_OPEN_DENIED, NATTER_ERR_DENIED, 0x02, 0x02},
      {NT_OPEN_REFUSED, NATTER_ERR_REFUSED, 0x05, 0x05},
      {NT_OPEN_UNREACHABLE, NATTER_ERR_UNREACHABLE, 0x04, 0x04},
      {NT_OPEN_NET_UNREACHABLE, NATTER_ERR_UNREACHABLE, 0x04, 0x03},
      {NT_OPEN_NAME_NOT_FOUND, NATTER_ERR_RESOLVE, 0x04, 0x04},
      {NT_OPEN_TIMEOUT, NATTER_ERR_TIMEOUT, 0x06, 0x06},
      {NT_OPEN_INTERNAL, NATTER_ERR_PROTOCOL, 0x01, 0x01},
      {NT_OPEN_NOT_LISTENING, NATTER_ERR_PEER_NOT_LISTENING, 0x01, 0x01},
      {NT_OPEN_BAD_REQUEST, NATTER_ERR_PROTOCOL, 0x01, 0x01},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    uint8_t buf[NT_STREAM_HEADER_MAX];
    char msg[NT_OPEN_MAX_MESSAGE + 1];
    size_t hdrlen, bodylen;
    int error = 1;
    size_t n = nt_open_result_encode(buf, cases[i].code, "why");
    CHECK(n > 0);
    CHECK(nt_wire_frame_peek(buf, n, &hdrlen, &bodylen) == 1);
    CHECK(nt_open_result_decode(buf + hdrlen, bodylen, &error, msg,
                                sizeof(msg)) == 0);
    CHECK(error == cases[i].error);
    CHECK(strcmp(msg, "why") == 0);
    CHECK(nt_socks_reply_code(error) == cases[i].rep);
    CHECK(nt_open_result_code(buf + hdrlen, bodylen) == (int)cases[i].code);
    CHECK(nt_socks_reply_for_open(cases[i].code) == cases[i].rep_open);
  }
  /* A code newer than this version: a general failure. */
  CHECK(nt_socks_reply_for_open(99) == 0x01);
  CHECK(nt_open_result_code((const uint8_t *)"\xff", 1) == -1);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"connect_forms", test_connect_forms},
      {"no_overread", test_no_overread},
      {"auth", test_auth},
      {"refusals", test_refusals},
      {"replies", test_replies},
      {"credentials", test_credentials},
      {"open_results", test_open_results},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
