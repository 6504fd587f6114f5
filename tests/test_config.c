/* Unit tests for the configuration file parser (cli/config.c). */
#include "config.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NATTER_SOURCE_DIR
#error "NATTER_SOURCE_DIR must name the source tree (for examples/)"
#endif

#define FILENAME "t.conf"

/* A 64-digit fingerprint for the tests. */
#define FP "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

/* Parses |text| (NUL-terminated) expecting success into |c|, which the
 * caller frees. */
static void parse_ok(cli_config *c, const char *text) {
  char err[512] = "unset";
  int rc;

  cli_config_init(c);
  rc = cli_config_parse(c, text, strlen(text), FILENAME, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "unexpected error for \"%s\": %s\n", text, err);
  }
  CHECK(rc == 0);
  CHECK(err[0] == '\0');
}

/* Parses |len| bytes of |text| expecting an error on |line| whose message
 * contains |needle|: checks the "t.conf:LINE: " prefix exactly and that the
 * message is one line. */
static void parse_bad_n(const char *text, size_t len, size_t line,
                        const char *needle) {
  cli_config c;
  char err[512];
  char prefix[64];
  int rc;

  cli_config_init(&c);
  rc = cli_config_parse(&c, text, len, FILENAME, err, sizeof(err));
  if (rc != -1) {
    fprintf(stderr, "accepted: \"%.*s\"\n", (int)(len < 200 ? len : 200), text);
  }
  CHECK(rc == -1);
  snprintf(prefix, sizeof(prefix), FILENAME ":%zu: ", line);
  if (strncmp(err, prefix, strlen(prefix)) != 0) {
    fprintf(stderr, "expected prefix \"%s\", got \"%s\"\n", prefix, err);
    nt_test_failures++;
  }
  CHECK(strchr(err, '\n') == NULL);
  CHECK(strlen(err) < 400);
  CHECK_STR_CONTAINS(err, needle);
  cli_config_free(&c);
}

static void parse_bad(const char *text, size_t line, const char *needle) {
  parse_bad_n(text, strlen(text), line, needle);
}

/* ---- every key ---- */

static void test_every_key(void) {
  cli_config c;

  parse_ok(&c, "server = [::]:10000\n"
               "name = bob\n"
               "broker = broker.example.net:10000\n"
               "identity = /var/lib/natter/bob.key\n"
               "broker-key = " FP "\n"
               "timeout = 3600\n"
               "log-level = debug\n"
               "listen = yes\n"
               "port = 41641\n"
               "allow = 10.0.0.1:22\n"
               "allow = *\n"
               "allow-command = rsync\n"
               "allow-command = *\n"
               "forward = 8022:alice:22\n"
               "forward = 8080:alice:10.0.1.1:80\n"
               "forward = :alice:22\n"
               "forward = 8873:alice: rsync --daemon\n");
  CHECK(c.server && strcmp(c.server, "[::]:10000") == 0 && c.server_set == 1);
  CHECK(c.name && strcmp(c.name, "bob") == 0 && c.name_set == 2);
  CHECK(c.broker && strcmp(c.broker, "broker.example.net:10000") == 0);
  CHECK(c.broker_set == 3);
  CHECK(c.identity && strcmp(c.identity, "/var/lib/natter/bob.key") == 0);
  CHECK(c.identity_set == 4);
  CHECK(c.broker_key && strcmp(c.broker_key, FP) == 0);
  CHECK(c.broker_key_set == 5);
  CHECK(c.timeout_s == 3600 && c.timeout_s_set == 6);
  CHECK(c.log_level == CLI_LOG_DEBUG && c.log_level_set == 7);
  CHECK(c.listen == 1 && c.listen_set == 8);
  CHECK(c.port == 41641 && c.port_set == 9);
  CHECK(c.nallow == 2);
  CHECK(c.allow[0] && strcmp(c.allow[0], "10.0.0.1:22") == 0);
  CHECK(c.allow[1] && strcmp(c.allow[1], "*") == 0);
  CHECK(c.allow[2] == NULL);
  CHECK(c.nallow_command == 2);
  CHECK(c.allow_command[0] && strcmp(c.allow_command[0], "rsync") == 0);
  CHECK(c.allow_command[1] && strcmp(c.allow_command[1], "*") == 0);
  CHECK(c.allow_command[2] == NULL);
  CHECK(c.nforward == 4);
  CHECK(strcmp(c.forward[0].spec, "8022:alice:22") == 0);
  CHECK(c.forward[0].argv == NULL && c.forward[0].argc == 0);
  CHECK(c.forward[0].line == 14);
  CHECK(strcmp(c.forward[1].spec, "8080:alice:10.0.1.1:80") == 0);
  CHECK(strcmp(c.forward[2].spec, ":alice:22") == 0);
  CHECK(c.forward[2].argv == NULL);
  CHECK(strcmp(c.forward[3].spec, "8873:alice:") == 0);
  CHECK(c.forward[3].argc == 2 && c.forward[3].argv != NULL);
  if (c.forward[3].argv) {
    CHECK(strcmp(c.forward[3].argv[0], "rsync") == 0);
    CHECK(strcmp(c.forward[3].argv[1], "--daemon") == 0);
    CHECK(c.forward[3].argv[2] == NULL);
  }
  CHECK(c.forward[3].line == 17);
  cli_config_free(&c);

  /* Freeing leaves it empty; freeing again is harmless. */
  CHECK(c.name == NULL && c.nforward == 0 && c.name_set == 0);
  cli_config_free(&c);
}

static void test_empty_and_unset(void) {
  cli_config c;

  parse_ok(&c, "");
  CHECK(c.server == NULL && c.name == NULL && c.broker == NULL);
  CHECK(c.identity == NULL && c.broker_key == NULL);
  CHECK(c.server_set == 0 && c.name_set == 0 && c.timeout_s_set == 0);
  CHECK(c.listen_set == 0 && c.log_level_set == 0);
  CHECK(c.nallow == 0 && c.allow[0] == NULL && c.nforward == 0);
  cli_config_free(&c);

  cli_config_init(&c);
  CHECK(cli_config_parse(&c, NULL, 0, FILENAME, NULL, 0) == 0);
  cli_config_free(&c);
}

