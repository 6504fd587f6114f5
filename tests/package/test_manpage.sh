#!/usr/bin/env bash
# The man pages and the program agree:
# - natter(1)'s OPTIONS section defines exactly the flags `natter -h` lists
#   (a flag added to the program needs its entry in doc/natter.1.scd, and
#   an entry for a removed flag must go);
# - natter.conf(5)'s KEYS section defines exactly the keys the config
#   parser accepts (the KEY column of the settings table, cli/settings.h);
# - when scdoc is installed, both pages build and man(1) renders them
#   without a warning.
#
# Environment: NATTER (the built binary; ctest sets it), NATTER_SOURCE_DIR
# (default: two levels up from here).
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
. "$here/lib.sh"

: "${NATTER:?set NATTER to the natter binary (ctest does this)}"
src=$(realpath "${NATTER_SOURCE_DIR:-$here/../..}")
man1=$src/doc/natter.1.scd
man5=$src/doc/natter.conf.5.scd
status=0

# ---- flags ----
help=$(help_flags "$NATTER")
(($(wc -l <<<"$help") >= 10)) ||
  fail "found only these flags in 'natter -h', is its format new?: $(echo $help)"
for f in -server -name -broker -listen -h; do
  grep -qx -- "$f" <<<"$help" || fail "'natter -h' parsed without $f: $(echo $help)"
done
man=$(scd_terms "$man1" OPTIONS '^-')
[[ -n $man ]] || fail "no *-flag* definitions in the OPTIONS section of $man1"
same_set flags "'natter -h'" "$help" "$man1 OPTIONS" "$man" || status=1
say "flags: compared $(wc -l <<<"$help") in 'natter -h' with natter(1)"

# Every flag also appears in the synopsis or is -h/--help/--version.
synopsis=$(scd_section "$man1" SYNOPSIS)
while read -r f; do
  case $f in -h | --help | --version | -v | -q) continue ;; esac
  grep -q -- "\*$f\*" <<<"$synopsis" ||
    grep -q '_OPTIONS_' <<<"$synopsis" ||
    { echo "FAIL: $f missing from the SYNOPSIS of $man1" >&2; status=1; }
done <<<"$help"

# ---- configuration keys ----
# Entries read X(ID, FLAG, KEY, ...), FLAG and KEY a "string" or NULL.
code=$(grep -oE '^  X\([A-Z_]+, ("[^"]*"|NULL), "[^"]*"' "$src/cli/settings.h" |
  sed 's/.*, "//; s/"$//' | sort -u)
(($(wc -l <<<"$code") >= 5)) ||
  fail "cannot read the keys of cli/settings.h (got: $(echo $code)); update this test"
keys=$(scd_terms "$man5" KEYS '^[a-z][-a-z]*$')
[[ -n $keys ]] || fail "no *key* definitions in the KEYS section of $man5"
same_set "config keys" "cli/settings.h" "$code" "$man5 KEYS" "$keys" || status=1
say "config keys: compared $(wc -l <<<"$code") in cli/settings.h with natter.conf(5)"

# ---- rendering ----
if command -v scdoc >/dev/null && command -v man >/dev/null; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/natter-man.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for page in natter.1 natter.conf.5; do
    scdoc <"$src/doc/$page.scd" >"$tmp/$page" 2>"$tmp/err" ||
      { echo "FAIL: scdoc $page: $(cat "$tmp/err")" >&2; status=1; continue; }
    MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$tmp/$page" \
      >"$tmp/$page.txt" 2>"$tmp/err" </dev/null ||
      { echo "FAIL: man -l $page failed: $(cat "$tmp/err")" >&2; status=1; }
    [[ ! -s $tmp/err ]] ||
      { echo "FAIL: man -l $page warns: $(cat "$tmp/err")" >&2; status=1; }
  done
  # The rendered page shows every flag too (scdoc kept the markup apart).
  while read -r f; do
    grep -qE -- "^ +(-[-a-z]+, )*$f( |,|\$)" "$tmp/natter.1.txt" ||
      { echo "FAIL: rendered natter(1) defines no $f" >&2; status=1; }
  done <<<"$help"
  say "scdoc and man -l render both pages without warnings"
else
  say "scdoc or man not installed: rendering not checked"
fi

((status == 0)) || exit 1
say "man pages: all passed"
