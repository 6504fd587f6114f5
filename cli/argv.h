/* Splitting a command line into arguments, as the forward lines of the
 * configuration file need it. */
#ifndef NATTER_CLI_ARGV_H
#define NATTER_CLI_ARGV_H

#include <stddef.h>

#define CLI_CONFIG_MAX_ARGS 256 /* arguments of one forward command */

/* Splits the command |s| into arguments the way a POSIX shell splits words,
 * without running one:
 * - blanks (space, tab, newline, CR, VT, FF) separate arguments;
 * - '...' keeps everything inside as it is, backslashes included;
 * - "..." keeps everything inside except that \" \\ \$ and \` stand for the
 *   second character (a backslash before anything else is kept);
 * - outside quotes, a backslash makes the next character ordinary (and
 *   backslash-newline is removed);
 * - quotes join with the text around them: a"b c"'d' is one argument, and
 *   "" is an empty argument.
 * Nothing is expanded or interpreted: $VAR, `cmd`, *, ?, [..], ~, |, ;, &,
 * <, > and # are ordinary characters, so pipes and redirections need
 * sh -c '...'.
 * On success returns 0 and sets *pargv to a NULL-terminated array owned by
 * the caller (release with cli_argv_free()) and *pargc (may be NULL) to its
 * length, which is 0 when |s| holds only blanks. Returns -1 with a one-line
 * reason in |err| on an unterminated quote, a trailing backslash or more than
 * CLI_CONFIG_MAX_ARGS arguments; *pargv is then NULL. */
int cli_split_argv(const char *s, char ***pargv, size_t *pargc, char *err,
                   size_t errlen);

/* The same, for a command line a remote shell would split (natter -rsh):
 * besides, refuses with a reason in |err| what only a shell could do with
 * it, when neither quoted nor escaped: | & ; < > ( ) $ ` * ? [ anywhere,
 * ~ and # at the start of a word, and $ or ` inside "...". */
int cli_split_shell_words(const char *s, char ***pargv, size_t *pargc,
                          char *err, size_t errlen);

/* Frees an argv from cli_split_argv(); NULL is fine. */
void cli_argv_free(char **argv);

#endif
