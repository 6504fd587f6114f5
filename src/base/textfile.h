/* Small, bounded text files that natter reads and writes itself: the
 * admitted-keys list, the broker token, the known-brokers file. Reads are
 * size-bounded and whole-file; writes are atomic (temporary file, fsync,
 * rename) with mode 0600, so a reader never sees half a file and a crash
 * leaves either the old or the new contents. Not for large or binary files
 * and not for files that several processes rewrite at the same moment (the
 * last rename wins). */
#ifndef NT_TEXTFILE_H
#define NT_TEXTFILE_H

#include <stddef.h>
#include <sys/stat.h>

/* Reads the regular file at |path| into a NUL-terminated buffer that the
 * caller frees. Refuses files larger than |max_bytes| and files holding a
 * NUL byte. |st| (may be NULL) receives the file's status (for mode
 * checks). |what| names the file in messages ("admitted keys file").
 * Returns 0, 1 when the file does not exist (nothing set in |err|), or
 * a negative NATTER_ERR_* with a one-line reason in |err|. */
int nt_textfile_read(const char *path, const char *what, size_t max_bytes,
                     char **pdata, size_t *plen, struct stat *st, char *err,
                     size_t errlen);

/* Creates the missing directories above |path| with mode 0700; existing
 * ones keep their mode. Returns 0 or a negative NATTER_ERR_* with a reason
 * in |err|. */
int nt_textfile_make_parent_dirs(const char *path, const char *what, char *err,
                                 size_t errlen);

/* Replaces |path| by |len| bytes of |data| atomically, mode 0600, creating
 * the parent directories (0700). Returns 0 or a negative NATTER_ERR_* with
 * a reason in |err|. */
int nt_textfile_write_atomic(const char *path, const char *what,
                             const char *data, size_t len, char *err,
                             size_t errlen);

/* Writes all |len| bytes to |fd| (retrying short writes and EINTR).
 * Returns 0, or -1 with errno set. */
int nt_textfile_write_all(int fd, const void *data, size_t len);

/* fsyncs the directory holding |path|, which makes a rename into it
 * durable. Best effort. */
void nt_textfile_sync_parent_dir(const char *path);

/* Line iteration over a buffer from nt_textfile_read. Sets *line and
 * *linelen to the next line (without '\n' or a trailing '\r') and advances
 * *pos; returns 0 at the end of the buffer, else 1. */
int nt_textfile_next_line(const char *data, size_t len, size_t *pos,
                          const char **line, size_t *linelen);

/* snprintf into |err| when it is non-NULL and non-empty. */
void nt_textfile_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
