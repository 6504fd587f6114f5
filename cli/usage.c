/* natter -h: the usage text, and the flags of the settings table wrapped
 * to the terminal's usual width. */
#include "usage.h"

#include "settings.h"

#include <stdio.h>

static const char usage_text[] =
    "usage:\n"
    "  natter -server [ADDR]:PORT                          run a broker\n"
    "  natter -name NAME -broker HOST:PORT -listen -allow-peer PEER\n"
    "                                                      accept forwards\n"
    "  natter -name NAME -broker HOST:PORT SPEC...         forward ports\n"
    "  natter [-registry FILE] -list | -release NAME       manage a broker's "
    "names\n"
    "  natter -status [HOST:PORT] [-json]                  show a status "
    "page\n"
    "  natter -name NAME -broker HOST:PORT -check PEER [-json]\n"
    "                                                      check the way to "
    "PEER\n"
    "\n"
    "SPEC:\n"
    "  LOCALPORT:PEER:PORT        127.0.0.1:LOCALPORT -> PORT on PEER's "
    "loopback\n"
    "  LOCALPORT:PEER:HOST:PORT   127.0.0.1:LOCALPORT -> HOST:PORT as PEER "
    "reaches it\n"
    "                             (HOST may be [IPv6]; PEER must -allow it)\n"
    "  :PEER:PORT, :PEER:HOST:PORT  this process's stdin/stdout instead of a "
    "port\n"
    "  LOCALPORT:PEER: CMD ARGS...  each connection runs CMD on PEER (PEER "
    "must\n"
    "                             -allow-command that command line); must be "
    "the\n"
    "                             last spec\n"
    "  :PEER: CMD ARGS...         stdin/stdout piped into CMD on PEER; exits "
    "with\n"
    "                             CMD's status\n"
    "\n"
    "flags:\n";

/* After the flags (cli_settings_usage). */
static const char usage_example[] =
    "\n"
    "example:\n"
    "  broker> natter -server :10000\n"
    "  bob>    natter -name bob   -broker 1.2.3.4:10000 -listen -allow-peer "
    "alice\n"
    "  alice>  natter -name alice -broker 1.2.3.4:10000 8022:bob:22\n"
    "  alice>  ssh -p 8022 user@localhost\n";

#define USAGE_WIDTH 79
#define USAGE_TEXT_COLUMN 23

/* Writes |text| from column |col| on, wrapped to USAGE_WIDTH with
 * continuation lines at USAGE_TEXT_COLUMN. A word starting with '-' never
 * starts a line: readers of `natter -h` take such a line for a flag. */
static void usage_wrap(FILE *out, size_t col, const char *text) {
  const char *w = text;
  int first = 1;

  while (*w != '\0') {
    const char *end = w;
    while (*end == ' ') {
      end++;
    }
    /* One unit: a word, or a word and the '-' words that follow it. */
    do {
      while (*end == ' ') {
        end++;
      }
      while (*end != '\0' && *end != ' ') {
        end++;
      }
    } while (end[0] == ' ' && end[1] == '-');
    size_t len = (size_t)(end - w);
    while (len > 0 && *w == ' ') {
      w++;
      len--;
    }
    if (!first && col + 1 + len > USAGE_WIDTH) {
      fprintf(out, "\n%*s", USAGE_TEXT_COLUMN, "");
      col = USAGE_TEXT_COLUMN;
    } else if (!first) {
      fputc(' ', out);
      col++;
    }
    fwrite(w, 1, len, out);
    col += len;
    first = 0;
    w = end;
  }
  fputc('\n', out);
}

void cli_settings_usage(FILE *out) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    char head[80], text[1024];
    int n;

    if (s->flag == NULL) {
      continue;
    }
    n = snprintf(head, sizeof(head), "  %s", s->flag);
    for (size_t j = 0; j < cli_flag_alias_count; j++) {
      if (cli_flag_aliases[j].shown &&
          cli_flag_aliases[j].id == (cli_setting_id)i) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, ", %s",
                      cli_flag_aliases[j].alias);
      }
    }
    if (s->arg != NULL) {
      snprintf(head + n, sizeof(head) - (size_t)n, " %s", s->arg);
    }
    if (s->def != NULL) {
      snprintf(text, sizeof(text), "%s (default %s)", s->help, s->def);
    } else {
      snprintf(text, sizeof(text), "%s", s->help);
    }
    n = fprintf(out, "%-*s", USAGE_TEXT_COLUMN - 2, head);
    fputs("  ", out);
    usage_wrap(out, (size_t)n + 2, text);
  }
}

void cli_usage(FILE *out) {
  fputs(usage_text, out);
  cli_settings_usage(out);
  fputs(usage_example, out);
}