static void test_values(void) {
  static const struct {
    const char *text;
    unsigned long long listen;
  } bools[] = {{"yes", 1}, {"no", 0}, {"true", 1}, {"false", 0}, {"on", 1},
               {"off", 0}, {"1", 1},  {"0", 0},    {"YES", 1},   {"Off", 0}};
  static const char *const levels[] = {"error", "warn", "info", "debug"};
  cli_config c;
  char text[128];

  for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
    snprintf(text, sizeof(text), "listen = %s", bools[i].text);
    parse_ok(&c, text);
    CHECK(c.listen == bools[i].listen && c.listen_set == 1);
    cli_config_free(&c);
  }
  for (int i = 0; i < 4; i++) {
    snprintf(text, sizeof(text), "log-level = %s", levels[i]);
    parse_ok(&c, text);
    CHECK((int)c.log_level == i && c.log_level_set == 1);
    cli_config_free(&c);
  }
  parse_ok(&c, "timeout = 1");
  CHECK(c.timeout_s == 1);
  cli_config_free(&c);
  parse_ok(&c, "broker-key = 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
               "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff");
  CHECK(c.broker_key_set == 1);
  cli_config_free(&c);
  parse_ok(&c, "server = :10000\nbroker = [2001:db8::1]:10000\n"
               "allow = nas.lan\nallow = nas.lan:*\nallow = [::1]:22\n");
  CHECK(strcmp(c.server, ":10000") == 0);
  CHECK(strcmp(c.broker, "[2001:db8::1]:10000") == 0);
  CHECK(c.nallow == 3 && strcmp(c.allow[2], "[::1]:22") == 0);
  cli_config_free(&c);
}

/* ---- errors ---- */

static void test_errors(void) {
  /* Each bad line comes after three good ones, so it is line 4. */
  static const struct {
    const char *line;
    const char *needle;
  } cases[] = {
      {"lsten = yes", "unknown key \"lsten\" (did you mean \"listen\"?)"},
      {"Listen = yes", "(did you mean \"listen\"?)"},
      {"broker_key = " FP, "(did you mean \"broker-key\"?)"},
      {"log level = info", "(did you mean \"log-level\"?)"},
      {"frobnicate = 1", "unknown key \"frobnicate\": expected one of"},
      {"listen", "\"listen\" needs '=' and a value, as in listen = yes"},
      {"hello world", "missing '=' in \"hello world\""},
      {"= bob", "no key before '='"},
      {"  =", "no key before '='"},
      {"identity =", "\"identity\" has no value"},
      {"identity =   \t", "\"identity\" has no value"},
      {"identity = \"\"", "\"identity\" has no value"},
      {"forward = ", "\"forward\" has no value"},
      {"listen = maybe", "bad listen \"maybe\": expected yes or no"},
      {"listen = yess", "bad listen"},
      {"timeout = 0", "bad timeout \"0\": expected whole seconds 1..3600"},
      {"timeout = 3601", "bad timeout \"3601\""},
      {"timeout = abc", "bad timeout"},
      {"timeout = 10s", "bad timeout"},
      {"timeout = -5", "bad timeout"},
      {"timeout = +5", "bad timeout"},
      {"timeout = 1 0", "bad timeout"},
      {"timeout = 99999999999999999999999", "bad timeout"},
      {"log-level = verbose", "bad log-level \"verbose\": expected error, "
                              "warn, info or debug"},
      {"broker-key = abc", "bad broker-key \"abc\": expected"},
      {"broker-key = " FP "0", "bad broker-key"},
      {"broker-key = 0" FP, "bad broker-key"},
      {"broker-key = "
       "0011223344556677889900112233445566778899001122334455667788990g",
       "bad broker-key"},
      {"broker-key = :" FP, "bad broker-key"},
      {"broker-key = 0:0112233445566778899aabbccddeeff00112233445566778899aabb"
       "ccddeeff0",
       "bad broker-key"},
      {"broker-key = 00::11223344556677889900112233445566778899001122334455667"
       "78899001122",
       "bad broker-key"},
      {"name = \"bob", "unterminated quote in value \"\\\"bob\""},
      {"name = \"bob\\\"", "unterminated quote"},
      {"name = \"bob\\", "unterminated quote"},
      {"name = \"bob\" x", "text \"x\" after the closing quote"},
      {"name = \"b\\ob\"", "unknown escape \\o in quoted value"},
      {"name = b o b", "bad name \"b o b\""},
      {"name = bob # me", "'#' starts a comment only at the beginning"},
      {"name = "
       "0123456789012345678901234567890123456789012345678901234567"
       "890123",
       "bad name"},
      {"broker = example.net", "bad broker \"example.net\": expected "
                               "HOST:PORT"},
      {"broker = :10000", "the host is empty"},
      {"broker = ::1:10000", "an IPv6 address goes in brackets"},
      {"broker = [::1:10000", "needs both brackets"},
      {"broker = example.net:0", "the port is not a number 1..65535"},
      {"broker = example.net:", "the port is missing"},
      {"broker = exa mple.net:1", "the host may hold only"},
      {"server = 10000", "(\":PORT\" for every address)"},
      {"server = :70000", "bad server"},
      {"allow = bad host", "bad allow rule \"bad host\""},
      {"allow = host:99999", "the port is not a number 1..65535 or *"},
      {"allow = :22", "the host is empty"},
      {"allow = host:22 # ssh", "'#' starts a comment only"},
      {"allow-command = rsync * x", "'*' stands alone as the last word"},
      {"allow-peer = a b", "bad allow-peer \"a b\": the peer name"},
      {"name-expiry = 30", "bad name-expiry \"30\": expected a duration"},
      {"max-commands = 0", "bad max-commands \"0\": expected a number"},
      {"forward = 8022:bob", "bad spec \"8022:bob\""},
      {"forward = 99999:bob:22", "bad spec \"99999:bob:22\""},
      {"forward = 8022:bob:22 extra",
       "forward \"8022:bob:22\" takes no command"},
      {"forward = 8022:bob:22 # ssh", "'#' starts a comment only"},
      {"forward = 8022:bob:", "forward \"8022:bob:\" needs a command"},
      {"forward = :bob: sh -c 'cat > f",
       "command of forward \":bob:\": unterminated single quote at "
       "\"'cat > f\""},
      {"forward = :bob: echo \"hi", "unterminated double quote at "
                                    "\"\\\"hi\""},
      {"forward = :bob: echo \\", "ends in a backslash"},
      {"forward = :bob: '' x", "the program name is empty"},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char text[512];
    snprintf(text, sizeof(text), "# good lines first\nallow = host\n\n%s\n",
             cases[i].line);
    parse_bad(text, 4, cases[i].needle);
  }
}

