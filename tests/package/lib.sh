# shellcheck shell=bash
# Helpers shared by the packaging tests (sourced, not run).

set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

# help_flags NATTER: every flag `NATTER -h` lists, one a line, sorted. A flag
# line is one whose first non-blank character is '-': "  -flag VALUE  text"
# or "  -h, --help  text" (aliases separated by ", "). Lines of usage,
# specs and examples start otherwise.
help_flags() {
  "$1" -h | awk '
    /^[ \t]+-[-A-Za-z]/ {
      line = $0
      sub(/^[ \t]+/, "", line)
      while (match(line, /^-[-A-Za-z0-9]+/)) {
        print substr(line, 1, RLENGTH)
        line = substr(line, RLENGTH + 1)
        if (substr(line, 1, 2) != ", ") break
        line = substr(line, 3)
      }
    }' | sort -u
}

# scd_section FILE SECTION: the lines of "# SECTION" in an scdoc source, up
# to the next "# " heading.
scd_section() {
  awk -v want="# $2" '
    /^# / { on = ($0 == want); next }
    on' "$1"
}

# scd_terms FILE SECTION PATTERN: the bold words (*word*) that start the
# definition lines (unindented, starting with '*') of SECTION, as far as they
# match PATTERN (an awk regex), in "*a*, *b*" lists too; sorted.
scd_terms() {
  scd_section "$1" "$2" | awk -v pat="$3" '
    /^\*/ {
      line = $0
      while (match(line, /^\*[^*]+\*/)) {
        term = substr(line, 2, RLENGTH - 2)
        if (term !~ pat) break
        print term
        line = substr(line, RLENGTH + 1)
        if (substr(line, 1, 2) != ", ") break
        line = substr(line, 3)
      }
    }' | sort -u
}

# same_set WHAT LEFT_NAME LEFT RIGHT_NAME RIGHT: fails, naming what is
# missing on each side, unless the two sorted lists are equal.
same_set() {
  local what=$1 ln=$2 left=$3 rn=$4 right=$5 only_l only_r
  only_l=$(comm -23 <(printf '%s\n' "$left") <(printf '%s\n' "$right"))
  only_r=$(comm -13 <(printf '%s\n' "$left") <(printf '%s\n' "$right"))
  [[ -z $only_l && -z $only_r ]] && return 0
  [[ -n $only_l ]] && printf 'FAIL: %s in %s but not in %s: %s\n' \
    "$what" "$ln" "$rn" "$(echo $only_l)" >&2
  [[ -n $only_r ]] && printf 'FAIL: %s in %s but not in %s: %s\n' \
    "$what" "$rn" "$ln" "$(echo $only_r)" >&2
  return 1
}
