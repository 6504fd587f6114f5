/* natter -rsh: natter as the remote shell of rsync (-e), scp (-S) and git
 * (GIT_SSH_COMMAND). What follows -rsh is ssh's calling convention,
 *   [OPTIONS] [USER@]HOST COMMAND...
 * and becomes the stdin/stdout command forward ":HOST: ARGV...".
 *
 * ssh joins COMMAND's words with spaces and the remote user's shell splits
 * them again (git passes one word, "git-upload-pack '/path'"; rsync several,
 * escaping blanks and quotes with backslashes). natter runs no shell on the
 * peer: the joined line is split here as a POSIX shell splits plain words
 * (cli_split_shell_words), and what would need a shell is refused. */
#include "app.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "argv.h"

#define RSH_MAX_COMMAND 8192 /* bytes of the joined command line */

/* The command an ssh subsystem name (-s NAME) runs: OpenSSH's sftp-server
 * where Debian installs it; the peer must allow it with -allow-command. */
#define RSH_SFTP_SERVER "/usr/lib/openssh/sftp-server"

static int rsh_error(const char *fmt, const char *arg) {
  fprintf(stderr, "natter -rsh: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  return 255; /* as ssh: natter itself failed, the command did not run */
}

/* ssh's -o keys that mean nothing here (no host keys, no agent, no
 * forwardings, no terminal, one connection per run): accepted, ignored. */
static const char *const ignored_o[] = {"AddressFamily",
                                        "BatchMode",
                                        "CheckHostIP",
                                        "ClearAllForwardings",
                                        "Compression",
                                        "ConnectionAttempts",
                                        "ConnectTimeout",
                                        "ControlMaster",
                                        "ControlPath",
                                        "ControlPersist",
                                        "EscapeChar",
                                        "ForwardAgent",
                                        "ForwardX11",
                                        "ForwardX11Trusted",
                                        "GlobalKnownHostsFile",
                                        "HashKnownHosts",
                                        "HostKeyAlias",
                                        "IdentitiesOnly",
                                        "IdentityFile",
                                        "KbdInteractiveAuthentication",
                                        "LogLevel",
                                        "PasswordAuthentication",
                                        "PermitLocalCommand",
                                        "Port",
                                        "PreferredAuthentications",
                                        "Protocol",
                                        "PubkeyAuthentication",
                                        "SendEnv",
                                        "ServerAliveCountMax",
                                        "ServerAliveInterval",
                                        "StrictHostKeyChecking",
                                        "TCPKeepAlive",
                                        "UpdateHostKeys",
                                        "User",
                                        "UserKnownHostsFile",
                                        "VisualHostKey",
                                        NULL};

/* Checks ssh's -o |opt| ("Key=value" or "Key value"). Returns -1 to go on,
 * or an exit code. */
static int check_o(const char *opt) {
  size_t klen = strcspn(opt, "= \t");
  const char *v = opt + klen;
  v += strspn(v, "= \t");
  for (size_t i = 0; ignored_o[i]; i++) {
    if (strlen(ignored_o[i]) == klen &&
        strncasecmp(opt, ignored_o[i], klen) == 0) {
      return -1;
    }
  }
  /* Harmless only with the value scp and git give them. */
  if ((klen == 13 && strncasecmp(opt, "RemoteCommand", klen) == 0 &&
       strcasecmp(v, "none") == 0) ||
      (klen == 10 && strncasecmp(opt, "RequestTTY", klen) == 0 &&
       (strcasecmp(v, "no") == 0 || strcasecmp(v, "auto") == 0))) {
    return -1;
  }
  return rsh_error("ssh option -o %s is not supported (natter runs one "
                   "command on a peer: no terminal, forwardings or remote "
                   "environment)",
                   opt);
}

/* Appends |w| to |line| (*len bytes so far), a space before it unless
 * first. Returns 0, or -1 when the line would be too long. */
static int join_word(char *line, size_t *len, const char *w) {
  size_t n = strlen(w);
  if (*len + (*len ? 1 : 0) + n >= RSH_MAX_COMMAND) {
    return -1;
  }
  if (*len) {
    line[(*len)++] = ' ';
  }
  memcpy(line + *len, w, n + 1);
  *len += n;
  return 0;
}

int parse_rsh(cli_config *o, int argc, char **argv) {
  int i = 0, probe = 0, subsystem = 0;
  char why[600];

  for (; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0') {
      break;
    }
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    /* Grouped flags as ssh takes them: -xT, -p2222, -oKey=value. */
    for (const char *f = a + 1; *f; f++) {
      const char *val = NULL;
      if (strchr("lpoiFcmbeEJ", *f)) {
        if (f[1]) {
          val = f + 1;
        } else if (i + 1 < argc) {
          val = argv[++i];
        } else {
          char opt[3] = {'-', *f, '\0'};
          return rsh_error("ssh option %s needs a value", opt);
        }
      }
      int rv;
      switch (*f) {
      case '4':
      case '6':
      case 'A':
      case 'a':
      case 'C':
      case 'K':
      case 'k':
      case 'q':
      case 'T':
      case 'v':
      case 'x':
        break; /* nothing to do without ssh */
      case 'l':
      case 'p':
      case 'i':
      case 'F':
      case 'c':
      case 'm':
      case 'b':
      case 'e':
      case 'E':
        break; /* USER: commands run as the peer's natter user */
      case 'o':
        if ((rv = check_o(val)) >= 0) {
          return rv;
        }
        break;
      case 'G':
        probe = 1; /* git asks whether we take OpenSSH's options */
        break;
      case 'n':
        /* stdin from /dev/null, as ssh -n */
        {
          int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
          if (fd < 0 || dup2(fd, 0) < 0) {
            return rsh_error("%s", "cannot open /dev/null for -n");
          }
          close(fd);
        }
        break;
      case 's':
        subsystem = 1;
        break;
      default: {
        char opt[3] = {'-', *f, '\0'};
        return rsh_error("ssh option %s is not supported: natter runs one "
                         "command on a peer (no terminal, forwardings, "
                         "jump hosts or control sockets)",
                         opt);
      }
      }
      if (val) {
        break; /* the rest of this word was the value */
      }
    }
  }
  if (i >= argc) {
    return rsh_error("%s", "missing HOST: natter -rsh takes ssh's [OPTIONS] "
                           "HOST COMMAND...");
  }
  /* [USER@]HOST: the user is ignored. */
  const char *host = strrchr(argv[i], '@');
  host = host ? host + 1 : argv[i];
  i++;
  if (probe) {
    printf("hostname %s\n", host);
    return 0;
  }
  if (i >= argc) {
    return rsh_error("no command for %s: natter runs no login shell on a "
                     "peer; give a command",
                     host);
  }

  char *line = malloc(RSH_MAX_COMMAND);
  char **words = NULL;
  size_t len = 0, nwords = 0;
  if (!line) {
    return rsh_error("%s", "out of memory");
  }
  line[0] = '\0';
  for (; i < argc; i++) {
    if (join_word(line, &len, argv[i]) != 0) {
      free(line);
      return rsh_error("the command is longer than %s bytes", "8191");
    }
  }
  if (subsystem) {
    if (strcmp(line, "sftp") != 0) {
      int rv = rsh_error("subsystem %s is not supported (only sftp)", line);
      free(line);
      return rv;
    }
    snprintf(line, RSH_MAX_COMMAND, "%s", RSH_SFTP_SERVER);
  }
  if (cli_split_shell_words(line, &words, &nwords, why, sizeof(why)) != 0 ||
      nwords == 0) {
    int rv = rsh_error("%s", nwords == 0 && !why[0] ? "empty command" : why);
    free(line);
    cli_argv_free(words);
    return rv;
  }
  free(line);

  char spec[CLI_RSH_SPEC_MAX];
  if (strlen(host) + 3 > sizeof(spec) || strchr(host, ':')) {
    cli_argv_free(words);
    return rsh_error("bad peer name \"%.80s\"", host);
  }
  snprintf(spec, sizeof(spec), ":%s:", host);
  int rv = cli_config_add_forward(o, spec, words, 0);
  cli_argv_free(words);
  if (rv == -2) {
    return usage_error("too many forwards (at most %s)", "64");
  }
  if (rv != 0) {
    return rsh_error("%s", "out of memory");
  }
  return -1;
}
