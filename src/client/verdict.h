/* The verdict of a connectivity check (natter -check), from both sides'
 * data alone: pure, table-tested (tests/test_verdict.c). */
#ifndef NT_VERDICT_H
#define NT_VERDICT_H

#include <stddef.h>

#include "base/addr.h"
#include "codec/control.h"
#include "natter.h"

/* Where the strings of a side filled by nt_check_report_side live. */
typedef struct nt_check_side_text {
  char public_address[NT_ADDR_STRLEN], probes_from[NT_ADDR_STRLEN];
  char cand[NT_PUNCH_MAX_CANDIDATES][NT_ADDR_STRLEN];
  const char *pcand[NT_PUNCH_MAX_CANDIDATES];
} nt_check_side_text;

/* Fills what the peer's CheckReport |t| (bounded by nt_control_decode)
 * says into its side |b| of a result: marks it reported; its outcome,
 * addresses, counts; its mapping and public address where the report
 * has them (else |b| keeps the broker's). The strings live in |text|. */
void nt_check_report_side(natter_check_side *b, const nt_check_side *t,
                          nt_check_side_text *text);

/* Decides from everything in |r| but its verdict fields; writes the one
 * line for users into |text| and returns the verdict. */
natter_check_verdict nt_check_verdict(const natter_check_result *r, char *text,
                                      size_t len);

#endif
