#!/usr/bin/env bash
# Installs the .debs that ./dev package built on this machine, checks them
# as a user would use them, and purges them again (whatever happens: the
# EXIT trap purges). Needs root; run by `./dev package-test`.
#
#   bash tests/package/test_deb_install.sh DIR   # DIR holds the .debs
#
# Exits 77 (skipped) when not root, or when one of the packages is already
# installed here (it is not this test's to replace or purge).
#
# - dpkg-deb -c: each package holds what it should, and nothing under
#   /usr/local, nothing twice;
# - dpkg -i: natter --version is the project's version; man natter and
#   man natter.conf show the pages; the bash completion loads; the conffile
#   is registered and sets nothing; the systemd units are installed, point
#   at /usr/bin/natter, and are not enabled;
# - libnatter-dev: examples/simple_c.c builds with pkg-config and with
#   CMake's find_package(natter) (shared and static), links the installed
#   libnatter.so.0, runs (--check), and dpkg-shlibdeps derives
#   "libnatter0 (>= 0.1.0)" for it from the symbols file;
# - dpkg --remove leaves only the conffile; dpkg --purge leaves nothing of
#   any package's files.
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=../install/lib.sh
. "$here/../install/lib.sh" # run_check, pick_port_pair

src=$(realpath "$here/../..")
dir=$(realpath "${1:?usage: test_deb_install.sh DIR-WITH-DEBS}")
skip() {
  printf 'SKIP: %s\n' "$*" >&2
  exit 77
}
((EUID == 0)) || skip "needs root (dpkg -i): run ./dev package-test as root"
version=$(sed -n '1s/^natter (\([^)]*\)).*/\1/p' "$src/debian/changelog")
project=$(sed -n 's/^project(natter VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
pkgs=(natter libnatter0 libnatter-dev)
debs=()
for p in "${pkgs[@]}"; do
  f=$dir/${p}_${version}_$arch.deb
  [[ -f $f ]] || fail "$f not found: run ./dev package first"
  debs+=("$f")
done
for p in "${pkgs[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
    skip "$p is already installed here ($(dpkg-query -W -f='${Status}' "$p")); this test installs and purges it, so it leaves this machine alone"
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/natter-deb.XXXXXX")
cleanup() {
  local rc=$?
  dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# ---- contents ----
for i in "${!pkgs[@]}"; do
  # Files and symlinks only, as absolute paths.
  dpkg-deb -c "${debs[i]}" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' \
    >"$tmp/${pkgs[i]}.files"
done
expect_files() {
  local p=$1 f
  shift
  for f in "$@"; do
    grep -qx -- "$f" "$tmp/$p.files" || fail "$p does not contain $f"
  done
}
expect_files natter /usr/bin/natter /etc/natter/natter.conf \
  /usr/share/man/man1/natter.1.gz /usr/share/man/man5/natter.conf.5.gz \
  /usr/share/bash-completion/completions/natter \
  /lib/systemd/system/natter-broker.service \
  /lib/systemd/system/natter-listener.service /usr/share/doc/natter/copyright
expect_files libnatter0 "/usr/lib/$multiarch/libnatter.so.0" \
  "/usr/lib/$multiarch/libnatter.so.$project"
expect_files libnatter-dev /usr/include/natter.h \
  "/usr/lib/$multiarch/libnatter.so" "/usr/lib/$multiarch/libnatter.a" \
  "/usr/lib/$multiarch/pkgconfig/natter.pc" \
  "/usr/lib/$multiarch/cmake/natter/natterConfig.cmake" \
  /usr/share/doc/libnatter-dev/examples/simple_c.c
cat "$tmp"/*.files | grep '^/usr/local' && fail "a package installs under /usr/local"
grep -v "^/usr/lib/$multiarch/libnatter\\.so\\.\\|^/usr/share/doc/libnatter0/" \
  "$tmp/libnatter0.files" &&
  fail "libnatter0 holds more than the library: $(cat "$tmp/libnatter0.files")"
dpkg-deb -I "${debs[1]}" symbols >"$tmp/symbols" ||
  fail "libnatter0 has no symbols control file"
cmp -s <(grep '^ ' "$tmp/symbols") <(grep '^ ' "$src/debian/libnatter0.symbols") ||
  fail "libnatter0's symbols file differs from debian/libnatter0.symbols"
say "dpkg-deb -c: the three packages hold what they should"

# ---- install ----
say "dpkg -i ${debs[*]##*/}"
dpkg -i "${debs[@]}" >"$tmp/dpkg.log" 2>&1 ||
  { cat "$tmp/dpkg.log" >&2; fail "dpkg -i failed"; }
[[ $(command -v natter) == /usr/bin/natter ]] ||
  fail "natter on PATH is $(command -v natter), not /usr/bin/natter"
got=$(natter --version)
[[ $got == "natter $project" ]] || fail "natter --version says '$got', expected 'natter $project'"
say "natter --version: $got"

for page in natter.1 natter.conf.5; do
  MANWIDTH=80 man -l "/usr/share/man/man${page##*.}/$page.gz" >"$tmp/$page.txt" 2>"$tmp/err" ||
    fail "man -l $page failed: $(cat "$tmp/err")"
  grep -q '^NAME' "$tmp/$page.txt" || fail "man -l $page shows no NAME section"
done
[[ $(man -w natter) == /usr/share/man/man1/natter.1.gz ]] ||
  fail "man -w natter finds '$(man -w natter)'"
[[ $(man -w 5 natter.conf) == /usr/share/man/man5/natter.conf.5.gz ]] ||
  fail "man -w 5 natter.conf finds '$(man -w 5 natter.conf 2>&1)'"
grep -q -- '-broker-key' "$tmp/natter.1.txt" || fail "man natter lacks -broker-key"
say "man natter, man natter.conf: render"

bash --norc -c '. /usr/share/bash-completion/completions/natter && complete -p natter' \
  >/dev/null || fail "the installed bash completion does not register for natter"

dpkg-query -W -f='${Conffiles}\n' natter | grep -q '^ /etc/natter/natter.conf ' ||
  fail "/etc/natter/natter.conf is not a conffile of natter"
active=$(grep -v '^[[:space:]]*#' /etc/natter/natter.conf | grep -v '^[[:space:]]*$' || true)
[[ -z $active ]] || fail "/etc/natter/natter.conf sets something: $active"
grep -q '^# *name = ' /etc/natter/natter.conf ||
  fail "/etc/natter/natter.conf lacks the commented examples"
# natter reads the (empty) default file: the error is about flags, not it.
rc=0
natter -name bob >"$tmp/out" 2>&1 || rc=$?
((rc == 2)) && grep -q 'missing -broker' "$tmp/out" ||
  fail "natter -name bob with the installed conffile: status $rc, $(cat "$tmp/out")"
say "/etc/natter/natter.conf: a conffile, everything commented out"

for unit in natter-broker natter-listener; do
  f=/lib/systemd/system/$unit.service
  grep -q '^ExecStart=/usr/bin/natter ' "$f" || fail "$f does not run /usr/bin/natter"
  grep -q '^DynamicUser=yes' "$f" || fail "$f lost DynamicUser=yes"
  state=$(systemctl is-enabled "$unit" 2>/dev/null || true)
  [[ $state == disabled ]] || fail "$unit is '$state' after install, expected disabled"
  ls /etc/systemd/system/*.wants/"$unit".service 2>/dev/null &&
    fail "$unit was enabled by the package"
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$f" >"$tmp/verify" 2>&1 ||
      fail "systemd-analyze verify $f: $(cat "$tmp/verify")"
  fi
done
say "systemd units: installed, /usr/bin/natter, not enabled"

# ---- building against libnatter-dev ----
examples=/usr/share/doc/libnatter-dev/examples
mkdir -p "$tmp/pc"
read -r -a pcflags <<<"$(pkg-config --cflags --libs natter)"
cc -Wall -Wextra -Werror -o "$tmp/pc/simple_c" "$examples/simple_c.c" "${pcflags[@]}" ||
  fail "cc simple_c.c \$(pkg-config --cflags --libs natter) failed"
loads=$(ldd "$tmp/pc/simple_c")
# /lib is /usr/lib on a merged-/usr system.
grep -Eq "libnatter\.so\.0 => (/usr)?/lib/$multiarch/libnatter\.so\.0 " <<<"$loads" ||
  fail "simple_c does not load /usr/lib/$multiarch/libnatter.so.0: $loads"
run_check "$tmp/pc/simple_c"
say "pkg-config: simple_c builds, links the installed libnatter.so.0, runs"

mkdir -p "$tmp/shlibs/debian"
cp "$src/debian/control" "$tmp/shlibs/debian/"
(cd "$tmp/shlibs" && dpkg-shlibdeps -O "$tmp/pc/simple_c") >"$tmp/shlibdeps" 2>&1 ||
  fail "dpkg-shlibdeps: $(cat "$tmp/shlibdeps")"
grep -q "libnatter0 (>= $project)" "$tmp/shlibdeps" ||
  fail "dpkg-shlibdeps gives no 'libnatter0 (>= $project)': $(cat "$tmp/shlibdeps")"
say "dpkg-shlibdeps: libnatter0 (>= $project)"

mkdir -p "$tmp/cmake-project"
cat >"$tmp/cmake-project/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(natter_consumer LANGUAGES C CXX)
find_package(natter $project REQUIRED COMPONENTS static)
add_compile_options(-Wall -Wextra -Werror)
add_executable(simple_c "$examples/simple_c.c")
add_executable(simple_cpp "$examples/simple_cpp.cpp")
add_executable(simple_c_static "$examples/simple_c.c")
target_link_libraries(simple_c PRIVATE natter::natter)
target_link_libraries(simple_cpp PRIVATE natter::natter)
target_link_libraries(simple_c_static PRIVATE natter::natter_static)
CMAKE
cmake -S "$tmp/cmake-project" -B "$tmp/cmake-build" >"$tmp/cmake.log" 2>&1 ||
  { cat "$tmp/cmake.log" >&2; fail "find_package(natter) against libnatter-dev failed"; }
cmake --build "$tmp/cmake-build" -j2 >"$tmp/cmake-build.log" 2>&1 ||
  { cat "$tmp/cmake-build.log" >&2; fail "building against libnatter-dev with CMake failed"; }
readelf -d "$tmp/cmake-build/simple_c_static" | grep -q 'libnatter\.so' &&
  fail "simple_c_static links libnatter.so, not libnatter.a"
run_check "$tmp/cmake-build/simple_c"
run_check "$tmp/cmake-build/simple_cpp"
run_check "$tmp/cmake-build/simple_c_static"
say "CMake find_package(natter): simple_c, simple_cpp, static simple_c build and run"

# ---- removal ----
cat "$tmp"/{natter,libnatter0,libnatter-dev}.files | sort -u >"$tmp/all.files"
left_over() { # the packages' files (not directories) still present
  while read -r f; do
    if [[ -e $f || -L $f ]]; then printf '%s\n' "$f"; fi
  done <"$tmp/all.files"
  return 0
}
dpkg --remove "${pkgs[@]}" >"$tmp/dpkg.log" 2>&1 ||
  { cat "$tmp/dpkg.log" >&2; fail "dpkg --remove failed"; }
left=$(left_over)
[[ $left == /etc/natter/natter.conf ]] ||
  fail "after dpkg --remove, expected only the conffile, found: $(echo $left)"
dpkg --purge "${pkgs[@]}" >"$tmp/dpkg.log" 2>&1 ||
  { cat "$tmp/dpkg.log" >&2; fail "dpkg --purge failed"; }
left=$(left_over)
[[ -z $left ]] || fail "after dpkg --purge, left behind: $(echo $left)"
for d in /etc/natter "/usr/lib/$multiarch/cmake/natter" /usr/share/doc/natter \
  /usr/share/doc/libnatter-dev; do
  [[ ! -e $d ]] || fail "after dpkg --purge, $d is left"
done
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed' &&
    fail "$p still known to dpkg: $(dpkg-query -W -f='${Status}' "$p")"
done
say "dpkg --remove left only the conffile; dpkg --purge left nothing"
say "deb install: all passed"
