/* natter -list and -release: a broker's name registry, read or changed
 * without a broker. */
#include "app.h"

#include <stdio.h>
#include <time.h>

static int print_entry(const natter_registry_entry *e, void *ud) {
  char first[32], last[32];
  struct tm tm;
  time_t t;
  (void)ud;
  t = (time_t)e->first_seen;
  strftime(first, sizeof(first), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  t = (time_t)e->last_seen;
  strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  printf("%-20s %s %s %s\n", e->name, e->fingerprint, first, last);
  return 0;
}

/* -list / -release: the registry file, without a broker. */
int run_registry_admin(const cli_config *o) {
  char err[600];
  int rv;
  if (o->list) {
    printf("%-20s %-64s %-20s %s\n", "NAME", "FINGERPRINT", "FIRST SEEN",
           "LAST SEEN");
    rv = natter_registry_list(o->registry, print_entry, NULL, err, sizeof(err));
  } else {
    rv = natter_registry_release(o->registry, o->release, err, sizeof(err));
    if (rv == 0) {
      printf("released \"%s\": the next key to check in with it gets it\n",
             o->release);
    }
  }
  if (rv != 0) {
    fprintf(stderr, "natter: %s\n", err);
    return 1;
  }
  return 0;
}