/* allow and allow-command follow the library's grammar (src/trust/access.h):
 * what natter_client_new would take is taken here, and what it would
 * refuse is a FILE:LINE error at start-up. */
static void test_allow_rules(void) {
  static const char *const good[] = {
      "allow = ::1",
      "allow = [::1]",
      "allow = [::1]:*",
      "allow = 2001:db8::17",
      "allow = [2001:db8::17]:443",
      "allow = host:*",
      "allow-command = /usr/bin/rsync",
      "allow-command = \"/opt/my app\"",
  };
  static const struct {
    const char *line;
    const char *needle;
  } bad[] = {
      {"allow = x:y:z", "bad allow rule \"x:y:z\": not an IPv6 address"},
      {"allow = ::1:22:", "not an IPv6 address"},
      {"allow = [::1]22", "text after ']'"},
      {"allow = [nas.lan]:22", "not an IPv6 address"},
      {"allow = host:", "the port is missing"},
      {"allow = host:022", "the port is not a number 1..65535 or *"},
      {"allow = *:22", "'*' stands alone"},
      {"allow-command = rsync*", "bad allow-command \"rsync*\": '*' stands "
                                 "alone"},
      {"allow-command = \" rsync\"", "starts or ends with a blank"},
  };
  char text[512];

  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    cli_config c;
    snprintf(text, sizeof(text), "%s\n", good[i]);
    parse_ok(&c, text);
    CHECK(c.nallow + c.nallow_command == 1);
    cli_config_free(&c);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(text, sizeof(text), "listen = yes\n\n%s\n", bad[i].line);
    parse_bad(text, 3, bad[i].needle);
    /* The reason shows the forms a rule may take. */
    if (strncmp(bad[i].line, "allow =", 7) == 0) {
      parse_bad(text, 3,
                "expected HOST, HOST:PORT, HOST:*, [IPv6], "
                "[IPv6]:PORT or *");
    }
  }
}

/* The broker's limits and relay, and a client's -no-relay, as keys. */
static void test_broker_keys(void) {
  cli_config c;
  parse_ok(&c, "max-clients = 20000\nmax-pending = 100\n"
               "max-per-address = 64\nretry-above = 0\nrelay = yes\n"
               "relay-rate = 1000\nrelay-total = 0\nno-relay = on\n");
  CHECK(c.max_clients == 20000 && c.max_clients_set == 1);
  CHECK(c.max_pending == 100 && c.max_per_address == 64);
  CHECK(c.retry_above == 0 && c.retry_above_set == 4);
  CHECK(c.relay == 1 && c.relay_set == 5);
  CHECK(c.relay_rate == 1000 && c.relay_rate_set == 6);
  CHECK(c.relay_total == 0 && c.relay_total_set == 7);
  CHECK(c.no_relay == 1 && c.no_relay_set == 8);
  cli_config_free(&c);
  parse_bad("max-clients = 0\n", 1, "expected a number 1..1000000");
  parse_bad("max-pending = 1000001\n", 1, "expected a number 1..1000000");
  parse_bad("retry-above = -1\n", 1, "expected a number 0..1000000");
  parse_bad("relay = maybe\n", 1, "bad relay \"maybe\": expected yes or no");
  parse_bad("relay-rate = 1M\n", 1, "expected a number of bytes");
  parse_bad("relay = yes\nrelay = no\n", 2, "duplicate key \"relay\"");
}

static void test_duplicates(void) {
  static const char *const keys[] = {
      "server = :1",        "name = a",    "broker = h:1",     "identity = f",
      ("broker-key = " FP), "timeout = 5", "log-level = warn", "listen = no",
  };
  char text[512];

  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    snprintf(text, sizeof(text), "%s\n# two\n%s\n", keys[i], keys[i]);
    parse_bad(text, 3, "(first set on line 1)");
    parse_bad(text, 3, "duplicate key \"");
  }
  /* The repeatable keys are not duplicates. */
  {
    cli_config c;
    parse_ok(&c, "allow = a\nallow = a\nallow-command = x\n"
                 "allow-command = x\nforward = 1:b:2\nforward = 1:b:2\n");
    CHECK(c.nallow == 2 && c.nallow_command == 2 && c.nforward == 2);
    cli_config_free(&c);
  }
  /* A key set by an earlier parse into the same config is a duplicate. */
  {
    cli_config c;
    char err[256];
    parse_ok(&c, "name = a\n");
    CHECK(cli_config_parse(&c, "name = b", 8, "second.conf", err,
                           sizeof(err)) == -1);
    CHECK_STR_CONTAINS(err, "second.conf:1: duplicate key \"name\"");
    CHECK(strncmp(err, "second.conf:1: ", 15) == 0);
    cli_config_free(&c);
  }
}

static void test_first_error_wins(void) {
  parse_bad("name = bob\nbad line\ntimeout = 0\n", 2, "missing '='");
  parse_bad("name = bob\ntimeout = 0\nbad line\n", 2, "bad timeout");
}

/* ---- line handling ---- */

