/* A remote command's process on the listener: spawned with execvp (never
 * through a shell), its stdin/stdout/stderr on pipes, and a pidfd so the
 * event loop learns of its exit without a SIGCHLD handler (the library
 * installs none). */
#ifndef NT_CHILD_H
#define NT_CHILD_H

#include <stddef.h>
#include <sys/types.h>

typedef struct nt_child {
  pid_t pid;
  pid_t pgid;    /* its process group, killed as a whole at the end */
  int pidfd;     /* readable once the child exits */
  int stdin_fd;  /* our end of its stdin (a socket), non-blocking */
  int stdout_fd; /* read end, non-blocking */
  int stderr_fd; /* read end, non-blocking */
} nt_child;

/* Starts argv[0] (looked up in PATH) with argv. The child gets only fds
 * 0-2, default signal dispositions and an empty signal mask. Returns 0, or
 * -1 with a one-line reason in |err| (the exec's own errno when the
 * program could not be run, e.g. "no such program"). */
int nt_child_spawn(nt_child *child, char *const argv[], char *err,
                   size_t errlen);

/* Collects the exit status if the child has exited: returns 1 and sets
 * *status (exit code, or 128+N for signal N), 0 if still running. */
int nt_child_reap(nt_child *child, int *status);

/* Kills the child if it still runs, reaps it, closes every fd. */
void nt_child_destroy(nt_child *child);

#endif
