/* Unit tests for forward-spec parsing (src/codec/spec.c). */
#include "codec/spec.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define FORM "expected LOCALPORT:PEER[:HOST]:PORT"

/* Parses |text| expecting success; returns the result for field checks. */
static nt_spec parse_ok(const char *text) {
  nt_spec spec;
  char err[256] = "unset";
  int rc = nt_spec_parse(&spec, text, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "unexpected error for \"%s\": %s\n", text, err);
  }
  CHECK(rc == 0);
  CHECK(err[0] == '\0');
  return spec;
}

/* Parses |text| expecting failure; checks that the one-line error names
 * the spec and contains |needle|. */
static void parse_bad(const char *text, const char *needle) {
  nt_spec spec;
  char err[512];
  int rc = nt_spec_parse(&spec, text, err, sizeof(err));
  if (rc != -1) {
    fprintf(stderr, "\"%s\" was accepted\n", text);
  }
  CHECK(rc == -1);
  CHECK(err[0] != '\0');
  CHECK(strchr(err, '\n') == NULL);
  CHECK(strncmp(err, "bad spec \"", 10) == 0);
  CHECK_STR_CONTAINS(err, needle);
  /* A failed parse leaves nothing half-filled behind. */
  CHECK(spec.local_port == 0 && spec.peer[0] == '\0' && spec.host[0] == '\0' &&
        spec.port == 0 && spec.is_command == 0);
}

static void test_local_peer_port(void) {
  nt_spec s = parse_ok("8022:bob:22");
  CHECK(s.local_port == 8022);
  CHECK(strcmp(s.peer, "bob") == 0);
  CHECK(strcmp(s.host, "") == 0);
  CHECK(s.port == 22);
  CHECK(s.is_command == 0);
}

static void test_udp(void) {
  nt_spec s = parse_ok("udp:5353:bob:53");
  CHECK(s.kind == NT_SPEC_UDP && s.local_port == 5353 && s.port == 53);
  CHECK(strcmp(s.peer, "bob") == 0 && s.host[0] == '\0');
  s = parse_ok("udp:5353:bob:[::1]:53");
  CHECK(s.kind == NT_SPEC_UDP && strcmp(s.host, "::1") == 0);
  CHECK(parse_ok("8022:bob:22").kind == NT_SPEC_TCP);
  parse_bad("udp::bob:53", "needs a local port");
  parse_bad("udp:5353:bob:", "needs a local port");
  parse_bad("udp:5353:bob:x", "udp:5353:bob:x");
  parse_bad("udp:5353", "udp:5353");
  parse_bad("UDP:5353:bob:53", "local port");
}

static void test_ipv4_host(void) {
  nt_spec s = parse_ok("8022:bob:10.0.1.1:22");
  CHECK(s.local_port == 8022);
  CHECK(strcmp(s.peer, "bob") == 0);
  CHECK(strcmp(s.host, "10.0.1.1") == 0);
  CHECK(s.port == 22);
  CHECK(s.is_command == 0);
}

static void test_ipv6_host(void) {
  nt_spec s = parse_ok("8022:bob:[::1]:22");
  CHECK(s.local_port == 8022);
  CHECK(strcmp(s.host, "::1") == 0);
  CHECK(s.port == 22);

  s = parse_ok("1:a:[2001:db8::17]:65535");
  CHECK(s.local_port == 1);
  CHECK(strcmp(s.host, "2001:db8::17") == 0);
  CHECK(s.port == 65535);

  s = parse_ok(":bob:[::ffff:192.0.2.1]:80");
  CHECK(s.local_port == 0);
  CHECK(strcmp(s.host, "::ffff:192.0.2.1") == 0);
  CHECK(s.port == 80);
}

static void test_name_host(void) {
  nt_spec s = parse_ok("8022:bob:localhost:22");
  CHECK(strcmp(s.host, "localhost") == 0);
  CHECK(s.port == 22);

  s = parse_ok("8080:web-1.lan:intra_net.example-2.org:8080");
  CHECK(strcmp(s.peer, "web-1.lan") == 0);
  CHECK(strcmp(s.host, "intra_net.example-2.org") == 0);
}

