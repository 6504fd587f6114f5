/* The command line: flags and forward SPECs into a cli_config, by the
 * settings table; natter -h and --version. */
#include "app.h"

#include <stdio.h>
#include <string.h>

#include "usage.h"

int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "natter: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nrun 'natter -h' for usage\n");
  return 2;
}

/* Reports a bad -allow / -allow-command rule as
 * natter: FLAG "RULE": REASON
 * with RULE cut and its control and non-ASCII bytes escaped, so that the
 * message stays one line. Returns the exit code for a bad command line. */
static int rule_error(const char *flag, const char *rule, const char *reason) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;

  fprintf(stderr, "natter: %s \"", flag);
  for (; rule[n] != '\0' && n < 80; n++) {
    unsigned char ch = (unsigned char)rule[n];
    if (ch == '"' || ch == '\\') {
      fprintf(stderr, "\\%c", ch);
    } else if (ch >= 0x20 && ch < 0x7f) {
      fputc(ch, stderr);
    } else {
      fprintf(stderr, "\\x%c%c", hex[ch >> 4], hex[ch & 0xf]);
    }
  }
  fprintf(stderr, "%s\": %s\n", rule[n] != '\0' ? "..." : "", reason);
  return 2;
}

/* A spec on the command line, |argv[i]|; "LOCALPORT:PEER:" runs a
 * command on PEER: the rest of the command line is that command. Returns
 * -1 to go on, 0 when it took the rest, or an exit code. */
static int add_spec(cli_config *o, int argc, char **argv, int i) {
  const char *a = argv[i];
  size_t len = strlen(a);
  int is_command = len > 1 && a[len - 1] == ':';
  int rv;

  if (is_command && i + 1 >= argc) {
    return usage_error("spec %s needs a command after it", a);
  }
  rv = cli_config_add_forward(o, a, is_command ? &argv[i + 1] : NULL, 0);
  if (rv == -2) {
    return usage_error("too many forwards (at most %s)", "64");
  }
  if (rv != 0) {
    fprintf(stderr, "natter: out of memory\n");
    return 1;
  }
  return is_command ? 0 : -1;
}

/* Returns -1 to go on, or an exit code. */
int parse_flags(cli_config *o, int argc, char **argv) {
  char why[300], msg[500];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *value = NULL;
    const cli_setting *s;
    int rv;

    if (a[0] != '-' || a[1] == '\0') {
      rv = add_spec(o, argc, argv, i);
      if (rv == 0) {
        break;
      }
      if (rv > 0) {
        return rv;
      }
      continue;
    }
    s = cli_setting_by_flag(a);
    if (s == NULL) {
      return usage_error("unknown flag %s", a);
    }
    if (s->type == CLI_T_OPTIONAL_ADDR) {
      if (i + 1 < argc && argv[i + 1][0] != '-') {
        value = argv[++i];
      }
    } else if (s->arg != NULL) {
      if (i + 1 >= argc) {
        return usage_error("flag %s needs a value", a);
      }
      value = argv[++i];
    }
    rv = cli_setting_set(o, s, value, (size_t)i, 0, why, sizeof(why));
    if (rv == -2) {
      return usage_error("too many %s flags (at most 64)", s->flag);
    }
    if (rv != 0) {
      switch (s->type) {
      case CLI_T_ALLOW_RULES:
      case CLI_T_COMMAND_RULES:
      case CLI_T_PEER_RULES:
      case CLI_T_PEER:
        return rule_error(a, value, why);
      default:
        snprintf(msg, sizeof(msg), "bad %s \"%.80s\": %s", s->flag, value, why);
        return usage_error("%s", msg);
      }
    }
    if (s == &cli_settings[CLI_S_RSH]) {
      return parse_rsh(o, argc - i - 1, argv + i + 1);
    }
    if (s == &cli_settings[CLI_S_HELP]) {
      cli_usage(stdout);
      return 0;
    }
    if (s == &cli_settings[CLI_S_VERSION]) {
      printf("natter %s\n", natter_version());
      return 0;
    }
  }
  return -1;
}