static void test_no_trailing_newline(void) {
  cli_config c;

  parse_ok(&c, "name = bob\nlisten = yes");
  CHECK(c.listen == 1 && strcmp(c.name, "bob") == 0);
  cli_config_free(&c);
  parse_ok(&c, "forward = :bob: sh -c 'cat > f'");
  CHECK(c.nforward == 1 && c.forward[0].argc == 3);
  cli_config_free(&c);
  parse_ok(&c, "# only a comment");
  cli_config_free(&c);
  parse_bad("name = bob\nlisten = maybe", 2, "bad listen \"maybe\"");
}

static void test_crlf(void) {
  cli_config c;

  parse_ok(&c, "# comment\r\nname = bob\r\n\r\nlisten = yes\r\n"
               "identity = \"/a b \"\r\nforward = :bob: echo hi\r\n"
               "timeout = 7");
  CHECK(strcmp(c.name, "bob") == 0 && c.name_set == 2);
  CHECK(c.listen == 1 && c.listen_set == 4);
  CHECK(strcmp(c.identity, "/a b ") == 0);
  CHECK(c.nforward == 1 && c.forward[0].argc == 2);
  CHECK(strcmp(c.forward[0].argv[1], "hi") == 0);
  CHECK(c.timeout_s == 7);
  cli_config_free(&c);
  parse_bad("name = bob\r\nlisten = maybe\r\n", 2, "bad listen \"maybe\"");
}

static void test_comments_and_blanks(void) {
  cli_config c;

  parse_ok(&c, "\n"
               "   \n"
               "\t\n"
               "# comment = with an equals sign\n"
               "   # indented comment\n"
               "\t#tab-indented comment\n"
               "#\n"
               "  name\t=\tbob  \n"
               "identity = /keys/#1.key\n"
               "allow-command = /opt/a#b\n");
  CHECK(strcmp(c.name, "bob") == 0 && c.name_set == 8);
  /* '#' after the first non-blank character is part of the value. */
  CHECK(strcmp(c.identity, "/keys/#1.key") == 0);
  CHECK(strcmp(c.allow_command[0], "/opt/a#b") == 0);
  cli_config_free(&c);
}

static void test_quoted_values(void) {
  cli_config c;

  parse_ok(&c, "identity = \"  spaced path  \"\n"
               "name = \"bob\"\n"
               "allow-command = \"#hash\"\n"
               "allow-command = \"/opt/my tools/run\"\n"
               "broker = \"example.net:1\"   \n");
  CHECK(strcmp(c.identity, "  spaced path  ") == 0);
  CHECK(strcmp(c.name, "bob") == 0);
  CHECK(strcmp(c.allow_command[0], "#hash") == 0);
  CHECK(strcmp(c.allow_command[1], "/opt/my tools/run") == 0);
  CHECK(strcmp(c.broker, "example.net:1") == 0);
  cli_config_free(&c);

  parse_ok(&c, "identity = \"a \\\"q\\\" \\\\ b\"");
  CHECK(strcmp(c.identity, "a \"q\" \\ b") == 0);
  cli_config_free(&c);

  /* Quotes that do not start the value are ordinary characters. */
  parse_ok(&c, "identity = a\"b\" c");
  CHECK(strcmp(c.identity, "a\"b\" c") == 0);
  cli_config_free(&c);

  /* '=' in a value is part of it. */
  parse_ok(&c, "identity = /k=v/x");
  CHECK(strcmp(c.identity, "/k=v/x") == 0);
  cli_config_free(&c);

  /* A quoted forward: value quoting first, then the command's own. */
  parse_ok(&c, "forward = \":bob: echo \\\"a b\\\" \"");
  CHECK(c.nforward == 1 && c.forward[0].argc == 2);
  CHECK(strcmp(c.forward[0].argv[1], "a b") == 0);
  cli_config_free(&c);
}

static void test_bom(void) {
  cli_config c;

  parse_ok(&c, "\xef\xbb\xbfname = bob\n");
  CHECK(strcmp(c.name, "bob") == 0 && c.name_set == 1);
  cli_config_free(&c);
  /* A BOM is only skipped at the start of the file. */
  parse_bad("name = bob\n\xef\xbb\xbflisten = yes\n", 2, "unknown key");
}

/* ---- commands ---- */

/* Splits |s| expecting |n| arguments equal to |want|. */
static void split_ok(const char *s, size_t n, const char *const *want) {
  char **argv = NULL;
  size_t argc = 99;
  char err[256] = "unset";
  int rc = cli_split_argv(s, &argv, &argc, err, sizeof(err));

  if (rc != 0) {
    fprintf(stderr, "split \"%s\" failed: %s\n", s, err);
  }
  CHECK(rc == 0);
  CHECK(argc == n);
  if (rc == 0 && argc == n) {
    for (size_t i = 0; i < n; i++) {
      if (strcmp(argv[i], want[i]) != 0) {
        fprintf(stderr, "split \"%s\": arg %zu is \"%s\", want \"%s\"\n", s, i,
                argv[i], want[i]);
        nt_test_failures++;
      }
    }
    CHECK(argv[n] == NULL);
  }
  cli_argv_free(argv);
}

static void split_bad(const char *s, const char *needle) {
  char **argv = (char **)&argv; /* must come back NULL */
  char err[256] = "";

  CHECK(cli_split_argv(s, &argv, NULL, err, sizeof(err)) == -1);
  CHECK(argv == NULL);
  CHECK(strchr(err, '\n') == NULL);
  CHECK_STR_CONTAINS(err, needle);
}

