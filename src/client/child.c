#include "client/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* In the child, after fork: never returns. */
static void exec_child(int in, int out, int errfd, int status_fd,
                       char *const argv[]) {
  sigset_t none;
  int e;

  /* Its own session and process group: the command and everything it
   * starts can be killed together, and no terminal signal reaches it. */
  setsid();
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0) {
    goto fail;
  }
  /* Only stdin/stdout/stderr cross into the command (and the status pipe,
   * which closes on exec). */
  for (int fd = 3; fd < 1024; fd++) {
    if (fd != status_fd) {
      close(fd);
    }
  }
  for (int sig = 1; sig < NSIG; sig++) {
    signal(sig, SIG_DFL);
  }
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execvp(argv[0], argv);
fail:
  e = errno;
  if (write(status_fd, &e, sizeof(e)) < 0) {
    /* nothing more to tell */
  }
  _exit(127);
}

int nt_child_spawn(nt_child *child, char *const argv[], char *err,
                   size_t errlen) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
  int status[2] = {-1, -1};
  int e = 0;

  memset(child, 0, sizeof(*child));
  child->pid = -1;
  child->pgid = -1;
  child->pidfd = child->stdin_fd = child->stdout_fd = child->stderr_fd = -1;
  /* stdin is a socket, not a pipe: writing to a command that stopped
   * reading gives EPIPE via MSG_NOSIGNAL instead of SIGPIPE. */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
      pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(errp, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
    goto fail;
  }
  child->pid = fork();
  if (child->pid < 0) {
    snprintf(err, errlen, "cannot fork: %s", strerror(errno));
    goto fail;
  }
  if (child->pid == 0) {
    exec_child(in[0], out[1], errp[1], status[1], argv);
  }
  child->pgid = child->pid;
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&errp[1]);
  close_fd(&status[1]);
  ssize_t n;
  do {
    n = read(status[0], &e, sizeof(e));
  } while (n < 0 && errno == EINTR);
  close_fd(&status[0]);
  if (n == sizeof(e)) {
    waitpid(child->pid, NULL, 0);
    child->pid = -1;
    snprintf(err, errlen, "cannot run \"%.100s\": %s", argv[0],
             e == ENOENT ? "no such program" : strerror(e));
    goto fail;
  }
  child->pidfd = (int)syscall(SYS_pidfd_open, child->pid, 0);
  if (child->pidfd < 0) {
    snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
    goto fail;
  }
  child->stdin_fd = in[1];
  child->stdout_fd = out[0];
  child->stderr_fd = errp[0];
  fcntl(child->stdin_fd, F_SETFL, O_NONBLOCK);
  fcntl(child->stdout_fd, F_SETFL, O_NONBLOCK);
  fcntl(child->stderr_fd, F_SETFL, O_NONBLOCK);
  return 0;
fail:
  close_fd(&in[0]);
  close_fd(&in[1]);
  close_fd(&out[0]);
  close_fd(&out[1]);
  close_fd(&errp[0]);
  close_fd(&errp[1]);
  close_fd(&status[0]);
  close_fd(&status[1]);
  nt_child_destroy(child);
  return -1;
}

int nt_child_reap(nt_child *child, int *status) {
  int ws;
  if (child->pid <= 0) {
    return 0;
  }
  pid_t r = waitpid(child->pid, &ws, WNOHANG);
  if (r != child->pid) {
    return 0;
  }
  child->pid = -1;
  if (WIFEXITED(ws)) {
    *status = WEXITSTATUS(ws);
  } else if (WIFSIGNALED(ws)) {
    *status = 128 + WTERMSIG(ws);
  } else {
    *status = 255;
  }
  close_fd(&child->pidfd);
  return 1;
}

void nt_child_destroy(nt_child *child) {
  /* The whole group: a shell's children outlive it otherwise. */
  if (child->pgid > 0) {
    kill(-child->pgid, SIGKILL);
    child->pgid = -1;
  }
  if (child->pid > 0) {
    kill(child->pid, SIGKILL);
    while (waitpid(child->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    child->pid = -1;
  }
  close_fd(&child->pidfd);
  close_fd(&child->stdin_fd);
  close_fd(&child->stdout_fd);
  close_fd(&child->stderr_fd);
}
