/* A command line split into arguments as a POSIX shell splits words. */
#include "argv.h"

#include "text.h"

#include <stdlib.h>
#include <string.h>

void cli_argv_free(char **argv) {
  if (argv == NULL) {
    return;
  }
  for (char **a = argv; *a != NULL; a++) {
    free(*a);
  }
  free(argv);
}

/* Frees the |n| first entries of |words| and the scratch word. */
static void free_words(char **words, size_t n, char *word) {
  for (size_t i = 0; i < n; i++) {
    free(words[i]);
  }
  free(word);
}

/* Characters a POSIX shell would treat as syntax or expand when they are
 * neither quoted nor escaped: cli_split_shell_words() refuses them. */
static const char shell_syntax[] = "|&;<>()$`*?[";

/* Reports that |p| (in |s|) needs a shell. Returns -1. */
static int needs_shell(const char *p, char *err, size_t errlen) {
  char quoted[CLI_QUOTE_BUF];
  cli_quote(quoted, p, strlen(p));
  cli_set_err(err, errlen,
              "'%c' at \"%s\" needs a shell, and natter runs none on the "
              "peer (no expansion, wildcards, pipes or redirections): quote "
              "or escape it, or run sh -c '...' if the peer allows that",
              *p, quoted);
  return -1;
}

/* The splitter of both: |strict| refuses what needs a shell. */
static int split_words(const char *s, int strict, char ***pargv, size_t *pargc,
                       char *err, size_t errlen) {
  /* One word is never longer than the input; collect the words first and
   * allocate the array once their number is known. */
  char *words[CLI_CONFIG_MAX_ARGS];
  size_t nwords = 0;
  char *word;
  char **argv;
  char quoted[CLI_QUOTE_BUF];
  const char *p = s;

  *pargv = NULL;
  if (pargc != NULL) {
    *pargc = 0;
  }
  if (s == NULL) {
    s = "";
    p = s;
  }
  if (err != NULL && errlen > 0) {
    err[0] = '\0';
  }
  word = malloc(strlen(s) + 1);
  if (word == NULL) {
    cli_set_err(err, errlen, "out of memory");
    return -1;
  }
  for (;;) {
    size_t n = 0;
    int quoted_part = 0; /* a quote makes a word even when empty: "" */

    while (cli_is_space(*p)) {
      p++;
    }
    if (*p == '\0') {
      break;
    }
    while (*p != '\0' && !cli_is_space(*p)) {
      const char *open = p;
      if (*p == '\'') {
        const char *close = strchr(p + 1, '\'');
        if (close == NULL) {
          cli_quote(quoted, open, strlen(open));
          cli_set_err(err, errlen, "unterminated single quote at \"%s\"",
                      quoted);
          free_words(words, nwords, word);
          return -1;
        }
        memcpy(word + n, p + 1, (size_t)(close - p - 1));
        n += (size_t)(close - p - 1);
        p = close + 1;
        quoted_part = 1;
      } else if (*p == '"') {
        p++;
        while (*p != '"') {
          if (*p == '\0') {
            cli_quote(quoted, open, strlen(open));
            cli_set_err(err, errlen, "unterminated double quote at \"%s\"",
                        quoted);
            free_words(words, nwords, word);
            return -1;
          }
          /* POSIX sh: inside "", a backslash escapes only $ ` " \ and a
           * newline (which it removes); before anything else it stays. */
          if (*p == '\\' && p[1] == '\n') {
            p += 2;
            continue;
          }
          if (*p == '\\' &&
              (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`')) {
            p++;
          } else if (strict && (*p == '$' || *p == '`')) {
            free_words(words, nwords, word);
            return needs_shell(p, err, errlen);
          }
          word[n++] = *p++;
        }
        p++;
        quoted_part = 1;
      } else if (*p == '\\') {
        if (p[1] == '\0') {
          cli_set_err(err, errlen,
                      "the command ends in a backslash: escape it as \\\\ or "
                      "quote it");
          free_words(words, nwords, word);
          return -1;
        }
        if (p[1] != '\n') {
          word[n++] = p[1];
        }
        p += 2;
      } else {
        if (strict && (strchr(shell_syntax, *p) != NULL ||
                       ((*p == '~' || *p == '#') && n == 0 && !quoted_part))) {
          free_words(words, nwords, word);
          return needs_shell(p, err, errlen);
        }
        word[n++] = *p++;
      }
    }
    if (n == 0 && !quoted_part) {
      continue; /* only backslash-newlines: no word, as in sh */
    }
    if (nwords == CLI_CONFIG_MAX_ARGS) {
      cli_set_err(err, errlen, "more than %d arguments: that is the limit",
                  CLI_CONFIG_MAX_ARGS);
      free_words(words, nwords, word);
      return -1;
    }
    words[nwords] = cli_dup_n(word, n);
    if (words[nwords] == NULL) {
      cli_set_err(err, errlen, "out of memory");
      free_words(words, nwords, word);
      return -1;
    }
    nwords++;
  }
  free(word);

  argv = malloc((nwords + 1) * sizeof(*argv));
  if (argv == NULL) {
    cli_set_err(err, errlen, "out of memory");
    free_words(words, nwords, NULL);
    return -1;
  }
  memcpy(argv, words, nwords * sizeof(*argv));
  argv[nwords] = NULL;
  *pargv = argv;
  if (pargc != NULL) {
    *pargc = nwords;
  }
  return 0;
}

int cli_split_argv(const char *s, char ***pargv, size_t *pargc, char *err,
                   size_t errlen) {
  return split_words(s, 0, pargv, pargc, err, errlen);
}

int cli_split_shell_words(const char *s, char ***pargv, size_t *pargc,
                          char *err, size_t errlen) {
  return split_words(s, 1, pargv, pargc, err, errlen);
}
