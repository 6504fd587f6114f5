/* natter -status: fetch and print the HTTP/3 status page of a broker or a
 * client. */
#include "app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct status_run {
  cli *app;
  const char *addr;
  int exit_code;
} status_run;

/* Prints what a status page said. The server may be anyone's: control
 * characters other than line ends and tabs are shown as '?'. */
static void print_body(FILE *out, const char *body, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)body[i];
    fputc(ch < 0x20 && ch != '\n' && ch != '\t' ? '?'
          : ch == 0x7f                          ? '?'
                                                : ch,
          out);
  }
  if (len && body[len - 1] != '\n') {
    fputc('\n', out);
  }
}

static void on_status(int error, int status, const char *body, size_t len,
                      void *user_data) {
  status_run *r = user_data;
  if (error != 0) {
    fprintf(stderr, "natter: no status from %s: ", r->addr);
    print_body(stderr, body, len);
    r->exit_code = 1;
  } else if (status != 200) {
    fprintf(stderr, "natter: status from %s: HTTP %d: ", r->addr, status);
    print_body(stderr, body, len);
    r->exit_code = 1;
  } else {
    print_body(stdout, body, len);
    r->exit_code = 0;
  }
  event_base_loopbreak(r->app->base);
}

static int run_status(cli *app, const cli_config *o) {
  char addr[300], keypath[1024];
  const char *identity = o->identity;
  if (o->status) {
    snprintf(addr, sizeof(addr), "%s", o->status);
  } else if (o->port) {
    snprintf(addr, sizeof(addr), "127.0.0.1:%llu", o->port);
  } else if (o->server) {
    const char *colon = strrchr(o->server, ':');
    snprintf(addr, sizeof(addr), "127.0.0.1:%s", colon ? colon + 1 : "");
  } else if (o->broker) {
    /* Of several brokers, the first. */
    snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(o->broker, ","),
             o->broker);
  } else {
    return usage_error("%s", "-status needs HOST:PORT (or -port, -server or "
                             "-broker to take it from)");
  }
  /* This machine's key for that role, as natter would use it. */
  if (!identity && (o->name || o->server)) {
    const char *home = getenv("XDG_CONFIG_HOME");
    if (home && home[0] == '/') {
      snprintf(keypath, sizeof(keypath), "%s/natter/%s.key", home,
               o->server ? "broker" : o->name);
    } else {
      snprintf(keypath, sizeof(keypath), "%s/.config/natter/%s.key",
               getenv("HOME") ? getenv("HOME") : "",
               o->server ? "broker" : o->name);
    }
    if (access(keypath, R_OK) == 0) {
      identity = keypath;
    }
  }
  status_run r = {app, addr, 1};
  natter_status_fetch *f = NULL;
  if (natter_status_fetch_start(&f, app->base, addr, identity, !o->json,
                                on_status, &r) != 0) {
    return 1;
  }
  event_base_dispatch(app->base);
  natter_status_fetch_free(f);
  return r.exit_code;
}

/* -status: print a status page. */
int main_status(cli *app, const cli_config *o) {
  int rv;
  if (!o->status_set) {
    return usage_error("%s", "-json goes with -status or -check");
  }
  if (o->nforward || o->listen) {
    return usage_error("%s", "-status only reads a status page: no specs or "
                             "-listen with it");
  }
  signal(SIGPIPE, SIG_IGN);
  app->base = event_base_new();
  rv = app->base ? run_status(app, o) : 1;
  if (app->base) {
    event_base_free(app->base);
  }
  return rv;
}
