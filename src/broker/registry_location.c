/* Which registry backend a location names (registry.h): a URI, or a plain
 * path as before URIs existed. */
#include <string.h>

#include "base/textfile.h"
#include "broker/registry.h"
#include "natter.h"

#define ACCEPTED                                                               \
  "use sqlite:///PATH (or a plain file path), memory: or postgresql://..."

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Length of a URI scheme ("xyz" in "xyz://..."), or 0 when |s| does not
 * start with SCHEME "://" (RFC 3986 §3.1: a letter, then letters, digits,
 * "+", "-" or "."). */
static size_t scheme_len(const char *s) {
  size_t n = 0;

  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
    return 0;
  }
  while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
         (s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '-' ||
         s[n] == '.') {
    n++;
  }
  return starts_with(s + n, "://") ? n : 0;
}

int nt_registry_parse_location(const char *location,
                               const nt_registry_ops **ops, const char **where,
                               char *err, size_t errlen) {
  size_t n;

  *ops = NULL;
  *where = NULL;
  if (location == NULL || location[0] == '\0') {
    nt_textfile_set_err(err, errlen, "no registry file given");
    return NATTER_ERR_INVALID;
  }
  if (starts_with(location, "memory:")) {
    if (strcmp(location, "memory:") != 0) {
      nt_textfile_set_err(err, errlen,
                          "registry %s: memory: takes no location (write "
                          "./%s for a file of that name)",
                          location, location);
      return NATTER_ERR_INVALID;
    }
    *ops = &nt_registry_memory_ops;
    *where = location + strlen(location);
    return 0;
  }
  if (starts_with(location, "sqlite:")) {
    const char *path = location + strlen("sqlite:");
    /* sqlite:///abs (empty authority) or sqlite:rel; a host has no
     * meaning for a local file. */
    if (starts_with(path, "//")) {
      path += 2;
      if (path[0] != '/') {
        path = "";
      }
    }
    if (path[0] == '\0') {
      nt_textfile_set_err(err, errlen,
                          "registry %s: a sqlite: URI names a local file: "
                          "sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH",
                          location);
      return NATTER_ERR_INVALID;
    }
    *ops = &nt_registry_sqlite_ops;
    *where = path;
    return 0;
  }
  if (starts_with(location, "postgresql:") ||
      starts_with(location, "postgres:")) {
    /* libpq reads the whole URI (registry_pg.c); only its form is
     * checked here. */
    if (!starts_with(location, "postgresql://") &&
        !starts_with(location, "postgres://")) {
      nt_textfile_set_err(err, errlen,
                          "registry %s: write postgresql://[USER@]HOST[:PORT]"
                          "/DATABASE",
                          location);
      return NATTER_ERR_INVALID;
    }
    *ops = &nt_registry_pg_ops;
    *where = location;
    return 0;
  }
  n = scheme_len(location);
  if (n > 0) {
    nt_textfile_set_err(err, errlen,
                        "registry %s: unknown scheme \"%.*s\": " ACCEPTED,
                        location, (int)n, location);
    return NATTER_ERR_INVALID;
  }
  *ops = &nt_registry_sqlite_ops;
  *where = location;
  return 0;
}
