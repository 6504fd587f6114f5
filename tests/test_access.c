/* Unit tests for access rules (src/trust/access.c): which rules parse, with
 * what error, and what a rule set decides for peers, targets and commands. */
#include "trust/access.h"
#include "natter.h"
#include "test.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- parsing ---- */

static void test_target_rules_valid(void) {
  static const char *const good[] = {
      "*",
      "localhost",
      "nas.lan",
      "NAS.lan:22",
      "host_1-a",
      "10.0.0.1",
      "10.0.0.1:22",
      "10.0.0.1:*",
      "198.18.1.20:65535",
      "host:1",
      "[::1]",
      "[::1]:22",
      "[::1]:*",
      "[2001:db8::17]:443",
      "[::ffff:192.0.2.1]:80",
      "::1",
      "2001:db8::17",
      "::ffff:192.0.2.1",
      "fe80::1:2:3:4",
      /* Ranges. */
      "198.18.1.0/24",
      "198.18.1.0/24:80",
      "198.18.1.0/24:*",
      "0.0.0.0/0",
      "198.18.1.7/32:22",
      "[2001:db8::/32]",
      "[2001:db8::/32]:443",
      "[2001:db8::/32]:*",
      "2001:db8::/32",
      "[::/0]",
      "[::1/128]:22",
      "alice=198.18.0.0/15:8080",
  };
  for (size_t i = 0; i < NELEM(good); i++) {
    char err[300] = "unset";
    int rv = natter_allow_rule_check(good[i], err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "rule \"%s\" refused: %s\n", good[i], err);
    }
    CHECK(rv == 0);
  }
}

static void test_target_rules_invalid(void) {
  static const struct {
    const char *rule;
    const char *needle;
  } bad[] = {
      {"", "the rule is empty"},
      {":22", "the host is empty"},
      {":*", "the host is empty"},
      {"host:", "the port is missing"},
      {"host:0", "the port is not a number 1..65535 or *"},
      {"host:022", "the port is not a number 1..65535 or *"},
      {"host:+22", "the port is not a number 1..65535 or *"},
      {"host:65536", "the port is not a number 1..65535 or *"},
      {"host:99999", "the port is not a number 1..65535 or *"},
      {"host:ssh", "the port is not a number 1..65535 or *"},
      {"host:22 ", "the port is not a number 1..65535 or *"},
      {"bad host", "the host may hold only A-Z a-z 0-9 . _ -"},
      {"host/24", "what is before '/' is not an IPv4 address"},
      {"198.18.1.0/", "the prefix length after '/' is not a number 0..32"},
      {"198.18.1.0/33", "the prefix length after '/' is not a number 0..32"},
      {"198.18.1.0/024", "the prefix length after '/' is not a number"},
      {"198.18.1.0/2x", "the prefix length after '/' is not a number"},
      {"198.18.1.0/+8", "the prefix length after '/' is not a number"},
      {"198.18.1.0/1000", "the prefix length after '/' is not a number"},
      {"198.18.1.5/24", "bits set after the first 24"},
      {"198.18.1.0/24:", "the port is missing"},
      {"198.18.1.0/24:0", "the port is not a number"},
      {"/24", "no address before '/'"},
      {"198.18.1.0/24/8", "the prefix length after '/' is not a number"},
      {"[2001:db8::/129]",
       "the prefix length after '/' is not a number 0..128"},
      {"[2001:db8::1/32]", "bits set after the first 32"},
      {"[198.18.1.0/24]", "not an IPv6 address"},
      {"[2001:db8::/32]443", "text after ']'"},
      {"2001:db8::/32:443", "the prefix length after '/' is not a number"},
      {"h\xc3\xa9te", "the host may hold only"},
      {"*:22", "'*' stands alone"},
      {"*.lan", "the host may hold only"},
      {"x:y:z", "not an IPv6 address"},
      {"::g", "not an IPv6 address"},
      {"::1:22:", "not an IPv6 address"},
      {"[::1", "needs both brackets"},
      {"[::1]22", "text after ']'"},
      {"[::1]:", "the port is missing"},
      {"[::1]:0", "the port is not a number 1..65535 or *"},
      {"[]", "not an IPv6 address"},
      {"[nas.lan]:22", "not an IPv6 address"},
      {"[10.0.0.1]", "not an IPv6 address"},
  };
  for (size_t i = 0; i < NELEM(bad); i++) {
    char err[300] = "";
    int rv = natter_allow_rule_check(bad[i].rule, err, sizeof(err));
    if (rv == 0) {
      fprintf(stderr, "rule \"%s\" accepted\n", bad[i].rule);
    }
    CHECK(rv == NATTER_ERR_INVALID);
    CHECK(strchr(err, '\n') == NULL);
    CHECK_STR_CONTAINS(err, bad[i].needle);
    /* Every reason ends by showing the forms a rule may take. */
    CHECK_STR_CONTAINS(err, "expected HOST, HOST:PORT, HOST:*, [IPv6], "
                            "[IPv6]:PORT or *");
  }
  {
    /* Longer than a DNS name may be. */
    char longhost[300];
    char err[300] = "";
    memset(longhost, 'a', 254);
    longhost[254] = '\0';
    CHECK(natter_allow_rule_check(longhost, err, sizeof(err)) != 0);
    CHECK_STR_CONTAINS(err, "longer than 253");
    longhost[253] = '\0';
    CHECK(natter_allow_rule_check(longhost, NULL, 0) == 0);
  }
  /* NULL text and a NULL or tiny error buffer are fine. */
  CHECK(natter_allow_rule_check(NULL, NULL, 0) == NATTER_ERR_INVALID);
  {
    char tiny[4] = "xxx";
    CHECK(natter_allow_rule_check("a b", tiny, sizeof(tiny)) != 0);
    CHECK(strlen(tiny) == 3);
  }
}