static void test_split_argv(void) {
  {
    static const char *const w[] = {"sh", "-c", "cat > f"};
    split_ok("sh -c 'cat > f'", 3, w);
  }
  {
    static const char *const w[] = {"printf", "a b", "c d"};
    split_ok("printf \"a b\" c\\ d", 3, w);
  }
  {
    static const char *const w[] = {"a", "b"};
    split_ok("  \t a \t\t b  \t", 2, w);
  }
  split_ok("", 0, NULL);
  split_ok(" \t ", 0, NULL);
  {
    /* Nothing is expanded. */
    static const char *const w[] = {"echo", "$HOME", "*",  "~",    "|",
                                    "wc",   ";",     "#x", "`id`", ">"};
    split_ok("echo $HOME * ~ | wc ; #x `id` >", 10, w);
  }
  {
    /* Single quotes keep everything, backslashes and double quotes too. */
    static const char *const w[] = {"a\\b \"c\" $d"};
    split_ok("'a\\b \"c\" $d'", 1, w);
  }
  {
    /* In double quotes: \" \\ \$ \` escape, other backslashes stay. */
    static const char *const w[] = {"\" \\ $ ` \\n 'x'"};
    split_ok("\"\\\" \\\\ \\$ \\` \\n 'x'\"", 1, w);
  }
  {
    /* Quoted parts join with the text around them; "" and '' are empty
     * arguments. */
    static const char *const w[] = {"abc d", "", "", "x"};
    split_ok("a\"b\"'c d' \"\" '' x", 4, w);
  }
  {
    /* A backslash outside quotes escapes anything, quotes included. */
    static const char *const w[] = {"'", "\"", "\\", "a b", "x"};
    split_ok("\\' \\\" \\\\ a\\ b \\x", 5, w);
  }
  {
    /* Backslash-newline is removed, as in sh. */
    static const char *const w[] = {"ab", "c"};
    split_ok("a\\\nb \\\n c", 2, w);
  }
  split_bad("sh -c 'cat > f", "unterminated single quote at \"'cat > f\"");
  split_bad("echo \"abc", "unterminated double quote at \"\\\"abc\"");
  split_bad("echo \"a\\\"", "unterminated double quote");
  split_bad("echo abc\\", "ends in a backslash");
  {
    /* 256 arguments are fine, 257 are not. */
    char s[1024];
    char **argv = NULL;
    size_t argc = 0;
    size_t o = 0;
    for (int i = 0; i < CLI_CONFIG_MAX_ARGS; i++) {
      s[o++] = 'x';
      s[o++] = ' ';
    }
    s[o] = '\0';
    CHECK(cli_split_argv(s, &argv, &argc, NULL, 0) == 0);
    CHECK(argc == CLI_CONFIG_MAX_ARGS && argv[CLI_CONFIG_MAX_ARGS] == NULL);
    cli_argv_free(argv);
    s[o++] = 'y';
    s[o] = '\0';
    split_bad(s, "more than 256 arguments");
  }
}

/* natter -rsh: the joined command words, split as a remote shell would,
 * with what needs a shell refused. */
static void shell_ok(const char *s, size_t n, const char *const *want) {
  char **argv = NULL;
  size_t argc = 99;
  char err[256] = "unset";
  int rc = cli_split_shell_words(s, &argv, &argc, err, sizeof(err));

  if (rc != 0) {
    fprintf(stderr, "shell split \"%s\" failed: %s\n", s, err);
  }
  CHECK(rc == 0);
  CHECK(argc == n);
  for (size_t i = 0; rc == 0 && argc == n && i < n; i++) {
    CHECK(strcmp(argv[i], want[i]) == 0);
  }
  cli_argv_free(argv);
}

static void shell_bad(const char *s, const char *needle) {
  char **argv = (char **)&argv;
  char err[512] = "";

  CHECK(cli_split_shell_words(s, &argv, NULL, err, sizeof(err)) == -1);
  CHECK(argv == NULL);
  CHECK_STR_CONTAINS(err, needle);
}

static void test_split_shell_words(void) {
  {
    /* git: one word, its path quoted with '\'' for a quote */
    static const char *const w[] = {"git-upload-pack", "/r/it's.git"};
    shell_ok("git-upload-pack '/r/it'\\''s.git'", 2, w);
  }
  {
    /* rsync >= 3.2.4: blanks, quotes and $ escaped with backslashes */
    static const char *const w[] = {"rsync", "--server", ".",
                                    "/a b/it's $x\"y"};
    shell_ok("rsync --server . /a\\ b/it\\'s\\ \\$x\\\"y", 4, w);
  }
  {
    static const char *const w[] = {"echo", "a|b", "*", "~x", "#c", "d#e~"};
    shell_ok("echo 'a|b' \"*\" \\~x '#c' d#e~", 6, w);
  }
  shell_bad("cat /etc/*", "'*' at \"*\" needs a shell");
  shell_bad("ls a?", "'?'");
  shell_bad("ls [ab]", "'['");
  shell_bad("cat f | sh", "'|'");
  shell_bad("true; id", "';'");
  shell_bad("a && b", "'&'");
  shell_bad("cat <f", "'<'");
  shell_bad("echo >f", "'>'");
  shell_bad("echo $HOME", "'$'");
  shell_bad("echo \"$HOME\"", "'$'");
  shell_bad("echo `id`", "'`'");
  shell_bad("echo (x)", "'('");
  shell_bad("ls ~/x", "'~'");
  shell_bad("ls x #comment", "'#'");
  shell_bad("ls 'x", "unterminated single quote");
}

static void test_forward_commands(void) {
  cli_config c;

  parse_ok(&c, "forward = :bob: sh -c 'cat > f'\n"
               "forward = 8022:bob:\tprintf \"a b\" c\\ d\n"
               "forward = 8023:bob:   echo   '#not a comment'  \n");
  CHECK(c.nforward == 3);
  CHECK(strcmp(c.forward[0].spec, ":bob:") == 0);
  CHECK(c.forward[0].argc == 3);
  CHECK(strcmp(c.forward[0].argv[0], "sh") == 0);
  CHECK(strcmp(c.forward[0].argv[1], "-c") == 0);
  CHECK(strcmp(c.forward[0].argv[2], "cat > f") == 0);
  CHECK(c.forward[0].argv[3] == NULL);
  CHECK(strcmp(c.forward[1].spec, "8022:bob:") == 0);
  CHECK(c.forward[1].argc == 3);
  CHECK(strcmp(c.forward[1].argv[1], "a b") == 0);
  CHECK(strcmp(c.forward[1].argv[2], "c d") == 0);
  CHECK(c.forward[2].argc == 2);
  CHECK(strcmp(c.forward[2].argv[1], "#not a comment") == 0);
  cli_config_free(&c);

  /* stdin/stdout carries one session only, as on the command line. */
  parse_bad("forward = :bob:22\nforward = 1:bob:2\nforward = :bob: cat\n", 3,
            "forward \":bob:\": only one forward may use stdin/stdout "
            "(\":PEER:...\"), and line 1 has one");
}

