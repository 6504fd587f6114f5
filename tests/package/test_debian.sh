#!/usr/bin/env bash
# debian/ agrees with the code, without building a package:
# - debian/changelog's version is the project's (CMakeLists.txt);
# - the library package is named after the SONAME, and the symbols file is
#   for that SONAME and package;
# - debian/libnatter0.symbols lists exactly the symbols the built
#   libnatter.so exports: a new public function needs its line there, a
#   removed one breaks the ABI (see debian/README.source).
#
# Environment: NATTER_LIB (the built libnatter.so; ctest sets it),
# NATTER_SOURCE_DIR (default: two levels up from here).
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
. "$here/lib.sh"

: "${NATTER_LIB:?set NATTER_LIB to the built libnatter.so (ctest does this)}"
src=$(realpath "${NATTER_SOURCE_DIR:-$here/../..}")
deb=$src/debian
status=0

# ---- version ----
project=$(sed -n 's/^project(natter VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ -n $project ]] || fail "no project(natter VERSION ...) in CMakeLists.txt"
changelog=$(sed -n '1s/^natter (\([^)]*\)).*/\1/p' "$deb/changelog")
[[ -n $changelog ]] || fail "cannot read the version on debian/changelog's first line"
upstream=${changelog#*:}
upstream=${upstream%-*}
[[ $upstream == "$project" ]] ||
  fail "debian/changelog says $changelog, CMakeLists.txt says $project: add a changelog entry (dch -v $project)"
say "version: $project in CMakeLists.txt and debian/changelog"

# ---- SONAME and package name ----
soname=$(readelf -d "$NATTER_LIB" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname =~ ^libnatter\.so\.([0-9]+)$ ]] || fail "unexpected SONAME '$soname'"
pkg=libnatter${BASH_REMATCH[1]}
symbols=$deb/$pkg.symbols
grep -qx "Package: $pkg" "$deb/control" ||
  fail "SONAME $soname, but debian/control has no package $pkg"
[[ -f $symbols && -f $deb/$pkg.install ]] ||
  fail "SONAME $soname, but debian/$pkg.symbols or debian/$pkg.install is missing"
grep -q "^ *$pkg (= \${binary:Version})" "$deb/control" ||
  fail "libnatter-dev does not depend on $pkg (= \${binary:Version})"
read -r head_so head_pkg _ < "$symbols"
[[ $head_so == "$soname" && $head_pkg == "$pkg" ]] ||
  fail "$symbols starts with '$head_so $head_pkg', expected '$soname $pkg'"
say "SONAME $soname: package $pkg, debian/$pkg.symbols"

# ---- symbols ----
exported=$(nm -D --defined-only "$NATTER_LIB" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u)
[[ -n $exported ]] || fail "nm found no exported symbols in $NATTER_LIB"
listed=$(awk '/^ / {sub(/@.*/, "", $1); print $1}' "$symbols" | sort -u)
new=$(comm -23 <(echo "$exported") <(echo "$listed"))
gone=$(comm -13 <(echo "$exported") <(echo "$listed"))
if [[ -n $new ]]; then
  printf 'FAIL: libnatter.so exports symbols %s does not list; add these lines\n' \
    "debian/$pkg.symbols" >&2
  printf '  (the version is the first release that has them):\n' >&2
  for sym in $new; do printf '     %s@Base %s\n' "$sym" "$project" >&2; done
  status=1
fi
if [[ -n $gone ]]; then
  printf 'FAIL: %s lists symbols libnatter.so no longer exports: %s\n' \
    "debian/$pkg.symbols" "$(echo $gone)" >&2
  printf '  That breaks programs built against the old library: keep them, or\n' >&2
  printf '  bump the SONAME (see debian/README.source).\n' >&2
  status=1
fi
# dpkg-gensymbols writes them sorted (C locale): a file in another order
# differs from the package's own, which the .deb install test compares.
if ! LC_ALL=C sort -c <(grep '^ ' "$symbols") 2>/dev/null; then
  printf 'FAIL: %s is not sorted; sort its symbol lines with LC_ALL=C sort\n' \
    "debian/$pkg.symbols" >&2
  status=1
fi
((status == 0)) || exit 1
say "symbols: the $(wc -l <<<"$exported") exported by libnatter.so are those debian/$pkg.symbols lists"
say "debian: all passed"