static void test_command_rules(void) {
  static const char *const good[] = {
      "*",
      "rsync",
      "/usr/bin/rsync",
      "/opt/my tools/run",
      "'/opt/my tools/run' -x",
      "#hash",
      "/opt/a#b",
      "./x",
      "-dash",
      "rsync --server --sender -vlogDtpre.iLsfxC . /srv/backup",
      "rsync --server *",
      "rsync *",
      "sh -c 'cat > backup.tar'",
      "echo '*'",
      "echo \"it's\"",
      "alice=cat",
      "alice@00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff="
      "rsync --server *",
      "@00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:"
      "77:88:99:aa:bb:cc:dd:ee:ff=*",
      "*=cat",
      "rsync --rsh=ssh x",
  };
  static const struct {
    const char *rule;
    const char *needle;
  } bad[] = {
      {"", "the program is empty"},
      {"rsync*", "'*' stands alone"},
      {"**", "'*' stands alone"},
      {"/bin/*", "'*' stands alone"},
      {"* rsync", "'*' stands alone"},
      {"rsync * x", "'*' stands alone as the last word"},
      {"rsync -e*", "'*' stands alone"},
      {"rsync 'x", "a quote (') is not closed"},
      {"'' x", "the program (first word) is empty"},
      {"=cat", "bad peer before '=': the peer is empty"},
      {"bad!name=cat", "bad peer before '=': the peer name may hold only"},
      {"alice@1234=cat", "bad peer before '=': the key after '@'"},
      {"alice=", "the program is empty"},
      {"ls\n", "control character"},
      {"a\tb", "control character"},
      {"\x7f", "control character"},
      {" rsync", "starts or ends with a blank"},
      {"rsync ", "starts or ends with a blank"},
  };
  for (size_t i = 0; i < NELEM(good); i++) {
    char err[300] = "unset";
    int rv = natter_allow_command_check(good[i], err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "command rule \"%s\" refused: %s\n", good[i], err);
    }
    CHECK(rv == 0);
  }
  for (size_t i = 0; i < NELEM(bad); i++) {
    char err[300] = "";
    int rv = natter_allow_command_check(bad[i].rule, err, sizeof(err));
    if (rv == 0) {
      fprintf(stderr, "command rule \"%s\" accepted\n", bad[i].rule);
    }
    CHECK(rv == NATTER_ERR_INVALID);
    CHECK(strchr(err, '\n') == NULL);
    CHECK_STR_CONTAINS(err, bad[i].needle);
  }
  CHECK(natter_allow_command_check(NULL, NULL, 0) == NATTER_ERR_INVALID);
  {
    /* More words than a rule may hold. */
    char many[NT_ACCESS_MAX_WORDS * 2 + 8] = "p";
    char err[300] = "";
    for (int i = 0; i < NT_ACCESS_MAX_WORDS; i++) {
      strcat(many, " a");
    }
    CHECK(natter_allow_command_check(many, err, sizeof(err)) != 0);
    CHECK_STR_CONTAINS(err, "more than 64 words");
    many[strlen(many) - 2] = '\0';
    CHECK(natter_allow_command_check(many, NULL, 0) == 0);
  }
}