/* ---- limits ---- */

static void test_long_lines(void) {
  size_t size = 3 * CLI_CONFIG_MAX_LINE + 100000;
  char *text = malloc(size);
  cli_config c;
  size_t o;

  CHECK(text != NULL);
  if (text == NULL) {
    return;
  }
  /* A comment of exactly the limit, then a value line of exactly it (CRLF
   * excluded), then a good line. */
  o = 0;
  text[o++] = '#';
  memset(text + o, 'c', CLI_CONFIG_MAX_LINE - 1);
  o += CLI_CONFIG_MAX_LINE - 1;
  text[o++] = '\n';
  memcpy(text + o, "identity = ", 11);
  memset(text + o + 11, 'p', CLI_CONFIG_MAX_LINE - 11);
  o += CLI_CONFIG_MAX_LINE;
  memcpy(text + o, "\r\nname = bob\n", 13);
  o += 13;
  cli_config_init(&c);
  CHECK(cli_config_parse(&c, text, o, FILENAME, NULL, 0) == 0);
  CHECK(c.identity && strlen(c.identity) == CLI_CONFIG_MAX_LINE - 11);
  CHECK(c.name_set == 3);
  cli_config_free(&c);

  /* One byte more on line 2. */
  o = 0;
  memcpy(text + o, "name = bob\n", 11);
  o += 11;
  memset(text + o, '#', CLI_CONFIG_MAX_LINE + 1);
  o += CLI_CONFIG_MAX_LINE + 1;
  text[o++] = '\n';
  parse_bad_n(text, o, 2, "line is longer than 4096 bytes (4097)");

  /* A 100 KB value still gives one short message. */
  o = 0;
  memcpy(text + o, "\n\nname = ", 9);
  o += 9;
  memset(text + o, 'n', 100000);
  o += 100000;
  parse_bad_n(text, o, 3, "line is longer than 4096 bytes");

  /* A long value that fits the line limit is cut in the message. */
  o = 0;
  memcpy(text + o, "name = ", 7);
  memset(text + 7, 'n', 4000);
  o = 4007;
  parse_bad_n(text, o, 1, "bad name \"nnnnnnnnnn");
  parse_bad_n(text, o, 1, "nnn...\"");
  free(text);
}

static void test_nul_bytes(void) {
  static const char text1[] = "name = bob\nlisten = y\0es\nidentity = x\n";
  static const char text2[] = "name = bob\n\0";
  static const char text3[] = "\0";

  parse_bad_n(text1, sizeof(text1) - 1, 2, "NUL byte at column 11");
  parse_bad_n(text2, sizeof(text2) - 1, 2, "NUL byte at column 1");
  parse_bad_n(text3, 1, 1, "NUL byte");
}

/* Builds |count| lines "PREFIX<i>SUFFIX\n" into a malloc'd string. */
static char *repeat_lines(const char *prefix, const char *suffix, int count) {
  size_t size = (size_t)count * (strlen(prefix) + strlen(suffix) + 16) + 1;
  char *text = malloc(size);
  size_t o = 0;

  if (text == NULL) {
    return NULL;
  }
  text[0] = '\0';
  for (int i = 0; i < count; i++) {
    o +=
        (size_t)snprintf(text + o, size - o, "%s%d%s\n", prefix, i + 1, suffix);
  }
  return text;
}

static void test_list_limits(void) {
  static const struct {
    const char *prefix;
    const char *suffix;
    const char *needle;
  } lists[] = {
      {"forward = ", ":bob:22", "more than 64 \"forward\" lines"},
      {"allow = host", ":22", "more than 64 \"allow\" lines"},
      {"allow-command = /bin/prog", "", "more than 64 \"allow-command\" lines"},
  };

  for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
    char *text =
        repeat_lines(lists[i].prefix, lists[i].suffix, CLI_CONFIG_MAX_LIST + 1);
    char *last;
    cli_config c;

    CHECK(text != NULL);
    if (text == NULL) {
      continue;
    }
    parse_bad(text, CLI_CONFIG_MAX_LIST + 1, lists[i].needle);
    /* Without the last line, all 64 are taken. */
    last = text + strlen(text) - 1;
    while (last > text && last[-1] != '\n') {
      last--;
    }
    *last = '\0';
    parse_ok(&c, text);
    CHECK(c.nforward + c.nallow + c.nallow_command == CLI_CONFIG_MAX_LIST);
    CHECK(c.allow[c.nallow] == NULL);
    CHECK(c.allow_command[c.nallow_command] == NULL);
    cli_config_free(&c);
    free(text);
  }
}

static void test_arg_limit(void) {
  char text[2048];
  size_t o = 0;
  cli_config c;

  o += (size_t)snprintf(text, sizeof(text), "name = bob\nforward = :bob:");
  for (int i = 0; i < CLI_CONFIG_MAX_ARGS; i++) {
    text[o++] = ' ';
    text[o++] = 'a';
  }
  text[o] = '\0';
  parse_ok(&c, text);
  CHECK(c.nforward == 1 && c.forward[0].argc == CLI_CONFIG_MAX_ARGS);
  cli_config_free(&c);
  memcpy(text + o, " b\n", 4);
  parse_bad(text, 2, "more than 256 arguments");
}

