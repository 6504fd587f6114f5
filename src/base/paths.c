#include "base/paths.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* $HOME when it is an absolute path, else the password database's; NULL
 * when neither gives one. */
static const char *home_dir(const char *home) {
  if (!home || home[0] != '/') {
    struct passwd *pw = getpwuid(getuid());
    home = pw ? pw->pw_dir : NULL;
  }
  return home && home[0] == '/' ? home : NULL;
}

int nt_default_key_path(char *out, size_t outlen, const char *file) {
  const char *xdg = getenv("XDG_CONFIG_HOME");
  int n;

  if (xdg && xdg[0] == '/') {
    n = snprintf(out, outlen, "%s/natter/%s", xdg, file);
  } else {
    const char *home = home_dir(getenv("HOME"));
    if (!home) {
      return -1;
    }
    n = snprintf(out, outlen, "%s/.config/natter/%s", home, file);
  }
  return (n > 0 && (size_t)n < outlen) ? 0 : -1;
}

int nt_default_registry_path(char *out, size_t outlen) {
  const char *state = getenv("STATE_DIRECTORY");
  const char *xdg = getenv("XDG_STATE_HOME");
  int n;

  if (state && state[0] == '/') {
    /* systemd may list several directories, ':'-separated: the first. */
    size_t len = strcspn(state, ":");
    n = snprintf(out, outlen, "%.*s/registry.db", (int)len, state);
  } else if (xdg && xdg[0] == '/') {
    n = snprintf(out, outlen, "%s/natter/registry.db", xdg);
  } else {
    const char *home = home_dir(getenv("HOME"));
    if (!home) {
      return -1;
    }
    n = snprintf(out, outlen, "%s/.local/state/natter/registry.db", home);
  }
  return (n > 0 && (size_t)n < outlen) ? 0 : -1;
}