static void test_stdio(void) {
  nt_spec s = parse_ok(":bob:22");
  CHECK(s.local_port == 0);
  CHECK(strcmp(s.peer, "bob") == 0);
  CHECK(s.host[0] == '\0');
  CHECK(s.port == 22);
  CHECK(s.is_command == 0);

  s = parse_ok(":bob:db.internal:5432");
  CHECK(s.local_port == 0);
  CHECK(strcmp(s.host, "db.internal") == 0);
  CHECK(s.port == 5432);
}

static void test_command(void) {
  nt_spec s = parse_ok("8022:bob:");
  CHECK(s.local_port == 8022);
  CHECK(strcmp(s.peer, "bob") == 0);
  CHECK(s.host[0] == '\0');
  CHECK(s.port == 0);
  CHECK(s.is_command == 1);

  s = parse_ok(":bob:");
  CHECK(s.local_port == 0);
  CHECK(strcmp(s.peer, "bob") == 0);
  CHECK(s.port == 0);
  CHECK(s.is_command == 1);
}

static void test_socks(void) {
  nt_spec s = parse_ok("socks:1080:bob");
  CHECK(s.kind == NT_SPEC_SOCKS);
  CHECK(s.local_port == 1080);
  CHECK(strcmp(s.peer, "bob") == 0);
  CHECK(s.host[0] == '\0' && s.port == 0 && !s.is_command);
  s = parse_ok("socks:0.0.0.0:1080:bob");
  CHECK(s.kind == NT_SPEC_SOCKS && s.local_port == 1080);
  CHECK(strcmp(s.host, "0.0.0.0") == 0);
  s = parse_ok("socks:[::1]:1080:b.o-b_1");
  CHECK(strcmp(s.host, "::1") == 0);
  CHECK(strcmp(s.peer, "b.o-b_1") == 0);
  CHECK(parse_ok("8022:bob:22").kind == NT_SPEC_TCP);
  parse_bad("socks:", "expected socks:[BIND:]LOCALPORT:PEER");
  parse_bad("socks:1080", "expected socks:[BIND:]LOCALPORT:PEER");
  parse_bad("socks:1080:", "peer name is empty");
  parse_bad("socks::bob", "local port is missing");
  parse_bad("socks:0:bob", "local port \"0\" is not a number");
  parse_bad("socks:1080:bob:22", "local port \"bob\" is not a number");
  parse_bad("socks:host.lan:1080:bob", "bind address \"host.lan\"");
  parse_bad("socks:::1:1080:bob", "bind address");
  parse_bad("socks:[::1:1080:bob", "bind address");
  parse_bad("socks:[]:1080:bob", "bind address");
  parse_bad("socks:1.2.3.4.5:1080:bob", "bind address");
}

static void test_limits_accepted(void) {
  char text[NT_HOST_MAX + 64];
  char peer[NT_NAME_MAX + 1];
  char host[NT_HOST_MAX + 1];
  nt_spec s;

  memset(peer, 'p', NT_NAME_MAX);
  peer[NT_NAME_MAX] = '\0';
  memset(host, 'h', NT_HOST_MAX);
  host[NT_HOST_MAX] = '\0';
  snprintf(text, sizeof(text), "65535:%s:1", peer);
  s = parse_ok(text);
  CHECK(s.local_port == 65535);
  CHECK(strcmp(s.peer, peer) == 0);
  CHECK(s.port == 1);

  snprintf(text, sizeof(text), "1:b:%s:2", host);
  s = parse_ok(text);
  CHECK(strcmp(s.host, host) == 0);
  CHECK(s.port == 2);
}

static void test_missing_parts(void) {
  parse_bad("8022:bob", "bad spec \"8022:bob\": " FORM);
  parse_bad("8022", FORM);
  parse_bad("", FORM);
  parse_bad(":", FORM);
  parse_bad("bob", FORM);
  parse_bad("8022:bob:host:", "port is missing");
  parse_bad("8022:bob:[::1]:", "port is missing");
}

