/* natter -h. */
#ifndef NATTER_CLI_USAGE_H
#define NATTER_CLI_USAGE_H

#include <stdio.h>

/* Writes all of `natter -h`: the forms of the command, SPEC, the flags and
 * an example. */
void cli_usage(FILE *out);

/* Writes the flags part of `natter -h`: each flag with its ARG, HELP and
 * DEFAULT, wrapped to 79 columns. */
void cli_settings_usage(FILE *out);

#endif
