/* One value of a setting, read and checked by the TYPE of its entry in
 * settings.h. */
#ifndef NATTER_CLI_VALUES_H
#define NATTER_CLI_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "settings.h"

/* Checks |value| for |s|. Returns 0, numbers (BOOL, COUNT, BYTES,
 * DURATION, LOG_LEVEL) in *num; or -1 with the reason in |why|, as it
 * follows 'bad LABEL "VALUE": '. |from_file|: also check what the library
 * would check later anyway (SERVER, ADDR, NAME, FINGERPRINT). */
int cli_value_check(const cli_setting *s, const char *value, int from_file,
                    unsigned long long *num, char *why, size_t whylen);

/* Parses a duration: digits and one unit, s, m, h or d ("30d", "90s"), or
 * "0" alone. Returns 0 with the seconds in *out, or -1. */
int cli_parse_duration(const char *s, uint32_t *out);

#endif