static void test_bad_local_port(void) {
  parse_bad("x:bob:22",
            "bad spec \"x:bob:22\": local port \"x\" is not a number "
            "1..65535");
  parse_bad("0:bob:22", "local port \"0\" is not a number 1..65535");
  parse_bad("70000:bob:22", "local port \"70000\"");
  parse_bad("65536:bob:22", "local port \"65536\"");
  parse_bad("08022:bob:22", "local port \"08022\"");
  parse_bad("+8022:bob:22", "local port \"+8022\"");
  parse_bad("-1:bob:22", "local port \"-1\"");
  parse_bad(" 8022:bob:22", "local port \" 8022\"");
  parse_bad("8022 :bob:22", "local port \"8022 \"");
  parse_bad("123456:bob:22", "local port \"123456\"");
  parse_bad("99999999999999999999:bob:22", "local port");
  parse_bad("0x1f:bob:22", "local port \"0x1f\"");
}

static void test_bad_port(void) {
  parse_bad("8022:bob:0", "port \"0\" is not a number 1..65535");
  parse_bad("8022:bob:70000", "port \"70000\" is not a number 1..65535");
  parse_bad("8022:bob:65536", "port \"65536\"");
  parse_bad("8022:bob:022", "port \"022\"");
  parse_bad("8022:bob:+22", "port \"+22\"");
  parse_bad("8022:bob:-22", "port \"-22\"");
  parse_bad("8022:bob: 22", "port \" 22\"");
  parse_bad("8022:bob:22 ", "port \"22 \"");
  parse_bad("8022:bob:22x", "port \"22x\"");
  parse_bad("8022:bob:ssh", "port \"ssh\"");
  parse_bad("8022:bob:host:0", "port \"0\"");
  parse_bad("8022:bob:host:22x", "port \"22x\"");
  parse_bad("8022:bob:[::1]:99999", "port \"99999\"");
}

static void test_bad_peer(void) {
  char text[256];
  char peer[NT_NAME_MAX + 2];

  parse_bad("8022::22", "peer name is empty");
  parse_bad("::22", "peer name is empty");
  parse_bad("::", "peer name is empty");
  parse_bad("8022:b@b:22", "peer name \"b@b\" contains \"@\"");
  parse_bad("8022:b b:22", "contains \" \"");
  parse_bad("8022:b/b:22", "contains \"/\"");
  parse_bad("8022:b\tb:22", "contains \"\\x09\"");
  parse_bad("8022:b\xc3\xa9:22", "contains \"\\xc3\"");
  parse_bad("8022:[bob]:22", "contains \"[\"");

  memset(peer, 'p', NT_NAME_MAX + 1);
  peer[NT_NAME_MAX + 1] = '\0';
  snprintf(text, sizeof(text), "8022:%s:22", peer);
  parse_bad(text, "is longer than 63 bytes");
}

static void test_bad_host(void) {
  char text[NT_HOST_MAX + 64];
  char host[NT_HOST_MAX + 2];

  parse_bad("8022:bob::22", "host is empty");
  parse_bad(":bob::22", "host is empty");
  parse_bad("8022:bob:a b:22", "host \"a b\" contains \" \"");
  parse_bad("8022:bob:a/b:22", "contains \"/\"");
  parse_bad("8022:bob:a]b:22", "contains \"]\"");
  parse_bad("8022:bob:a\x01:22", "contains \"\\x01\"");

  memset(host, 'h', NT_HOST_MAX + 1);
  host[NT_HOST_MAX + 1] = '\0';
  snprintf(text, sizeof(text), "8022:bob:%s:22", host);
  parse_bad(text, "is longer than 253 bytes");
}

