/* Identity key files: the file-system half of an identity. Creating one must
 * never expose the key (not even for a moment) nor leave a torn file;
 * reading one must refuse a file that someone else could have read or
 * replaced, as ssh does for its keys. */
#include "trust/keyfile.h"

#include "base/textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Names tried for the temporary file before giving up; a clash needs a
 * leftover from a crash with the same 32 random bits. */
#define TMP_NAME_TRIES 8

void nt_keyfile_wipe(uint8_t *data, size_t len) {
  if (data == NULL) {
    return;
  }
  explicit_bzero(data, len);
  free(data);
}

/* ---- reading ---- */

/* The checks run on the open descriptor, not the name, so the file cannot
 * be swapped between the check and the read. */
static int check_key_stat(const struct stat *st, const char *path, char *err,
                          size_t errlen) {
  if (!S_ISREG(st->st_mode)) {
    nt_textfile_set_err(err, errlen,
            "identity key %s is not a regular file: point the key path at a "
            "key file, or " NT_KEYFILE_MOVE_AWAY_HINT,
            path);
    return -1;
  }
  /* Another user could have read the key or put theirs in its place; root
   * can do both anyway, so a file root owns is no worse. */
  if (st->st_uid != geteuid() && st->st_uid != 0) {
    nt_textfile_set_err(err, errlen,
            "identity key %s belongs to uid %u, not to this user (uid %u): "
            "run chown %u %s, or " NT_KEYFILE_MOVE_AWAY_HINT,
            path, (unsigned)st->st_uid, (unsigned)geteuid(),
            (unsigned)geteuid(), path);
    return -1;
  }
  /* As ssh does: any access for group or others means the key may have
   * leaked or been replaced by someone else's. */
  if ((st->st_mode & 077) != 0) {
    nt_textfile_set_err(err, errlen,
            "identity key %s is accessible by group or others (mode %04o): "
            "run chmod 600 %s",
            path, (unsigned)(st->st_mode & 07777), path);
    return -1;
  }
  if (st->st_size > NT_KEYFILE_MAX) {
    nt_textfile_set_err(err, errlen,
            "identity key %s is %lld bytes, more than a key file can be (64 "
            "KiB): check the key path, or " NT_KEYFILE_MOVE_AWAY_HINT,
            path, (long long)st->st_size);
    return -1;
  }
  return 0;
}

int nt_keyfile_read(const char *path, uint8_t **pdata, size_t *plen, char *err,
                    size_t errlen) {
  struct stat st;
  uint8_t *buf = NULL;
  size_t len = 0;
  int fd;

  *pdata = NULL;
  *plen = 0;
  /* O_NONBLOCK: a FIFO at the path must not hang start-up before fstat()
   * can reject it. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) {
      return 1;
    }
    nt_textfile_set_err(err, errlen,
            "cannot open identity key %s (%s): check the path and its "
            "permissions",
            path, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0) {
    nt_textfile_set_err(err, errlen, "cannot read identity key %s (%s)", path,
            strerror(errno));
    goto fail;
  }
  if (check_key_stat(&st, path, err, errlen) != 0) {
    goto fail;
  }

  /* One byte of headroom detects a file that grew after fstat(). */
  buf = malloc(NT_KEYFILE_MAX + 1);
  if (buf == NULL) {
    nt_textfile_set_err(err, errlen, "cannot read identity key %s: out of memory", path);
    goto fail;
  }
  while (len < NT_KEYFILE_MAX + 1) {
    ssize_t n = read(fd, buf + len, NT_KEYFILE_MAX + 1 - len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      nt_textfile_set_err(err, errlen,
              "cannot read identity key %s (%s): check the file and its "
              "permissions",
              path, strerror(errno));
      goto fail;
    }
    if (n == 0) {
      break;
    }
    len += (size_t)n;
  }
  if (len > NT_KEYFILE_MAX) {
    nt_textfile_set_err(err, errlen,
            "identity key %s is more than 64 KiB: check the key path, "
            "or " NT_KEYFILE_MOVE_AWAY_HINT,
            path);
    goto fail;
  }
  /* An empty key is refused, never replaced: a new key is a new identity,
   * and the broker keeps our name bound to the old one. */
  if (len == 0) {
    nt_textfile_set_err(err, errlen,
            "identity key %s is empty: restore it from a backup, "
            "or " NT_KEYFILE_MOVE_AWAY_HINT
            " (peers and the broker will see a new identity)",
            path);
    goto fail;
  }
  close(fd);
  *pdata = buf;
  *plen = len;
  return 0;

fail:
  nt_keyfile_wipe(buf, len);
  close(fd);
  return -1;
}

/* ---- creating ---- */

/* Creates |tmp| (of |tmplen| bytes) as "PATH.tmp-XXXXXXXX", a new file
 * open for writing. O_EXCL: never write a key through a file or symlink
 * someone else planted; 0600 from the start, so the key is never readable
 * by others, not even for a moment. Returns the descriptor or -1 with
 * errno set. */
static int create_tmp(char *tmp, size_t tmplen, const char *path) {
  uint8_t rnd[4];

  for (int i = 0; i < TMP_NAME_TRIES; i++) {
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
      return -1;
    }
    snprintf(tmp, tmplen, "%s.tmp-%02x%02x%02x%02x", path, rnd[0], rnd[1],
             rnd[2], rnd[3]);
    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST) {
      return fd;
    }
  }
  return -1; /* errno is EEXIST */
}

int nt_keyfile_create(const char *path, const uint8_t *data, size_t len,
                      char *err, size_t errlen) {
  size_t tmplen = strlen(path) + sizeof(".tmp-00000000");
  char *tmp;
  int fd, rv = -1;

  if (nt_textfile_make_parent_dirs(path, "identity key", err, errlen) != 0) {
    return -1;
  }
  tmp = malloc(tmplen);
  if (tmp == NULL) {
    nt_textfile_set_err(err, errlen, "cannot create identity key %s: out of memory", path);
    return -1;
  }
  fd = create_tmp(tmp, tmplen, path);
  if (fd < 0) {
    nt_textfile_set_err(err, errlen,
            "cannot create identity key %s (%s): check that its directory "
            "is writable or choose another key path",
            path, strerror(errno));
    free(tmp);
    return -1;
  }
  if (nt_textfile_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    nt_textfile_set_err(err, errlen,
            "cannot write identity key %s (%s): free disk space or choose "
            "another key path",
            path, strerror(errno));
    close(fd);
    goto out;
  }
  if (close(fd) != 0) {
    nt_textfile_set_err(err, errlen,
            "cannot write identity key %s (%s): free disk space or choose "
            "another key path",
            path, strerror(errno));
    goto out;
  }

  /* RENAME_NOREPLACE: two processes starting at once with the same key
   * path must end up with the same identity, not one overwriting the other
   * after it has already been used. Filesystems without the flag get a
   * plain rename. */
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
    rv = 0;
  } else if (errno == EEXIST) {
    rv = 1;
  } else if ((errno == EINVAL || errno == ENOSYS) && rename(tmp, path) == 0) {
    rv = 0;
  } else {
    nt_textfile_set_err(err, errlen,
            "cannot create identity key %s (%s): check that its directory "
            "is writable or choose another key path",
            path, strerror(errno));
  }

out:
  if (rv != 0) {
    unlink(tmp);
  } else {
    /* Durable, so a crash right after the first run cannot lose the key
   * that the broker has already bound to our name. */
  nt_textfile_sync_parent_dir(path);
  }
  free(tmp);
  return rv;
}