static void test_file_size_limit(void) {
  size_t limit = CLI_CONFIG_MAX_BYTES;
  char *text = malloc(limit + 1);
  cli_config c;
  char err[256];

  CHECK(text != NULL);
  if (text == NULL) {
    return;
  }
  /* Exactly 1 MiB of short comment lines is fine. */
  for (size_t i = 0; i < limit + 1; i++) {
    text[i] = (i % 64 == 63) ? '\n' : '#';
  }
  cli_config_init(&c);
  CHECK(cli_config_parse(&c, text, limit, FILENAME, err, sizeof(err)) == 0);
  CHECK(cli_config_parse(&c, text, limit + 1, FILENAME, err, sizeof(err)) ==
        -1);
  CHECK(strncmp(err, FILENAME ": the file is larger than 1 MiB",
                strlen(FILENAME ": the file is larger than 1 MiB")) == 0);
  cli_config_free(&c);
  free(text);
}

/* ---- files ---- */

/* Writes |len| bytes to a new temporary file; returns its path (static
 * buffer of the caller) or NULL. */
static const char *write_temp(char path[64], const char *text, size_t len) {
  int fd;

  snprintf(path, 64, "/tmp/natter-test-config-XXXXXX");
  fd = mkstemp(path);
  if (fd < 0) {
    return NULL;
  }
  if (write(fd, text, len) != (ssize_t)len) {
    close(fd);
    unlink(path);
    return NULL;
  }
  close(fd);
  return path;
}

static void test_load(void) {
  char path[64];
  char err[512];
  char prefix[128];
  cli_config c;

  CHECK(write_temp(path, "name = bob\nlisten = on\n", 23) != NULL);
  cli_config_init(&c);
  CHECK(cli_config_load(&c, path, 0, err, sizeof(err)) == 0);
  CHECK(c.name && strcmp(c.name, "bob") == 0 && c.listen == 1);
  cli_config_free(&c);
  unlink(path);

  /* Errors name the path. */
  CHECK(write_temp(path, "name = bob\nlisten = ja\n", 23) != NULL);
  cli_config_init(&c);
  CHECK(cli_config_load(&c, path, 1, err, sizeof(err)) == -1);
  snprintf(prefix, sizeof(prefix), "%s:2: bad listen", path);
  CHECK(strncmp(err, prefix, strlen(prefix)) == 0);
  cli_config_free(&c);
  unlink(path);

  /* A missing file is fine only when asked. */
  cli_config_init(&c);
  CHECK(cli_config_load(&c, "/nonexistent/natter.conf", 1, err, sizeof(err)) ==
        1);
  CHECK(c.name_set == 0 && c.nforward == 0);
  CHECK(cli_config_load(&c, "/nonexistent/natter.conf", 0, err, sizeof(err)) ==
        -1);
  CHECK(strcmp(err, "/nonexistent/natter.conf: cannot open it: No such file "
                    "or directory") == 0);

  /* A directory cannot be read. */
  CHECK(cli_config_load(&c, "/tmp", 1, err, sizeof(err)) == -1);
  CHECK_STR_CONTAINS(err, "/tmp: cannot read it: Is a directory");
  cli_config_free(&c);

  /* A file over the limit is refused before it is parsed. */
  {
    size_t big = CLI_CONFIG_MAX_BYTES + 1;
    char *text = malloc(big);
    CHECK(text != NULL);
    if (text != NULL) {
      memset(text, '\n', big);
      CHECK(write_temp(path, text, big) != NULL);
      cli_config_init(&c);
      CHECK(cli_config_load(&c, path, 0, err, sizeof(err)) == -1);
      snprintf(prefix, sizeof(prefix), "%s: the file is larger than 1 MiB",
               path);
      CHECK(strncmp(err, prefix, strlen(prefix)) == 0);
      cli_config_free(&c);
      unlink(path);
      free(text);
    }
  }
}