static void test_ipv6_errors(void) {
  /* The error shows the fix, since this mistake is easy to make. */
  parse_bad("8022:bob:::1:22", "IPv6 host \"::1\" needs brackets");
  parse_bad("8022:bob:::1:22", "LOCALPORT:PEER:[::1]:PORT");
  parse_bad("8022:bob:2001:db8::1:443", "[2001:db8::1]");
  parse_bad("8022:bob:a:b:22", "host \"a:b\" contains ':'");
  parse_bad("8022:bob:a:b:22", "[::1]");
  parse_bad("8022:bob:[::1:22", "has no closing ']'");
  parse_bad("8022:bob:[::1]", "must be followed by ':' and a port");
  parse_bad("8022:bob:[::1]22", "must be followed by ':' and a port");
  parse_bad("8022:bob:[::1]]:22", "must be followed by ':' and a port");
  parse_bad("8022:bob:[]:22", "host \"[]\" is empty");
  parse_bad("8022:bob:[zz]:22", "host \"[zz]\" is not an IPv6 address");
  parse_bad("8022:bob:[10.0.0.1]:22", "is not an IPv6 address");
  parse_bad("8022:bob:[fe80::1%eth0]:22", "is not an IPv6 address");
  parse_bad("8022:bob:[::1::2]:22", "is not an IPv6 address");
  parse_bad("8022:bob:[0000:0000:0000:0000:0000:0000:0000:0000:0000]:22",
            "is not an IPv6 address");
}

static void test_null_text(void) {
  nt_spec s;
  char err[128];
  CHECK(nt_spec_parse(&s, NULL, err, sizeof(err)) == -1);
  CHECK(err[0] != '\0');
}

/* Long input is quoted in part only, so the message stays one short line. */
static void test_quote_capped_and_escaped(void) {
  static char text[100 * 1024 + 1];
  nt_spec s;
  char err[1024];

  memset(text, 'x', sizeof(text) - 1);
  text[sizeof(text) - 1] = '\0';
  CHECK(nt_spec_parse(&s, text, err, sizeof(err)) == -1);
  CHECK(strlen(err) < 300);
  CHECK_STR_CONTAINS(err, "...");
  CHECK_STR_CONTAINS(err, FORM);

  CHECK(nt_spec_parse(&s, "8022:bob:\x1b[31m\"\\\x7f\xff:22", err,
                      sizeof(err)) == -1);
  CHECK_STR_CONTAINS(err, "\\x1b[31m\\\"\\\\\\x7f\\xff");
  for (const char *p = err; *p; p++) {
    CHECK(*p >= 0x20 && *p < 0x7f);
  }
}

static void test_small_errlen(void) {
  static const char *bad[] = {"8022:bob", "x:bob:22", "8022:bob:::1:22",
                              "8022:bob:[zz]:22", NULL};
  nt_spec s;

  for (const char **t = bad; *t; t++) {
    for (size_t errlen = 1; errlen < 24; errlen++) {
      char err[32];
      memset(err, 'Z', sizeof(err));
      CHECK(nt_spec_parse(&s, *t, err, errlen) == -1);
      CHECK(strlen(err) == errlen - 1);
      /* Nothing beyond errlen is touched. */
      for (size_t i = errlen; i < sizeof(err); i++) {
        CHECK(err[i] == 'Z');
      }
    }
    /* errlen 0: no write at all, not even a NUL; err may be NULL. */
    {
      char err = 'Z';
      CHECK(nt_spec_parse(&s, *t, &err, 0) == -1);
      CHECK(err == 'Z');
      CHECK(nt_spec_parse(&s, *t, NULL, 0) == -1);
    }
  }
}

/* Random strings: no crash, and every rejection explains itself. Half of
 * them are built from spec-like bytes so that deeper paths are reached. */
static void test_random_garbage(void) {
  static const char alphabet[] = "0123456789:[]ab.-_ %@\xff";
  uint32_t state = 12345;
  int accepted = 0;

  for (int iter = 0; iter < 10000; iter++) {
    char text[302];
    char err[160];
    nt_spec s;
    size_t len;

    state = state * 1103515245u + 12345u;
    len = (state >> 8) % 301;
    for (size_t i = 0; i < len; i++) {
      state = state * 1103515245u + 12345u;
      if (iter % 2) {
        text[i] = alphabet[(state >> 8) % (sizeof(alphabet) - 1)];
      } else {
        text[i] = (char)(1 + (state >> 8) % 255); /* any byte but NUL */
      }
    }
    text[len] = '\0';
    if (nt_spec_parse(&s, text, err, sizeof(err)) == 0) {
      accepted++;
      CHECK(nt_name_valid(s.peer));
      CHECK(s.is_command ? s.port == 0 : s.port != 0);
    } else {
      CHECK(err[0] != '\0');
      CHECK(strlen(err) < sizeof(err));
    }
  }
  CHECK(accepted < 10000);
}