#define FP_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define FP_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static void test_peer_rules(void) {
  static const char *const good[] = {
      "alice",
      "a.b_c-D9",
      "*",
      "!mallory",
      "!*",
      "alice@" FP_A,
      "@" FP_A,
      "!@" FP_B,
      "alice@00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:"
      "55:66:77:88:99:aa:bb:cc:dd:ee:ff",
  };
  static const struct {
    const char *rule;
    const char *needle;
  } bad[] = {
      {"", "the peer is empty"},
      {"!", "the peer is empty"},
      {"a b", "the peer name may hold only"},
      {"alice=", "the peer name may hold only"},
      {"*@" FP_A, "the peer name may hold only"},
      {"alice@", "the key after '@' is not a fingerprint"},
      {"alice@" FP_A "00", "the key after '@'"},
      {"alice@xyz", "the key after '@'"},
      {"!!alice", "the peer name may hold only"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
       "the peer name may hold only"},
  };
  for (size_t i = 0; i < NELEM(good); i++) {
    char err[300] = "unset";
    int rv = natter_allow_peer_check(good[i], err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "peer rule \"%s\" refused: %s\n", good[i], err);
    }
    CHECK(rv == 0);
  }
  for (size_t i = 0; i < NELEM(bad); i++) {
    char err[300] = "";
    int rv = natter_allow_peer_check(bad[i].rule, err, sizeof(err));
    if (rv == 0) {
      fprintf(stderr, "peer rule \"%s\" accepted\n", bad[i].rule);
    }
    CHECK(rv == NATTER_ERR_INVALID);
    CHECK(strchr(err, '\n') == NULL);
    CHECK_STR_CONTAINS(err, bad[i].needle);
    CHECK_STR_CONTAINS(err, "expected NAME, NAME@FINGERPRINT, @FINGERPRINT "
                            "or *");
  }
  CHECK(natter_allow_peer_check(NULL, NULL, 0) == NATTER_ERR_INVALID);
}

static void key_of(const char *hex, uint8_t key[32]) {
  for (int i = 0; i < 32; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    key[i] = (uint8_t)v;
  }
}

static void test_peer_decisions(void) {
  static const struct {
    const char *rules[4];
    const char *name;
    const char *key; /* hex, or NULL */
    int closed;
    int admitted;
  } cases[] = {
      /* No peer rules: only a closed broker's peers get in. */
      {{NULL}, "alice", FP_A, 0, 0},
      {{NULL}, "alice", FP_A, 1, 1},
      /* A name admits that name whatever its key; nothing else. */
      {{"alice"}, "alice", FP_A, 0, 1},
      {{"alice"}, "alice", FP_B, 0, 1},
      {{"alice"}, "Alice", FP_A, 0, 0},
      {{"alice"}, "bob", FP_A, 0, 0},
      {{"alice"}, "mallory", FP_A, 1, 0}, /* rules count, not the broker */
      /* Name and key: both must match. */
      {{"alice@" FP_A}, "alice", FP_A, 0, 1},
      {{"alice@" FP_A}, "alice", FP_B, 0, 0},
      {{"alice@" FP_A}, "alice", NULL, 0, 0},
      {{"alice@" FP_A}, "bob", FP_A, 0, 0},
      /* A key under any name. */
      {{"@" FP_B}, "whoever", FP_B, 0, 1},
      {{"@" FP_B}, "whoever", FP_A, 0, 0},
      /* Anyone. */
      {{"*"}, "stranger", FP_B, 0, 1},
      {{"*"}, "stranger", NULL, 0, 1},
      /* First match wins: a refusal before '*' keeps one peer out... */
      {{"!mallory", "*"}, "mallory", FP_A, 0, 0},
      {{"!mallory", "*"}, "alice", FP_A, 0, 1},
      /* ... and after it comes too late. */
      {{"*", "!mallory"}, "mallory", FP_A, 0, 1},
      {{"!@" FP_B, "alice"}, "alice", FP_B, 0, 0},
      {{"!@" FP_B, "alice"}, "alice", FP_A, 0, 1},
      {{"!*"}, "alice", FP_A, 1, 0},
      {{"bob", "alice@" FP_A}, "alice", FP_A, 0, 1},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    nt_access *acc = nt_access_new();
    uint8_t key[32];
    char err[300];
    CHECK(acc != NULL);
    for (size_t j = 0; cases[i].rules[j]; j++) {
      CHECK(nt_access_add_peer_rule(acc, cases[i].rules[j], err, sizeof(err)) ==
            0);
    }
    if (cases[i].key) {
      key_of(cases[i].key, key);
    }
    nt_access_peer peer = {cases[i].name, cases[i].key ? key : NULL};
    int got = nt_access_peer_admitted(acc, &peer, cases[i].closed);
    if (got != cases[i].admitted) {
      fprintf(stderr, "case %zu: %s under \"%s\"...: got %d, want %d\n", i,
              cases[i].name, cases[i].rules[0] ? cases[i].rules[0] : "(none)",
              got, cases[i].admitted);
    }
    CHECK(got == cases[i].admitted);
    CHECK(nt_access_has_peer_rules(acc) == (cases[i].rules[0] != NULL));
    nt_access_free(acc);
  }
  CHECK(nt_access_peer_admitted(NULL, NULL, 1) == 1);
  CHECK(nt_access_peer_admitted(NULL, NULL, 0) == 0);
}

