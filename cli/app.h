/* The running natter command: its state, shared by the files of the
 * program, and what each of them does for natter.c (main and the dispatch
 * to a mode). One file per job:
 *   flags.c      the command line -> cli_config; usage errors
 *   log_sink.c   log lines to stderr (text or JSON, journald priorities)
 *   run.c        cli_config -> the library's client or broker config, run
 *   check.c      natter -check
 *   status.c     natter -status
 *   admin.c      natter -list and -release
 *   reload.c     SIGHUP: re-read the configuration file
 *   rsh.c        natter -rsh: ssh's calling convention -> a command forward */
#ifndef NATTER_CLI_APP_H
#define NATTER_CLI_APP_H

#include <event2/event.h>
#include <stddef.h>

#include "natter.h"
#include "settings.h"

/* Where log lines go: stderr, as text or JSON, with a timestamp unless
 * a terminal (a person watching) or journald (which stamps lines itself)
 * reads them. */
typedef struct log_sink {
  int json;
  int timestamps;
  int journald; /* stderr is the journal's stream: "<N>" level prefixes */
} log_sink;

typedef struct cli {
  struct event_base *base;
  int exit_code;
  natter_forward *session; /* the stdin/stdout forward, if any */
  log_sink sink;
  /* SIGHUP reload (clients): the command line, what the file said last,
   * and the forward each of its forward lines made. */
  const cli_config *flags;
  const cli_config *o; /* the settings in force: flags over the file */
  natter_client *client;
  natter_log_level level;
  const char *config_path;
  cli_config file;
  natter_forward *file_forwards[CLI_CONFIG_MAX_LIST];
  int checking; /* -check: the check's callback ends the run */
} cli;

/* ---- natter.c ---- */

/* SIGINT and SIGTERM: ends the loop of |arg|, a cli. */
void on_signal(evutil_socket_t sig, short what, void *arg);

/* ---- flags.c ---- */

/* Prints "natter: " |fmt| (with |arg|) and the hint to run natter -h.
 * Returns 2, the exit code of a bad command line. */
int usage_error(const char *fmt, const char *arg);

/* Parses the command line into |o|: flags and forward SPECs. Prints the
 * help or the version when asked. Returns -1 to go on, or an exit code. */
int parse_flags(cli_config *o, int argc, char **argv);

/* ---- rsh.c ---- */

#define CLI_RSH_SPEC_MAX 72 /* ":HOST:" with a name of up to 63 bytes */

/* Parses what follows -rsh on the command line, |argc| words of |argv| in
 * ssh's convention ([OPTIONS] [USER@]HOST COMMAND...), into the stdin/stdout
 * command forward ":HOST: ARGV..." of |o|. Prints what is wrong. Returns -1
 * to go on, or an exit code (0 for git's -G probe, 255 for a refusal, as
 * ssh). */
int parse_rsh(cli_config *o, int argc, char **argv);

/* ---- log_sink.c ---- */

/* Sets |sink| up for the log format |format| ("json", or text) and for
 * what reads stderr. */
void sink_init(log_sink *sink, const char *format);

/* natter_log_fn for the library, and the CLI's own lines; |user_data| is
 * the cli. */
void cli_log(natter_log_level level, const char *line, void *user_data);

/* ---- run.c ---- */

/* What every client session takes from the options: who we are, how to
 * reach the broker, how long to try a peer, and where events go. */
void client_basics(natter_client_config *cfg, cli *app, const cli_config *o,
                   natter_log_level level);

/* Runs a broker, or a client (listener and forwards), until the loop
 * ends. Return the exit code. */
int run_broker(cli *app, const cli_config *o, natter_log_level level);
/* Adds the forward |fw|; a socks: spec gets o's socks-auth file, which
 * a spec cannot carry. Returns 0 or a NATTER_ERR_* with |err| set. */
int cli_add_forward(natter_client *c, const cli_config *o,
                    const cli_forward *fw, natter_forward **pforward, char *err,
                    size_t errlen);
int run_client(cli *app, const cli_config *o, natter_log_level level,
               int level_given, size_t nstdio);

/* ---- check.c, status.c, admin.c: the modes that run and exit ---- */

/* natter -check, with the settings in force |o| and the command line
 * |flags|. Returns the exit code. */
int main_check(cli *app, cli_config *o, const cli_config *flags,
               natter_log_level level);

/* natter -status. Returns the exit code. */
int main_status(cli *app, const cli_config *o);

/* natter -list / -release. Returns the exit code. */
int run_registry_admin(const cli_config *o);

/* ---- reload.c ---- */

/* SIGHUP: re-reads the configuration file; |arg| is the cli. */
void on_hup(evutil_socket_t sig, short what, void *arg);

#endif