static void test_long_inputs(void) {
  static const char *prefixes[] = {
      "",           "8022:",           "8022:bob:", "8022:bob:h:",
      "8022:bob:[", ":bob:localhost:", NULL};
  size_t size = 100 * 1024;
  char *text = malloc(size + 1);
  CHECK(text != NULL);
  if (text == NULL) {
    return;
  }
  for (const char **p = prefixes; *p; p++) {
    static const char fill[] = {'7', ':', 'a', '[', '\x80'};
    for (size_t f = 0; f < sizeof(fill); f++) {
      nt_spec s;
      char err[1024];
      size_t plen = strlen(*p);
      memcpy(text, *p, plen);
      memset(text + plen, fill[f], size - plen);
      text[size] = '\0';
      CHECK(nt_spec_parse(&s, text, err, sizeof(err)) == -1);
      CHECK(err[0] != '\0');
      CHECK(strlen(err) < 500);
    }
  }
  free(text);
}

static void test_name_valid(void) {
  char name[NT_NAME_MAX + 2];

  CHECK(nt_name_valid("bob"));
  CHECK(nt_name_valid("a"));
  CHECK(nt_name_valid("A-Z.a_z-0.9"));
  CHECK(!nt_name_valid(""));
  CHECK(!nt_name_valid(NULL));
  CHECK(!nt_name_valid("b:b"));
  CHECK(!nt_name_valid("b b"));
  CHECK(!nt_name_valid("b\xc3\xa9"));
  memset(name, 'n', NT_NAME_MAX);
  name[NT_NAME_MAX] = '\0';
  CHECK(nt_name_valid(name));
  name[NT_NAME_MAX] = 'n';
  name[NT_NAME_MAX + 1] = '\0';
  CHECK(!nt_name_valid(name));
}

static void test_port_parse(void) {
  CHECK(nt_port_parse("1") == 1);
  CHECK(nt_port_parse("22") == 22);
  CHECK(nt_port_parse("65535") == 65535);
  CHECK(nt_port_parse("0") == 0);
  CHECK(nt_port_parse("65536") == 0);
  CHECK(nt_port_parse("70000") == 0);
  CHECK(nt_port_parse("100000") == 0);
  CHECK(nt_port_parse("022") == 0);
  CHECK(nt_port_parse("00") == 0);
  CHECK(nt_port_parse("+22") == 0);
  CHECK(nt_port_parse("-22") == 0);
  CHECK(nt_port_parse(" 22") == 0);
  CHECK(nt_port_parse("22 ") == 0);
  CHECK(nt_port_parse("22x") == 0);
  CHECK(nt_port_parse("") == 0);
  CHECK(nt_port_parse(NULL) == 0);
  CHECK(nt_port_parse("1844674407370955161622") == 0);
}

static const nt_test_case cases[] = {
    {"local_peer_port", test_local_peer_port},
    {"ipv4_host", test_ipv4_host},
    {"udp", test_udp},
    {"ipv6_host", test_ipv6_host},
    {"name_host", test_name_host},
    {"stdio", test_stdio},
    {"command", test_command},
    {"socks", test_socks},
    {"limits_accepted", test_limits_accepted},
    {"missing_parts", test_missing_parts},
    {"bad_local_port", test_bad_local_port},
    {"bad_port", test_bad_port},
    {"bad_peer", test_bad_peer},
    {"bad_host", test_bad_host},
    {"ipv6_errors", test_ipv6_errors},
    {"null_text", test_null_text},
    {"quote_capped_and_escaped", test_quote_capped_and_escaped},
    {"small_errlen", test_small_errlen},
    {"random_garbage", test_random_garbage},
    {"long_inputs", test_long_inputs},
    {"name_valid", test_name_valid},
    {"port_parse", test_port_parse},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
