/* BrokerNote (src/codec/xnote.c): the notes between brokers round-trip,
 * and a note that breaks a bound is refused whole. With an argument, writes
 * one note of each kind there (the fuzz target's seed corpus,
 * tests/fuzz/corpus/xnote). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "codec/xnote.h"
#include "natter.h"
#include "test.h"

static const char ID[] =
    "6639e0c1fb2dcd7d15339e96143e2a354a86ac5f9b0348c436095ce7080fe166";

static nt_xnote sample(nt_xnote_kind kind) {
  nt_xnote n;
  memset(&n, 0, sizeof(n));
  n.kind = kind;
  n.xid = 0x1234567890ull;
  snprintf(n.from, sizeof(n.from), "%s", ID);
  switch (kind) {
  case NT_XNOTE_ASK:
  case NT_XNOTE_NOTICE:
  case NT_XNOTE_REFRESH:
  case NT_XNOTE_REFRESHED:
    snprintf(n.peer, sizeof(n.peer), "bob");
    n.check = kind == NT_XNOTE_ASK;
    n.relay = kind == NT_XNOTE_ASK;
    /* fall through */
  case NT_XNOTE_ADMITTED: {
    snprintf(n.intro.name, sizeof(n.intro.name), "alice");
    memset(n.intro.key, 0xab, sizeof(n.intro.key));
    memset(n.intro.nonce, 7, sizeof(n.intro.nonce));
    struct sockaddr_in *sin = (struct sockaddr_in *)&n.intro.observed.ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(4242);
    sin->sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
    n.intro.observed.len = sizeof(*sin);
    n.intro.local[0] = n.intro.observed;
    n.intro.nlocal = 1;
    n.intro.mapping = 1;
    if (kind == NT_XNOTE_ADMITTED) {
      /* The requester's channel at the listener's broker's relay. */
      memset(n.intro.relay_token, 0x5c, NT_RELAY_TOKEN_LEN);
      n.intro.relay_port = 4435;
      n.intro.relay = n.intro.observed;
      nt_addr_set_port((struct sockaddr *)&n.intro.relay.ss, 4435);
    }
    break;
  }
  case NT_XNOTE_REFUSED:
    n.code = NT_CODE_DENIED;
    snprintf(n.message, sizeof(n.message), "bob's peer rules do not admit you");
    break;
  case NT_XNOTE_REPORT:
    memset(n.report.nonce, 7, sizeof(n.report.nonce));
    n.report.outcome = NT_CHECK_CONNECTED;
    n.report.probe_rounds = 2;
    snprintf(n.report.peer, sizeof(n.report.peer), "bob");
    break;
  }
  return n;
}

static void test_round_trip(void) {
  for (int k = NT_XNOTE_ASK; k <= NT_XNOTE_REFRESHED; k++) {
    nt_xnote n = sample((nt_xnote_kind)k), back;
    char text[NT_XNOTE_TEXT_MAX + 1], again[NT_XNOTE_TEXT_MAX + 1];
    size_t len = nt_xnote_encode(text, &n);
    CHECK(len > 0 && len == strlen(text) && len < 8000);
    CHECK(nt_xnote_decode(&back, text, len) == 0);
    CHECK(back.kind == n.kind && back.xid == n.xid);
    CHECK(strcmp(back.from, ID) == 0 && strcmp(back.peer, n.peer) == 0);
    CHECK(strcmp(back.message, n.message) == 0 && back.code == n.code);
    CHECK(strcmp(back.intro.name, n.intro.name) == 0);
    CHECK(memcmp(back.intro.key, n.intro.key, NT_FINGERPRINT_LEN) == 0);
    CHECK(back.intro.nlocal == n.intro.nlocal);
    CHECK(back.relay == n.relay && back.check == n.check);
    CHECK(back.intro.relay_port == n.intro.relay_port &&
          back.intro.relay.len == n.intro.relay.len &&
          memcmp(back.intro.relay_token, n.intro.relay_token,
                 NT_RELAY_TOKEN_LEN) == 0);
    CHECK(strcmp(back.report.peer, n.report.peer) == 0);
    CHECK(nt_xnote_encode(again, &back) == len && strcmp(again, text) == 0);
  }
}

static void test_refuses(void) {
  nt_xnote n = sample(NT_XNOTE_ASK), back;
  char text[NT_XNOTE_TEXT_MAX + 1];
  size_t len = nt_xnote_encode(text, &n);

  CHECK(nt_xnote_decode(&back, text, len - 1) == NATTER_ERR_PROTOCOL);
  text[4] = 'G';
  CHECK(nt_xnote_decode(&back, text, len) == NATTER_ERR_PROTOCOL);
  CHECK(nt_xnote_decode(&back, "", 0) == NATTER_ERR_PROTOCOL);
  CHECK(nt_xnote_decode(&back, "zz", 2) == NATTER_ERR_PROTOCOL);
  /* What the encoder will not write. */
  n.xid = 0;
  CHECK(nt_xnote_encode(text, &n) == 0);
  n = sample(NT_XNOTE_ASK);
  snprintf(n.from, sizeof(n.from), "NOT-HEX");
  CHECK(nt_xnote_encode(text, &n) == 0);
  /* An ASK for an invalid name, a refusal that says OK, a line break in
   * its text: encoded (the encoder trusts its caller), refused on
   * decoding. */
  n = sample(NT_XNOTE_ASK);
  snprintf(n.peer, sizeof(n.peer), "-bad name");
  len = nt_xnote_encode(text, &n);
  CHECK(len > 0 && nt_xnote_decode(&back, text, len) == NATTER_ERR_PROTOCOL);
  n = sample(NT_XNOTE_REFUSED);
  n.code = NT_CODE_OK;
  len = nt_xnote_encode(text, &n);
  CHECK(len > 0 && nt_xnote_decode(&back, text, len) == NATTER_ERR_PROTOCOL);
  n = sample(NT_XNOTE_REFUSED);
  snprintf(n.message, sizeof(n.message), "two\nlines");
  len = nt_xnote_encode(text, &n);
  CHECK(len > 0 && nt_xnote_decode(&back, text, len) == NATTER_ERR_PROTOCOL);
  /* Too long for a NOTIFY. */
  static char big[NT_XNOTE_TEXT_MAX + 3];
  memset(big, 'a', sizeof(big) - 1);
  CHECK(nt_xnote_decode(&back, big, sizeof(big) - 1) == NATTER_ERR_PROTOCOL);
}

static int write_corpus(const char *dir) {
  static const char *names[] = {"",       "ask",    "admitted", "refused",
                                "report", "notice", "refresh",  "refreshed"};
  for (int k = NT_XNOTE_ASK; k <= NT_XNOTE_REFRESHED; k++) {
    nt_xnote n = sample((nt_xnote_kind)k);
    char text[NT_XNOTE_TEXT_MAX + 1], path[512];
    size_t len = nt_xnote_encode(text, &n);
    snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
    FILE *f = fopen(path, "w");
    /* The fuzz target's first byte: even, the rest is the text. */
    if (!f || fputc('0', f) == EOF || fwrite(text, 1, len, f) != len ||
        fclose(f) != 0) {
      perror(path);
      return 1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  static const nt_test_case cases[] = {
      {"round_trip", test_round_trip}, {"refuses", test_refuses}, {NULL, NULL}};
  if (argc == 2) {
    return write_corpus(argv[1]);
  }
  return nt_test_run(cases);
}