static void test_example_file(void) {
  static const char *const keys[] = {
      "server",
      "name",
      "broker",
      "identity",
      "broker-key",
      "timeout",
      "log-level",
      "listen",
      "port",
      "allow",
      "allow-command",
      "forward",
      "allow-peer",
      "token-file",
      "registry",
      "name-expiry",
      "admitted-keys",
      "max-commands",
      "max-commands-per-peer",
  };
  const char *path = NATTER_SOURCE_DIR "/examples/natter.conf";
  char err[512] = "";
  cli_config c;
  FILE *f;
  char *text;
  size_t len;

  cli_config_init(&c);
  if (cli_config_load(&c, path, 0, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    nt_test_failures++;
  }
  /* A client that listens and forwards: what the CLI accepts. */
  CHECK(c.name != NULL && c.broker != NULL && c.server == NULL);
  CHECK(c.listen == 1 && c.nallow > 0 && c.nallow_command > 0);
  CHECK(c.nforward > 0);
  cli_config_free(&c);

  /* Every key is shown, set or (server) in a comment. */
  f = fopen(path, "r");
  CHECK(f != NULL);
  if (f == NULL) {
    return;
  }
  text = calloc(1, 65536);
  len = text ? fread(text, 1, 65535, f) : 0;
  fclose(f);
  CHECK(len > 0);
  for (size_t i = 0; text && i < sizeof(keys) / sizeof(keys[0]); i++) {
    char needle[64];
    snprintf(needle, sizeof(needle), "\n%s = ", keys[i]);
    if (strstr(text, needle) == NULL) {
      snprintf(needle, sizeof(needle), "#   %s = ", keys[i]);
    }
    CHECK_STR_CONTAINS(text, needle);
  }
  free(text);
}

/* ---- robustness ---- */

static void test_small_error_buffers(void) {
  static const char text[] = "listen = \"\x01\x02 very bad value, quite long\"";
  cli_config c;
  char buf[16];

  for (size_t errlen = 0; errlen < sizeof(buf); errlen++) {
    memset(buf, 'Z', sizeof(buf));
    cli_config_init(&c);
    CHECK(cli_config_parse(&c, text, sizeof(text) - 1, FILENAME, buf, errlen) ==
          -1);
    if (errlen > 0) {
      CHECK(strlen(buf) == errlen - 1);
    }
    for (size_t i = errlen; i < sizeof(buf); i++) {
      CHECK(buf[i] == 'Z');
    }
    cli_config_free(&c);
  }
  /* A file name with control bytes still gives one line. */
  {
    char err[256];
    cli_config_init(&c);
    CHECK(cli_config_parse(&c, "x", 1, "a\nb\x1b.conf", err, sizeof(err)) ==
          -1);
    CHECK(strncmp(err, "a\\x0ab\\x1b.conf:1: ", 19) == 0);
    cli_config_free(&c);
  }
  /* Control bytes in a value are escaped. */
  parse_bad("name = a\x1b[2Jb", 1, "bad name \"a\\x1b[2Jb\"");
}

/* Deterministic bytes so that a failure reproduces. */
static uint32_t rng_state;

static uint32_t rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* Checks one parse of arbitrary bytes: no crash, and a sane result.
 * Returns 1 when the text was accepted. */
static int fuzz_one(const char *text, size_t len) {
  cli_config c;
  char err[128 + 8];
  size_t errlen = 16 + rng_next() % 113;
  int rc;

  memset(err, 'Z', sizeof(err));
  cli_config_init(&c);
  rc = cli_config_parse(&c, text, len, "fuzz.conf", err, errlen);
  CHECK(rc == 0 || rc == -1);
  if (rc == 0) {
    CHECK(err[0] == '\0');
    for (size_t i = 0; i < c.nforward; i++) {
      CHECK(c.forward[i].spec != NULL);
      CHECK(c.forward[i].argv == NULL ||
            (c.forward[i].argc > 0 &&
             c.forward[i].argv[c.forward[i].argc] == NULL));
    }
    CHECK(c.allow[c.nallow] == NULL);
  } else {
    CHECK(strncmp(err, "fuzz.conf", 9) == 0);
    CHECK(strlen(err) < errlen);
    CHECK(strchr(err, '\n') == NULL);
  }
  for (size_t i = errlen; i < sizeof(err); i++) {
    CHECK(err[i] == 'Z');
  }
  cli_config_free(&c);
  return rc == 0;
}

/* Appends a random piece of |pieces| (now and then a random byte instead)
 * to |text|, keeping room for a NUL. */
static void fuzz_append(char *text, size_t *len, size_t size,
                        const char *const *pieces, size_t npieces) {
  const char *piece = pieces[rng_next() % npieces];
  size_t n = strlen(piece);

  if (rng_next() % 10 == 0 && *len + 1 < size) {
    text[(*len)++] = (char)rng_next();
  } else if (*len + n < size) {
    memcpy(text + *len, piece, n);
    *len += n;
  }
}

static void test_fuzz(void) {
  /* Pieces that make inputs close to valid, so that the fuzzing reaches past
   * the first checks: whole lines built from keys and plausible values. */
  static const char *const keys[] = {
      "server",    "name",   "broker", "identity",      "broker-key", "timeout",
      "log-level", "listen", "allow",  "allow-command", "forward",    "lsten",
  };
  static const char *const pieces[] = {
      " ",     "\t",     "\r",    "\"",           "'",     "\\",
      "#",     ":",      "=",     "8022",         "bob",   "22",
      "*",     "yes",    "debug", "3600",         ":bob:", "8022:bob:22",
      "[::1]", "sh -c ", FP,      "\xef\xbb\xbf", "a b",   "1.2.3.4",
      "\\\"",  "''",
  };
  const size_t nkeys = sizeof(keys) / sizeof(keys[0]);
  const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
  char text[2048];
  int accepted = 0;

  rng_state = 0x6e617474; /* "natt" */
  for (int round = 0; round < 5000; round++) {
    size_t len = 0;
    int kind = (int)(rng_next() % 3);
    char **argv = NULL;
    size_t argc = 0;
    char err[64];

    if (kind == 0) {
      /* Random bytes. */
      len = rng_next() % 300;
      for (size_t i = 0; i < len; i++) {
        text[i] = (char)rng_next();
      }
    } else if (kind == 1) {
      /* Random pieces. */
      int count = (int)(rng_next() % 40);
      for (int i = 0; i < count; i++) {
        fuzz_append(text, &len, sizeof(text), pieces, npieces);
      }
    } else {
      /* "key = value" lines with values made of pieces. */
      int lines = (int)(rng_next() % 3) + 1;
      for (int i = 0; i < lines && len + 200 < sizeof(text); i++) {
        const char *key = keys[rng_next() % nkeys];
        int count = (int)(rng_next() % 3) + 1;
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s = ", key);
        for (int j = 0; j < count; j++) {
          fuzz_append(text, &len, sizeof(text) - 2, pieces, npieces);
        }
        text[len++] = '\n';
      }
    }
    if (fuzz_one(text, len) && len > 0) {
      accepted++;
    }

    text[len] = '\0';
    if (cli_split_argv(text, &argv, &argc, err, sizeof(err)) == 0) {
      CHECK(argv != NULL && argv[argc] == NULL);
    } else {
      CHECK(argv == NULL && err[0] != '\0' && strchr(err, '\n') == NULL);
    }
    cli_argv_free(argv);
  }
  /* The inputs reach past the first checks often enough to mean something. */
  CHECK(accepted >= 100);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"every_key", test_every_key},
      {"empty_and_unset", test_empty_and_unset},
      {"values", test_values},
      {"broker_keys", test_broker_keys},
      {"errors", test_errors},
      {"allow_rules", test_allow_rules},
      {"duplicates", test_duplicates},
      {"first_error_wins", test_first_error_wins},
      {"no_trailing_newline", test_no_trailing_newline},
      {"crlf", test_crlf},
      {"comments_and_blanks", test_comments_and_blanks},
      {"quoted_values", test_quoted_values},
      {"bom", test_bom},
      {"split_argv", test_split_argv},
      {"split_shell_words", test_split_shell_words},
      {"forward_commands", test_forward_commands},
      {"long_lines", test_long_lines},
      {"nul_bytes", test_nul_bytes},
      {"list_limits", test_list_limits},
      {"arg_limit", test_arg_limit},
      {"file_size_limit", test_file_size_limit},
      {"load", test_load},
      {"example_file", test_example_file},
      {"small_error_buffers", test_small_error_buffers},
      {"fuzz", test_fuzz},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