/* Target and command rules scoped to peers hold for those peers only. */
static void test_scoped_decisions(void) {
  static const struct {
    const char *rule;
    int is_command;
    const char *name;
    const char *key;
    int allowed;
  } cases[] = {
      {"alice=nas.lan:22", 0, "alice", FP_A, 1},
      {"alice=nas.lan:22", 0, "bob", FP_A, 0},
      {"alice=nas.lan:22", 0, NULL, NULL, 0},
      {"alice@" FP_A "=nas.lan:22", 0, "alice", FP_A, 1},
      {"alice@" FP_A "=nas.lan:22", 0, "alice", FP_B, 0},
      {"@" FP_B "=*", 0, "anyone", FP_B, 1},
      {"@" FP_B "=*", 0, "anyone", FP_A, 0},
      {"*=nas.lan:22", 0, NULL, NULL, 1},
      {"nas.lan:22", 0, "bob", FP_B, 1},
      {"alice=backup --now", 1, "alice", FP_A, 1},
      {"alice=backup --now", 1, "bob", FP_A, 0},
      {"backup --now", 1, "bob", FP_A, 1},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    nt_access *acc = nt_access_new();
    uint8_t key[32];
    char err[300];
    int got;
    CHECK(acc != NULL);
    if (cases[i].key) {
      key_of(cases[i].key, key);
    }
    nt_access_peer peer = {cases[i].name, cases[i].key ? key : NULL};
    const nt_access_peer *who = cases[i].name ? &peer : NULL;
    if (cases[i].is_command) {
      const char *argv[] = {"backup", "--now"};
      CHECK(nt_access_add_command_rule(acc, cases[i].rule, err, sizeof(err)) ==
            0);
      got = nt_access_command_allowed(acc, who, argv, 2);
    } else {
      CHECK(nt_access_add_target_rule(acc, cases[i].rule, err, sizeof(err)) ==
            0);
      got = nt_access_target_allowed(acc, who, "nas.lan", 22);
    }
    if (got != cases[i].allowed) {
      fprintf(stderr, "case %zu: \"%s\" for %s: got %d, want %d\n", i,
              cases[i].rule, cases[i].name ? cases[i].name : "(nobody)", got,
              cases[i].allowed);
    }
    CHECK(got == cases[i].allowed);
    nt_access_free(acc);
  }
  {
    char err[300] = "";
    CHECK(natter_allow_rule_check("=nas.lan", err, sizeof(err)) != 0);
    CHECK_STR_CONTAINS(err, "bad peer before '='");
    CHECK(natter_allow_rule_check("alice=nas.lan:0", err, sizeof(err)) != 0);
    CHECK_STR_CONTAINS(err, "the port is not a number");
  }
}

/* The add functions refuse what the checks refuse and keep the set as it
 * was. */
