#include "base/textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "natter.h"

void nt_textfile_set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || errlen == 0) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int nt_textfile_read(const char *path, const char *what, size_t max_bytes,
                     char **pdata, size_t *plen, struct stat *st, char *err,
                     size_t errlen) {
  struct stat sb;
  char *data;
  size_t len = 0;
  int fd;

  *pdata = NULL;
  *plen = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 && errno == ENOENT) {
    return 1;
  }
  if (fd < 0) {
    nt_textfile_set_err(err, errlen,
                        "cannot open %s %s (%s): check its path "
                        "and permissions",
                        what, path, strerror(errno));
    return NATTER_ERR_INVALID;
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    nt_textfile_set_err(err, errlen, "%s %s is not a regular file", what, path);
    close(fd);
    return NATTER_ERR_INVALID;
  }
  if ((uint64_t)sb.st_size > max_bytes) {
    nt_textfile_set_err(err, errlen,
                        "%s %s is too large (%lld bytes, at most %zu)", what,
                        path, (long long)sb.st_size, max_bytes);
    close(fd);
    return NATTER_ERR_INVALID;
  }
  data = malloc(max_bytes + 1);
  if (data == NULL) {
    nt_textfile_set_err(err, errlen, "cannot read %s %s: out of memory", what,
                        path);
    close(fd);
    return NATTER_ERR_NOMEM;
  }
  /* Read up to one byte past the bound: the file may have grown since
   * fstat. */
  for (;;) {
    ssize_t n = read(fd, data + len, max_bytes + 1 - len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      nt_textfile_set_err(err, errlen, "cannot read %s %s (%s)", what, path,
                          strerror(errno));
      goto fail;
    }
    if (n == 0) {
      break;
    }
    len += (size_t)n;
    if (len > max_bytes) {
      nt_textfile_set_err(err, errlen, "%s %s is too large (at most %zu bytes)",
                          what, path, max_bytes);
      goto fail;
    }
  }
  close(fd);
  if (memchr(data, '\0', len) != NULL) {
    nt_textfile_set_err(err, errlen,
                        "%s %s holds a NUL byte: it is not a text file", what,
                        path);
    free(data);
    return NATTER_ERR_INVALID;
  }
  data[len] = '\0';
  if (st != NULL) {
    *st = sb;
  }
  *pdata = data;
  *plen = len;
  return 0;

fail:
  close(fd);
  free(data);
  return NATTER_ERR_INVALID;
}

int nt_textfile_make_parent_dirs(const char *path, const char *what, char *err,
                                 size_t errlen) {
  const char *slash = strrchr(path, '/');
  size_t dirlen;
  char *dir;
  int rv = 0;

  if (slash == NULL || slash == path) {
    return 0; /* the current directory or "/" */
  }
  dirlen = (size_t)(slash - path);
  dir = strndup(path, dirlen);
  if (dir == NULL) {
    nt_textfile_set_err(err, errlen, "cannot create %s %s: out of memory", what,
                        path);
    return NATTER_ERR_NOMEM;
  }
  /* Each prefix ending before a '/', then the whole directory; mkdir()
   * leaves existing components alone (EEXIST). */
  for (size_t i = 1; i <= dirlen && rv == 0; i++) {
    if (i < dirlen && dir[i] != '/') {
      continue;
    }
    dir[i] = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      nt_textfile_set_err(err, errlen,
                          "cannot create directory %s for %s %s (%s): create "
                          "it or choose another path",
                          dir, what, path, strerror(errno));
      rv = NATTER_ERR_INVALID;
    }
    if (i < dirlen) {
      dir[i] = '/';
    }
  }
  free(dir);
  return rv;
}

int nt_textfile_write_all(int fd, const void *data, size_t len) {
  const char *buf = data;
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

void nt_textfile_sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  int fd;

  if (slash == NULL) {
    dir = strdup(".");
  } else if (slash == path) {
    dir = strdup("/");
  } else {
    dir = strndup(path, (size_t)(slash - path));
  }
  if (dir == NULL) {
    return;
  }
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

int nt_textfile_write_atomic(const char *path, const char *what,
                             const char *data, size_t len, char *err,
                             size_t errlen) {
  size_t tmplen = strlen(path) + sizeof(".tmp-XXXXXX");
  char *tmp;
  int fd, rv;

  rv = nt_textfile_make_parent_dirs(path, what, err, errlen);
  if (rv != 0) {
    return rv;
  }
  tmp = malloc(tmplen);
  if (tmp == NULL) {
    nt_textfile_set_err(err, errlen, "cannot write %s %s: out of memory", what,
                        path);
    return NATTER_ERR_NOMEM;
  }
  snprintf(tmp, tmplen, "%s.tmp-XXXXXX", path);
  /* mkostemp: O_EXCL and mode 0600 from the start, so nothing planted at
   * the temporary name is written through and no one reads it meanwhile. */
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    nt_textfile_set_err(err, errlen,
                        "cannot create %s %s (%s): check that its directory "
                        "is writable",
                        what, path, strerror(errno));
    free(tmp);
    return NATTER_ERR_INVALID;
  }
  if (fchmod(fd, 0600) != 0 || nt_textfile_write_all(fd, data, len) != 0 ||
      fsync(fd) != 0) {
    nt_textfile_set_err(err, errlen, "cannot write %s %s (%s)", what, path,
                        strerror(errno));
    close(fd);
    goto fail;
  }
  if (close(fd) != 0) {
    nt_textfile_set_err(err, errlen, "cannot write %s %s (%s)", what, path,
                        strerror(errno));
    goto fail;
  }
  if (rename(tmp, path) != 0) {
    nt_textfile_set_err(err, errlen, "cannot replace %s %s (%s)", what, path,
                        strerror(errno));
    goto fail;
  }
  nt_textfile_sync_parent_dir(path);
  free(tmp);
  return 0;

fail:
  unlink(tmp);
  free(tmp);
  return NATTER_ERR_INVALID;
}

int nt_textfile_next_line(const char *data, size_t len, size_t *pos,
                          const char **line, size_t *linelen) {
  const char *start, *nl;
  size_t n;

  if (*pos >= len) {
    return 0;
  }
  start = data + *pos;
  nl = memchr(start, '\n', len - *pos);
  n = nl ? (size_t)(nl - start) : len - *pos;
  *pos += n + (nl ? 1 : 0);
  if (n > 0 && start[n - 1] == '\r') {
    n--;
  }
  *line = start;
  *linelen = n;
  return 1;
}