static void test_add_refuses(void) {
  nt_access *acc = nt_access_new();
  char err[300] = "";
  CHECK(acc != NULL);
  CHECK(!nt_access_has_target_rules(acc) && !nt_access_has_command_rules(acc));
  CHECK(nt_access_add_target_rule(acc, "x:y:z", err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "not an IPv6 address");
  CHECK(nt_access_add_command_rule(acc, "", err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(!nt_access_has_target_rules(acc) && !nt_access_has_command_rules(acc));
  CHECK(nt_access_add_target_rule(acc, "h:1", NULL, 0) == 0);
  CHECK(nt_access_has_target_rules(acc) && !nt_access_has_command_rules(acc));
  CHECK(nt_access_add_command_rule(acc, "cat", NULL, 0) == 0);
  CHECK(nt_access_has_command_rules(acc));
  nt_access_free(acc);
  nt_access_free(NULL);
  CHECK(!nt_access_has_target_rules(NULL));
}

/* ---- decisions ---- */

/* Builds a rule set from |rules| (NULL-terminated); every rule must parse. */
static nt_access *make(const char *const *targets,
                       const char *const *commands) {
  nt_access *acc = nt_access_new();
  char err[300];
  CHECK(acc != NULL);
  for (size_t i = 0; targets && targets[i]; i++) {
    int rv = nt_access_add_target_rule(acc, targets[i], err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "rule \"%s\": %s\n", targets[i], err);
    }
    CHECK(rv == 0);
  }
  for (size_t i = 0; commands && commands[i]; i++) {
    int rv = nt_access_add_command_rule(acc, commands[i], err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "command rule \"%s\": %s\n", commands[i], err);
    }
    CHECK(rv == 0);
  }
  return acc;
}

static void test_target_decisions(void) {
  static const struct {
    const char *rules[4];
    const char *host;
    uint16_t port;
    int allowed;
  } cases[] = {
      /* No rules: nothing (the caller adds loopback). */
      {{NULL}, "127.0.0.1", 22, 0},
      {{NULL}, "localhost", 22, 0},
      /* "*" allows every target. */
      {{"*"}, "example.net", 1, 1},
      {{"*"}, "2001:db8::1", 65535, 1},
      /* HOST: every port; names ignore case, nothing else is fuzzy. */
      {{"nas.lan"}, "nas.lan", 22, 1},
      {{"nas.lan"}, "NAS.LAN", 443, 1},
      {{"NAS.lan"}, "nas.lan", 443, 1},
      {{"nas.lan"}, "nas.lan.", 22, 0},
      {{"nas.lan"}, "nas", 22, 0},
      {{"nas"}, "nas.lan", 22, 0},
      {{"nas.lan"}, "other.lan", 22, 0},
      /* HOST:PORT: that port only; HOST:* every port. */
      {{"10.0.0.1:22"}, "10.0.0.1", 22, 1},
      {{"10.0.0.1:22"}, "10.0.0.1", 23, 0},
      {{"10.0.0.1:22"}, "10.0.0.2", 22, 0},
      {{"10.0.0.1:22"}, "10.0.0.10", 22, 0},
      {{"10.0.0.1:*"}, "10.0.0.1", 9, 1},
      {{"10.0.0.1:*"}, "10.0.0.2", 9, 0},
      /* No DNS: a name rule does not match the address it resolves to. */
      {{"localhost:22"}, "127.0.0.1", 22, 0},
      /* IPv6, with brackets, bare, and by value. */
      {{"[::1]"}, "::1", 22, 1},
      {{"::1"}, "::1", 22, 1},
      {{"::1"}, "0:0:0:0:0:0:0:1", 22, 1},
      {{"[2001:DB8::17]:443"}, "2001:db8::17", 443, 1},
      {{"[2001:db8::17]:443"}, "2001:db8:0::17", 443, 1},
      {{"[2001:db8::17]:443"}, "2001:db8::17", 80, 0},
      {{"[2001:db8::17]:*"}, "2001:db8::17", 80, 1},
      {{"[::1]:22"}, "::2", 22, 0},
      {{"[::1]"}, "[::1]", 22, 0},
      {{"[::ffff:192.0.2.1]:80"}, "::ffff:192.0.2.1", 80, 1},
      /* An IPv6 rule is not the IPv4 address mapped into it, nor a name. */
      {{"[::ffff:192.0.2.1]"}, "192.0.2.1", 80, 0},
      {{"::1"}, "localhost", 22, 0},
      /* A bare IPv6 rule with what looks like a port is all address. */
      {{"::1:22"}, "::1", 22, 0},
      {{"::1:22"}, "::1:22", 7, 1},
      /* Several rules: any one is enough. */
      {{"a:1", "b:2", "[::1]:3"}, "b", 2, 1},
      {{"a:1", "b:2", "[::1]:3"}, "b", 1, 0},
      {{"a:1", "b:2", "[::1]:3"}, "::1", 3, 1},
      {{"a:1", "b:2", "[::1]:3"}, "::1", 1, 0},
      {{"a:1", "b", "*"}, "zzz", 5, 1},
      /* Ranges match addresses given as targets, by value. */
      {{"198.18.1.0/24"}, "198.18.1.10", 22, 1},
      {{"198.18.1.0/24"}, "198.18.1.255", 1, 1},
      {{"198.18.1.0/24"}, "198.18.2.10", 22, 0},
      {{"198.18.1.0/24:80"}, "198.18.1.10", 80, 1},
      {{"198.18.1.0/24:80"}, "198.18.1.10", 81, 0},
      {{"198.18.0.0/15"}, "198.19.255.255", 1, 1},
      {{"198.18.0.0/15"}, "198.20.0.0", 1, 0},
      {{"198.18.1.7/32"}, "198.18.1.7", 1, 1},
      {{"198.18.1.7/32"}, "198.18.1.6", 1, 0},
      {{"0.0.0.0/0"}, "203.0.113.9", 1, 1},
      {{"0.0.0.0/0"}, "2001:db8::1", 1, 0},
      {{"198.18.1.0/25"}, "198.18.1.127", 1, 1},
      {{"198.18.1.0/25"}, "198.18.1.128", 1, 0},
      {{"[2001:db8::/32]:443"}, "2001:db8:ffff::1", 443, 1},
      {{"[2001:db8::/32]:443"}, "2001:db9::1", 443, 0},
      {{"[2001:db8::/32]:443"}, "2001:db8::1", 80, 0},
      {{"2001:db8::/33"}, "2001:db8:7fff::1", 1, 1},
      {{"2001:db8::/33"}, "2001:db8:8000::1", 1, 0},
      {{"[::/0]"}, "::1", 1, 1},
      {{"[::/0]"}, "198.18.1.1", 1, 0},
      /* An IPv4-mapped IPv6 target is its IPv4 address. */
      {{"198.18.1.0/24"}, "::ffff:198.18.1.10", 1, 1},
      {{"[::ffff:0:0/96]"}, "::ffff:198.18.1.10", 1, 0},
      /* Without the address it resolves to, a name is in no range. */
      {{"198.18.1.0/24"}, "nas.lan", 22, 0},
      {{"127.0.0.0/8"}, "localhost", 22, 0},
      /* Odd target hosts match nothing but "*". */
      {{"a"}, "", 22, 0},
      {{"a:*"}, "a\n", 22, 0},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    nt_access *acc = make(cases[i].rules, NULL);
    int got = nt_access_target_allowed(acc, NULL, cases[i].host, cases[i].port);
    if (got != cases[i].allowed) {
      fprintf(stderr, "case %zu: %s:%u under \"%s\"...: got %d, want %d\n", i,
              cases[i].host, cases[i].port,
              cases[i].rules[0] ? cases[i].rules[0] : "(none)", got,
              cases[i].allowed);
    }
    CHECK(got == cases[i].allowed);
    /* Command rules are another list: targets never allow commands. */
    {
      const char *argv[] = {"cat"};
      CHECK(!nt_access_command_allowed(acc, NULL, argv, 1));
    }
    nt_access_free(acc);
  }
  CHECK(!nt_access_target_allowed(NULL, NULL, "a", 1));
}

/* A range rule meets the address a connection goes to: for a name, what
 * it resolved to on the listener, so DNS cannot steer it elsewhere; name
 * and address rules keep looking at the target as given. */
static void test_target_resolved(void) {
  const char *rules[] = {"198.18.1.0/24:80", "[2001:db8::/32]", "nas.lan:22",
                         "198.18.3.3", NULL};
  nt_access *acc = make(rules, NULL);
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;

  memset(&in4, 0, sizeof(in4));
  memset(&in6, 0, sizeof(in6));
  in4.sin_family = AF_INET;
  in6.sin6_family = AF_INET6;

  inet_pton(AF_INET, "198.18.1.10", &in4.sin_addr);
  CHECK(nt_access_target_allowed_at(acc, NULL, "web.lan", 80,
                                    (struct sockaddr *)&in4));
  CHECK(!nt_access_target_allowed_at(acc, NULL, "web.lan", 81,
                                     (struct sockaddr *)&in4));
  /* The connected address decides, not an address the target names. */
  CHECK(!nt_access_target_allowed_at(
      acc, NULL, "198.18.1.10", 80,
      (struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET}));
  inet_pton(AF_INET, "198.18.2.10", &in4.sin_addr);
  CHECK(!nt_access_target_allowed_at(acc, NULL, "web.lan", 80,
                                     (struct sockaddr *)&in4));
  /* A name rule matches by name wherever the name points. */
  CHECK(nt_access_target_allowed_at(acc, NULL, "nas.lan", 22,
                                    (struct sockaddr *)&in4));
  /* An address rule is no range: a name resolving to it does not match. */
  inet_pton(AF_INET, "198.18.3.3", &in4.sin_addr);
  CHECK(!nt_access_target_allowed_at(acc, NULL, "three.lan", 80,
                                     (struct sockaddr *)&in4));
  CHECK(nt_access_target_allowed_at(acc, NULL, "198.18.3.3", 80,
                                    (struct sockaddr *)&in4));
  inet_pton(AF_INET6, "2001:db8:5::1", &in6.sin6_addr);
  CHECK(nt_access_target_allowed_at(acc, NULL, "v6.lan", 9,
                                    (struct sockaddr *)&in6));
  inet_pton(AF_INET6, "::ffff:198.18.1.10", &in6.sin6_addr);
  CHECK(nt_access_target_allowed_at(acc, NULL, "mapped.lan", 80,
                                    (struct sockaddr *)&in6));
  CHECK(!nt_access_target_allowed_at(acc, NULL, "mapped.lan", 81,
                                     (struct sockaddr *)&in6));
  inet_pton(AF_INET6, "2001:db9::1", &in6.sin6_addr);
  CHECK(!nt_access_target_allowed_at(acc, NULL, "v6.lan", 9,
                                     (struct sockaddr *)&in6));
  nt_access_free(acc);
}

static void test_command_decisions(void) {
  static const struct {
    const char *rules[3];
    const char *argv[8];
    size_t argc;
    int allowed;
  } cases[] = {
      {{NULL}, {"cat"}, 1, 0},
      {{"*"}, {"anything", "at", "all"}, 3, 1},
      {{"*"}, {""}, 1, 1},
      {{"cat"}, {"cat"}, 1, 1},
      /* A whole command line: arguments cannot widen it. */
      {{"cat"}, {"cat", "/etc/shadow"}, 2, 0},
      {{"cat *"}, {"cat", "/etc/shadow"}, 2, 1},
      {{"cat *"}, {"cat"}, 1, 1},
      /* The rsync -e trick: a program with free arguments runs anything. */
      {{"rsync"}, {"rsync", "-e", "sh -c \"id > pwned\"", "x:/y", "dst"}, 5, 0},
      {{"rsync --server --sender -vlogDtpre.iLsfxC . /srv/backup"},
       {"rsync", "-e", "sh -c \"id > pwned\"", "x:/y", "dst"},
       5,
       0},
      {{"rsync --server --sender -vlogDtpre.iLsfxC . /srv/backup"},
       {"rsync", "--server", "--sender", "-vlogDtpre.iLsfxC", ".",
        "/srv/backup"},
       6,
       1},
      {{"rsync --server --sender -vlogDtpre.iLsfxC . /srv/backup"},
       {"rsync", "--server", "--sender", "-vlogDtpre.iLsfxC", ".",
        "/srv/backup", "/etc"},
       7,
       0},
      {{"rsync --server --sender -vlogDtpre.iLsfxC . /srv/backup"},
       {"rsync", "--server", "--sender", "-vlogDtpre.iLsfxC", ".", "/etc"},
       6,
       0},
      /* A prefix fixes its words, in order, and only them. */
      {{"rsync --server *"}, {"rsync", "--server", "-e", "x"}, 4, 1},
      {{"rsync --server *"}, {"rsync", "-e", "--server"}, 3, 0},
      {{"rsync --server *"}, {"rsync"}, 1, 0},
      /* Quotes keep blanks in a word; a quoted '*' is a star. */
      {{"sh -c 'cat > backup.tar'"}, {"sh", "-c", "cat > backup.tar"}, 3, 1},
      {{"sh -c 'cat > backup.tar'"},
       {"sh", "-c", "cat", ">", "backup.tar"},
       5,
       0},
      {{"sh -c 'cat > backup.tar'"}, {"sh", "-c", "id"}, 3, 0},
      {{"echo '*'"}, {"echo", "*"}, 2, 1},
      {{"echo '*'"}, {"echo", "x"}, 2, 0},
      {{"a'b c'd"}, {"ab cd"}, 1, 1},
      {{"x ''"}, {"x", ""}, 2, 1},
      {{"x ''"}, {"x"}, 1, 0},
      {{"cat"}, {"Cat"}, 1, 0},
      {{"cat"}, {"/bin/cat"}, 1, 0},
      {{"/bin/cat"}, {"cat"}, 1, 0},
      {{"/bin/cat"}, {"/bin/cat"}, 1, 1},
      {{"cat"}, {"cats"}, 1, 0},
      {{"cat"}, {"ca"}, 1, 0},
      {{"cat"}, {"cat "}, 1, 0},
      {{"'/opt/my tools/run'"}, {"/opt/my tools/run"}, 1, 1},
      {{"/opt/my tools/run"}, {"/opt/my tools/run"}, 1, 0},
      {{"/opt/my tools/run"}, {"/opt/my", "tools/run"}, 2, 1},
      {{"/opt/my tools/run"}, {"/opt/my"}, 1, 0},
      {{"rsync", "sh *"}, {"sh", "-c", "x"}, 3, 1},
      {{"rsync", "sh"}, {"sh", "-c", "x"}, 3, 0},
      {{"rsync", "sh"}, {"bash"}, 1, 0},
      /* No command at all is never allowed. */
      {{"*"}, {NULL}, 0, 0},
      {{"cat"}, {NULL}, 0, 0},
  };
  for (size_t i = 0; i < NELEM(cases); i++) {
    nt_access *acc = make(NULL, cases[i].rules);
    int got =
        nt_access_command_allowed(acc, NULL, cases[i].argv, cases[i].argc);
    if (got != cases[i].allowed) {
      fprintf(stderr, "case %zu: \"%s\" under \"%s\"...: got %d, want %d\n", i,
              cases[i].argv[0] ? cases[i].argv[0] : "(none)",
              cases[i].rules[0] ? cases[i].rules[0] : "(none)", got,
              cases[i].allowed);
    }
    CHECK(got == cases[i].allowed);
    /* ... and command rules allow no target. */
    CHECK(!nt_access_target_allowed(acc, NULL, "cat", 1));
    nt_access_free(acc);
  }
  CHECK(!nt_access_command_allowed(NULL, NULL, NULL, 0));
}

/* ---- the other public checks ---- */

static void test_name_and_port(void) {
  char err[200] = "";
  CHECK(natter_name_check("bob", err, sizeof(err)) == 0);
  CHECK(natter_name_check("a.b_c-D9", NULL, 0) == 0);
  CHECK(natter_name_check("b o b", err, sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "expected 1-63 of A-Z a-z 0-9 . _ -");
  CHECK(natter_name_check("", NULL, 0) == NATTER_ERR_INVALID);
  CHECK(natter_name_check(NULL, NULL, 0) == NATTER_ERR_INVALID);

  CHECK(natter_port_parse("1") == 1);
  CHECK(natter_port_parse("65535") == 65535);
  CHECK(natter_port_parse("0") == 0);
  CHECK(natter_port_parse("65536") == 0);
  CHECK(natter_port_parse("022") == 0);
  CHECK(natter_port_parse("+22") == 0);
  CHECK(natter_port_parse("") == 0);
  CHECK(natter_port_parse(NULL) == 0);
}

/* ---- the library applies the same rules ---- */

typedef struct log_lines {
  char text[2048];
} log_lines;

static void collect_log(natter_log_level level, const char *line,
                        void *user_data) {
  log_lines *log = user_data;
  size_t used = strlen(log->text);
  (void)level;
  snprintf(log->text + used, sizeof(log->text) - used, "%s\n", line);
}

/* natter_client_new with |allow| / |allow_commands|: returns its result
 * and what it logged in |log|. Nothing is touched before the rules are
 * checked (ephemeral key, loopback broker that never runs). */
static int client_with_rules3(const char *const *allow,
                              const char *const *allow_commands,
                              const char *const *allow_peers, log_lines *log) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_client *c = NULL;
  int rv;

  memset(log, 0, sizeof(*log));
  natter_client_config_default(&cfg);
  cfg.name = "alice";
  cfg.broker = "127.0.0.1:9";
  cfg.identity_file = "";
  cfg.listen = 1;
  cfg.allow = allow;
  cfg.allow_commands = allow_commands;
  cfg.allow_peers = allow_peers;
  cfg.known_brokers = "";
  cfg.log = collect_log;
  cfg.user_data = log;
  rv = natter_client_new(&c, base, &cfg);
  CHECK((rv == 0) == (c != NULL));
  natter_client_free(c);
  event_base_free(base);
  return rv;
}

static int client_with_rules(const char *const *allow,
                             const char *const *allow_commands,
                             log_lines *log) {
  return client_with_rules3(allow, allow_commands, NULL, log);
}

static void test_client_refuses_bad_rules(void) {
  static const char *const good[] = {"::1", "[::1]:22", "nas.lan:*", "*", NULL};
  static const char *const good_cmd[] = {"rsync", "*", NULL};
  static const char *const bad[] = {"nas.lan", "x:y:z", NULL};
  static const char *const bad_cmd[] = {"cat", "", NULL};
  log_lines log;

  CHECK(client_with_rules(good, good_cmd, &log) == 0);
  CHECK(client_with_rules(bad, NULL, &log) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(log.text, "bad allow rule \"x:y:z\": not an IPv6 "
                               "address");
  CHECK(client_with_rules(NULL, bad_cmd, &log) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(log.text, "bad allow-command rule \"\": the program "
                               "is empty");
  {
    static const char *const good_peers[] = {"bob", "!x", "*", NULL};
    static const char *const bad_peers[] = {"bob", "b o b", NULL};
    CHECK(client_with_rules3(NULL, NULL, good_peers, &log) == 0);
    CHECK(client_with_rules3(NULL, NULL, bad_peers, &log) ==
          NATTER_ERR_INVALID);
    CHECK_STR_CONTAINS(log.text, "bad allow-peer rule \"b o b\": the peer "
                                 "name may hold only");
  }
}

int main(void) {
  static const nt_test_case cases[] = {
      {"target_rules_valid", test_target_rules_valid},
      {"target_rules_invalid", test_target_rules_invalid},
      {"command_rules", test_command_rules},
      {"add_refuses", test_add_refuses},
      {"target_decisions", test_target_decisions},
      {"target_resolved", test_target_resolved},
      {"command_decisions", test_command_decisions},
      {"peer_rules", test_peer_rules},
      {"peer_decisions", test_peer_decisions},
      {"scoped_decisions", test_scoped_decisions},
      {"name_and_port", test_name_and_port},
      {"client_refuses_bad_rules", test_client_refuses_bad_rules},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
